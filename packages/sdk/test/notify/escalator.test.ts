import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  EscalationPolicy,
  Escalator,
  EscalatorState,
  incidentUpdates,
  ON_CALL_POLICY,
  pagerDuty,
  slackWebhook,
  statusPage,
} from '../../src/notify';
import {
  type PagerDutyDouble,
  type SlackDouble,
  type StatusPageDouble,
  startPagerDutyDouble,
  startSlackDouble,
  startStatusPageDouble,
} from '../../src/testing/notify';

const MIN = 60_000;
const KEYS = {
  primary: '1'.repeat(32),
  backup: '2'.repeat(32),
  senior: '3'.repeat(32),
  manager: '4'.repeat(32),
  cto: '5'.repeat(32),
};

describe('Escalator (fake time, real HTTP to the doubles)', () => {
  let pd: PagerDutyDouble;
  let slack: SlackDouble;
  let page: StatusPageDouble;
  let escalator: Escalator | undefined;

  beforeAll(async () => {
    [pd, slack, page] = await Promise.all([
      startPagerDutyDouble({ routingKeys: KEYS }),
      startSlackDouble({ channels: ['#incidents'] }),
      startStatusPageDouble({ pageId: 'aiwebtest', apiKey: 'sp-key-123456' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([pd.close(), slack.close(), page.close()]);
  });
  beforeEach(() => {
    pd.clear();
    slack.clear();
    page.clear();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date('2026-03-01T03:00:00Z'));
  });
  afterEach(() => {
    escalator?.stop();
    escalator = undefined;
    vi.useRealTimers();
  });

  const build = (state?: EscalatorState) => {
    escalator = new Escalator({
      policy: ON_CALL_POLICY,
      pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS }),
      updates: incidentUpdates({
        slack: slackWebhook({ url: slack.webhookUrl('#incidents'), channel: '#incidents' }),
        statusPage: statusPage({ url: page.url, pageId: 'aiwebtest', apiKey: 'sp-key-123456' }),
      }),
      ...(state ? { state } : {}),
    });
    escalator.start();
    return escalator;
  };
  /** Moves fake time forward, then waits for the escalator's HTTP calls (real I/O) to finish. */
  // In steps: a timer that fires starts real HTTP, which fake time cannot wait for; the next timer is armed only
  // when that finished, so each step waits for the escalator before moving the clock on.
  const advance = async (e: Escalator, ms: number, step = MIN) => {
    for (let done = 0; done < ms; done += step) {
      await vi.advanceTimersByTimeAsync(Math.min(step, ms - done));
      await e.settled();
    }
  };
  const triggers = () => pd.events.filter((x) => x.action === 'trigger' && x.status === 202);
  const pagedAt = () =>
    triggers().map((x) => [x.routedTo, Math.round((x.at - Date.parse('2026-03-01T03:00:00Z')) / MIN)]);

  it('P1 nobody acknowledges: primary at 0, backup at 15 min, senior at 30 min, never manager or CTO, no repeats', async () => {
    const e = build();
    await e.open({
      key: 'run-1',
      severity: 'P1',
      summary: 'requirements-agent down',
      runbookId: 'agent-failure',
    });
    expect(pagedAt()).toEqual([['primary', 0]]);
    await advance(e, 14 * MIN);
    expect(pagedAt()).toEqual([['primary', 0]]);
    await advance(e, 1 * MIN);
    expect(pagedAt()).toEqual([
      ['primary', 0],
      ['backup', 15],
    ]);
    await advance(e, 15 * MIN);
    await advance(e, 6 * 60 * MIN);
    expect(pagedAt()).toEqual([
      ['primary', 0],
      ['backup', 15],
      ['senior', 30],
    ]);
    // Opening the same incident again (a repeated escalation of the run) pages nobody.
    await e.open({ key: 'run-1', severity: 'P1', summary: 'requirements-agent down' });
    expect(triggers()).toHaveLength(3);
    expect(pd.incident('run-1:primary', 'primary')).toMatchObject({
      status: 'triggered',
      severity: 'error',
      triggers: 1,
    });
    expect(triggers()[0]?.summary).toContain('escalation level 1: Primary on-call engineer');
  });

  it('acknowledging at 10 min stops the backup page and tells PagerDuty', async () => {
    const e = build();
    await e.open({ key: 'run-2', severity: 'P1', summary: 'API errors >10%' });
    await advance(e, 10 * MIN);
    await e.acknowledge('run-2', 'alice');
    await advance(e, 60 * MIN);
    expect(pagedAt()).toEqual([['primary', 0]]);
    expect(pd.incident('run-2:primary')?.status).toBe('acknowledged');
    expect(slack.posted('#incidents').map((m) => m.text)).toContainEqual(
      expect.stringContaining('acknowledged by alice'),
    );
  });

  it('a P0 acknowledged early still reaches the manager at 2 h and the CTO at 4 h until resolved', async () => {
    const e = build();
    await e.open({ key: 'run-3', severity: 'P0', summary: 'all services down' });
    await advance(e, 3 * MIN);
    await e.acknowledge('run-3', 'bob');
    await advance(e, 2 * 60 * MIN);
    expect(pagedAt()).toEqual([
      ['primary', 0],
      ['manager', 120],
    ]);
    await advance(e, 2 * 60 * MIN);
    expect(pagedAt().at(-1)).toEqual(['cto', 240]);
    await e.resolve('run-3', 'bob');
    await advance(e, 10 * 60 * MIN);
    expect(triggers()).toHaveLength(3);
    for (const level of ['primary', 'manager', 'cto']) {
      expect(pd.incident(`run-3:${level}`, level)?.status).toBe('resolved');
    }
  });

  it('resolving stops everything: no pages, no status updates after it', async () => {
    const e = build();
    await e.open({ key: 'run-4', severity: 'P0', summary: 'database corrupted' });
    await advance(e, 16 * MIN);
    await e.resolve('run-4', 'carol');
    const eventsAtResolve = pd.events.length;
    const postsAtResolve = slack.messages.length;
    await advance(e, 8 * 60 * MIN);
    expect(pagedAt()).toEqual([
      ['primary', 0],
      ['backup', 15],
    ]);
    expect(pd.events.filter((x) => x.action === 'resolve').map((x) => x.routedTo)).toEqual([
      'primary',
      'backup',
    ]);
    expect(pd.events).toHaveLength(eventsAtResolve);
    expect(slack.messages).toHaveLength(postsAtResolve);
    expect(page.incidents()[0]?.status).toBe('resolved');
    // Kept for a week after it was resolved, then forgotten by the next tick.
    expect(e.incident('run-4')?.resolvedBy).toBe('carol');
    await e.tick(Date.now() + 7 * 24 * 60 * MIN);
    expect(e.state().incidents).toEqual([]);
  });

  it('posts status updates every 30 min for an open P1 (Slack and status page), none for a P2', async () => {
    const e = build();
    await e.open({ key: 'run-5', severity: 'P1', summary: 'agents failing' });
    await e.open({ key: 'run-6', severity: 'P2', summary: 'high latency' });
    await advance(e, 95 * MIN);
    const updates = slack.posted('#incidents').filter((m) => m.text?.startsWith('Status update'));
    expect(
      updates.map((m) => [
        m.text?.match(/#(\d+)/)?.[1],
        Math.round((m.at - Date.parse('2026-03-01T03:00:00Z')) / MIN),
      ]),
    ).toEqual([
      ['1', 30],
      ['2', 60],
      ['3', 90],
    ]);
    expect(updates.every((m) => m.text?.includes('agents failing'))).toBe(true);
    const [incident] = page.incidents();
    expect(page.incidents()).toHaveLength(1);
    expect(incident?.name).toBe('agents failing');
    expect(incident?.impact).toBe('major');
    expect(incident?.incident_updates).toHaveLength(4);
    expect(page.requests.filter((r) => r.method === 'PATCH').map((r) => r.incidentStatus)).toEqual([
      'investigating',
      'investigating',
      'investigating',
    ]);
    // The P2 was paged (primary) but gets no status updates.
    expect(pd.incident('run-6:primary')?.severity).toBe('warning');
  });

  it('marks an unacknowledged incident overdue at 5 min, once', async () => {
    const e = build();
    await e.open({ key: 'run-7', severity: 'P1', summary: 'agent down' });
    await advance(e, 6 * MIN);
    await advance(e, 6 * MIN);
    const overdue = slack
      .posted('#incidents')
      .filter((m) => m.text?.includes('not acknowledged yet; escalation'));
    expect(overdue).toHaveLength(1);
    expect(Math.round((overdue[0]?.at ?? 0) - Date.parse('2026-03-01T03:00:00Z')) / MIN).toBe(5);
  });

  it('a page that failed is retried at the next tick, and a restored state pages only what is missing', async () => {
    escalator = new Escalator({
      policy: ON_CALL_POLICY,
      pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS, retry: { maxAttempts: 1 } }),
    });
    const e = escalator;
    e.start();
    pd.fail({ status: 503 });
    await e.open({ key: 'run-8', severity: 'P1', summary: 'agent down' });
    expect(pd.events.map((x) => x.status)).toEqual([503]);
    await advance(e, 60_000, 10_000);
    expect(pd.events.map((x) => [x.status, (x.at - Date.parse('2026-03-01T03:00:00Z')) / 1000])).toEqual([
      [503, 0],
      [202, 30],
    ]);
    expect(pd.incident('run-8:primary')?.triggers).toBe(1);

    const saved = JSON.parse(JSON.stringify(e.state()));
    e.stop();
    const restored = build(EscalatorState.parse(saved));
    await advance(restored, 20 * MIN);
    expect(pagedAt()).toEqual([
      ['primary', 1],
      ['backup', 15],
    ]);
    expect(pd.incident('run-8:primary')?.triggers).toBe(1);
  });

  it('a failed acknowledge and a failed resolve are retried on the retry timer until PagerDuty takes them', async () => {
    escalator = new Escalator({
      policy: ON_CALL_POLICY,
      pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS, retry: { maxAttempts: 1 } }),
      retryDelayMs: 30_000,
    });
    const e = escalator;
    e.start();
    await e.open({ key: 'run-9', severity: 'P1', summary: 'agent down' });
    pd.fail({ status: 503 });
    await e.acknowledge('run-9', 'alice');
    expect(pd.incident('run-9:primary')?.status).toBe('triggered');
    expect(e.incident('run-9')?.pendingCalls).toEqual([
      { level: 'primary', action: 'acknowledge', retryAt: '2026-03-01T03:00:30.000Z' },
    ]);
    await advance(e, 20_000, 10_000);
    expect(pd.incident('run-9:primary')?.status).toBe('triggered');
    await advance(e, 10_000, 10_000);
    expect(pd.incident('run-9:primary')?.status).toBe('acknowledged');
    expect(e.incident('run-9')?.pendingCalls).toEqual([]);

    // The resolve fails twice: tried again 30 s later, and again, until it is taken.
    pd.fail({ status: 500, times: 2 });
    await e.resolve('run-9', 'alice');
    await advance(e, 30_000, 10_000);
    expect(pd.incident('run-9:primary')?.status).toBe('acknowledged');
    await advance(e, 30_000, 10_000);
    expect(pd.incident('run-9:primary')?.status).toBe('resolved');
    const calls = pd.events.filter((x) => x.dedupKey === 'run-9:primary' || x.status >= 500);
    expect(
      calls.map((x) => [x.action ?? 'failed', (x.at - Date.parse('2026-03-01T03:00:00Z')) / 1000]),
    ).toEqual([
      ['trigger', 0],
      ['failed', 0],
      ['acknowledge', 30],
      ['failed', 30],
      ['failed', 60],
      ['resolve', 90],
    ]);
  });

  it('a page that timed out after PagerDuty took it is still resolved', async () => {
    escalator = new Escalator({
      policy: ON_CALL_POLICY,
      pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS, retry: { maxAttempts: 1, timeout: 100 } }),
    });
    const e = escalator;
    pd.answerLate({ ms: 600 });
    const errors: string[] = [];
    e.onEvent((x) => x.type === 'error' && errors.push(x.during));
    await e.open({ key: 'run-10', severity: 'P1', summary: 'agent down' });
    expect(errors).toEqual(['page primary']);
    expect(e.incident('run-10')?.paged).toEqual({});
    expect(pd.incident('run-10:primary')?.status).toBe('triggered');
    await e.resolve('run-10', 'bob');
    expect(pd.incident('run-10:primary')?.status).toBe('resolved');
  });

  it('the page names its dedup key last, and a long summary is cut before it, not the key', async () => {
    const e = build();
    await e.open({ key: 'run-11', severity: 'P2', summary: 'x'.repeat(2_000) });
    const summary = triggers()[0]?.summary ?? '';
    expect(summary).toHaveLength(1024);
    expect(summary.endsWith('(escalation level 1: Primary on-call engineer, key run-11:primary)')).toBe(true);
    expect(e.pageOf({ title: summary })).toEqual({ key: 'run-11', level: 'primary' });
    expect(e.pageOf({ incidentKey: 'run-11:primary' })).toEqual({ key: 'run-11', level: 'primary' });
    expect(e.pageOf({ incidentKey: 'run-11:backup' })).toBeUndefined();
  });

  it('validates a policy, naming the field', () => {
    const result = EscalationPolicy.safeParse({
      levels: [
        { name: 'a', team: 'x' },
        { name: 'a', team: 'y', after: 'soon' },
      ],
    });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join('.'))).toContain('levels.1.after');
  });
});
