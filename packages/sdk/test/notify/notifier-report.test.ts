import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import {
  createNotifier,
  Escalator,
  incidentReport,
  incidentTimeline,
  isUnknownChannelError,
  ON_CALL_POLICY,
  pagerDuty,
  runDedupKey,
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
import { engineFixture } from '../support/engine-fixture';
import { setValue, valueIs, World } from '../support/runbooks';
import { DRIVERS } from '../support/stores';

const KEYS = {
  default: 'd'.repeat(32),
  security: 's'.repeat(32),
  primary: 'p'.repeat(32),
  backup: 'b'.repeat(32),
};

let pd: PagerDutyDouble;
let slack: SlackDouble;
let page: StatusPageDouble;
beforeAll(async () => {
  [pd, slack, page] = await Promise.all([
    startPagerDutyDouble({ routingKeys: KEYS }),
    startSlackDouble({ channels: ['#incidents'] }),
    startStatusPageDouble({ apiKey: 'sp-key-abcdef' }),
  ]);
});
afterAll(async () => {
  await Promise.all([pd.close(), slack.close(), page.close()]);
});
beforeEach(() => {
  pd.clear();
  slack.clear();
  page.clear();
});

const sinks = () => ({
  pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS }),
  slack: { '#incidents': slackWebhook({ url: slack.webhookUrl('#incidents'), channel: '#incidents' }) },
  statusPage: statusPage({ url: page.url, pageId: 'aiwebtest', apiKey: 'sp-key-abcdef' }),
});

describe('createNotifier: channel routing', () => {
  const base = { runId: 'r1', runbookId: 'agent-failure', kind: 'notify' as const };

  it('a repeated page updates its PagerDuty incident; an escalation after it pages the team again', async () => {
    const notifier = createNotifier(sinks());
    const page = { ...base, channel: 'pager:security', message: 'login attack', severity: 'P0' as const };
    await notifier.notify(page);
    // The same step retried (its first answer was lost): deduplicated into the same incident.
    await notifier.notify(page);
    // Someone acknowledges it; then the runbook escalates to the same team: that must page again.
    await pagerDuty({ url: pd.url, routingKeys: KEYS }).acknowledge({
      team: 'security',
      dedupKey: runDedupKey('r1', 'notify', 'login attack'),
    });
    await notifier.notify({ ...page, kind: 'escalate', message: 'the attack goes on after containment' });
    expect(pd.incidents().map((i) => [i.routedTo, i.dedupKey, i.status, i.triggers])).toEqual([
      ['security', runDedupKey('r1', 'notify', 'login attack'), 'acknowledged', 2],
      ['security', runDedupKey('r1', 'escalate', 'the attack goes on after containment'), 'triggered', 1],
    ]);
    expect(runDedupKey('r1', 'notify', 'login attack')).toMatch(/^run:r1:notify:[0-9a-f]{8}$/);
    expect(pd.incidents()[0]?.summary).toBe('[P0] agent-failure: login attack');

    // The run failed: its pages stay open for the people working on it.
    await notifier.runEnded({ runId: 'r1', status: 'waiting_approval' });
    await notifier.runEnded({ runId: 'r1', status: 'failed' });
    expect(pd.incidents().map((i) => i.status)).toEqual(['acknowledged', 'triggered']);
  });

  it('resolves every direct page of a run that succeeds, and only that run', async () => {
    const notifier = createNotifier(sinks());
    await notifier.notify({ ...base, channel: 'pager:security', message: 'login attack', severity: 'P0' });
    await notifier.notify({ ...base, channel: 'pager', message: 'agent down', severity: 'P1' });
    await notifier.notify({ ...base, runId: 'r2', channel: 'pager', message: 'agent down', severity: 'P1' });
    await notifier.runEnded({ runId: 'r1', status: 'succeeded' });
    expect(pd.incidents().map((i) => [i.routedTo, i.dedupKey.split(':')[1], i.status])).toEqual([
      ['security', 'r1', 'resolved'],
      ['default', 'r1', 'resolved'],
      ['default', 'r2', 'triggered'],
    ]);
    // Told twice (a replayed event): nothing more is sent.
    const sent = pd.events.length;
    await notifier.runEnded({ runId: 'r1', status: 'succeeded' });
    expect(pd.events).toHaveLength(sent);
  });

  it('posts to the Slack channel and keeps one status page incident per run', async () => {
    const notifier = createNotifier(sinks());
    await notifier.notify({
      ...base,
      channel: 'slack:#incidents',
      message: 'restarting agent',
      severity: 'P1',
    });
    await notifier.notify({ ...base, channel: 'statuspage', message: 'Agents degraded', severity: 'P1' });
    await notifier.notify({ ...base, channel: 'statuspage', message: 'Restart under way' });
    await notifier.notify({ ...base, channel: 'statuspage:resolved', message: 'Recovered' });
    expect(slack.posted('#incidents').map((m) => m.text)).toEqual([
      '[P1] agent-failure: restarting agent (run r1)',
    ]);
    const incidents = page.incidents();
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ name: 'Agents degraded', impact: 'major', status: 'resolved' });
    expect(incidents[0]?.incident_updates.map((u) => u.status)).toEqual([
      'resolved',
      'identified',
      'investigating',
    ]);
  });

  it('pages on-call for an escalation to a runbook rather than a channel', async () => {
    const notifier = createNotifier({ pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS }) });
    await notifier.notify({
      ...base,
      kind: 'escalate',
      channel: 'openrouter-outage',
      message: 'switch to the fallback',
      severity: 'P1',
    });
    expect(pd.incidents()).toEqual([
      expect.objectContaining({
        routedTo: 'default',
        dedupKey: runDedupKey('r1', 'escalate', 'switch to the fallback (escalated to openrouter-outage)'),
        summary: '[P1] agent-failure: switch to the fallback (escalated to openrouter-outage)',
      }),
    ]);
  });

  it('refuses unknown channels, naming the ones it has', async () => {
    const notifier = createNotifier(sinks());
    for (const channel of ['slack:#nowhere', 'fax', 'pager:dba', 'default', 'statuspage:fixed']) {
      const error = await notifier.notify({ ...base, channel, message: 'x' }).catch((e: unknown) => e);
      expect(isUnknownChannelError(error), channel).toBe(true);
      expect((error as Error).message).toContain('"slack:#incidents"');
    }
    expect(notifier.channels).toEqual([
      'pager',
      'pager:security',
      'pager:primary',
      'pager:backup',
      'slack:#incidents',
      'statuspage',
    ]);
    expect(pd.events).toHaveLength(0);
  });
});

describe('an escalated run through the engine (embedded store): pages, timeline and report', () => {
  const fx = engineFixture(DRIVERS.pglite);

  it('pages level 1 on escalation and reports the incident in Markdown', async () => {
    const world = new World();
    world.values.set('pods', 'crashloop token=ghp_abcdefghijklmnopqrstuvwxyz0123');
    const runbook = defineRunbook({
      id: 'agent-down',
      title: 'Agent down',
      severity: 'P1',
      input: z.object({ agent: z.string() }),
      async run({ input, step }) {
        const pods = await step.check('pods', valueIs(world, 'pods', 'running'));
        if (pods.status === 'ok') return step.done('healthy');
        await step.notify('tell-incidents', {
          channel: 'slack:#incidents',
          message: `${input.agent} is down, restarting`,
          severity: 'P1',
        });
        await step.notify('status-page', {
          channel: 'statuspage',
          message: 'Test agents degraded',
          severity: 'P1',
        });
        await step.act('restart', setValue(world, 'pods', 'running', { risk: 'high', verify: () => 'ok' }));
        return step.escalate('pods restarted but the agent keeps failing; page on-call', { severity: 'P1' });
      },
    });
    const escalator = new Escalator({ policy: ON_CALL_POLICY, pagerDuty: sinks().pagerDuty });
    const engine = fx.engine([runbook], { notifier: createNotifier({ ...sinks(), escalator }) });
    const context = {
      source: 'alertmanager',
      alert: {
        status: 'firing',
        labels: { alertname: 'AgentDown', agent: 'requirements-agent' },
        annotations: { summary: 'requirements-agent has no ready pods' },
        startsAt: new Date(Date.now() - 60_000).toISOString(),
      },
    };
    const first = await engine.start(
      'agent-down',
      { agent: 'requirements-agent' },
      { mode: 'execute', actor: 'alertmanager', context, approval: 'always' },
    );
    expect(first.status).toBe('waiting_approval');
    await engine.approve(first.runId, { actor: 'bob', reason: 'restart is safe' });
    const done = await engine.resume(first.runId);
    expect(done.status).toBe('escalated');
    await escalator.settled();

    // The escalation opened an incident keyed by the run and paged level 1 only.
    expect(pd.events.map((e) => [e.action, e.routedTo, e.dedupKey])).toEqual([
      ['trigger', 'primary', `${first.runId}:primary`],
    ]);
    expect(pd.events[0]?.summary).toContain('agent-down: pods restarted but the agent keeps failing');
    expect(slack.posted('#incidents').map((m) => m.text)).toEqual([
      `[P1] agent-down: requirements-agent is down, restarting (run ${first.runId})`,
    ]);
    expect(page.incidents().map((i) => i.name)).toEqual(['Test agents degraded']);

    // What the service's POST /incidents/:key/acknowledge writes, read back into the timeline.
    await fx.sut.store.appendAudit({
      ts: new Date().toISOString(),
      actor: 'carol',
      kind: 'escalation.acknowledged',
      runId: first.runId,
      data: { summary: 'x', paged: { primary: new Date().toISOString() } },
    });
    const detail = await engine.getRun(first.runId);
    const audit = await fx.sut.store.readRunAudit(first.runId);
    const timeline = incidentTimeline({ run: detail.run, audit });
    expect(timeline.map((e) => e.kind)).toEqual([
      'alert',
      'run',
      'check',
      'notification',
      'notification',
      'approval',
      'run',
      'approval',
      'action',
      'action',
      'end',
      'escalation',
    ]);
    expect(timeline.at(-1)?.text).toBe('On-call incident acknowledged by carol (paged: primary)');
    expect(timeline.map((e) => e.source).slice(-4)).toEqual([
      'action.applying',
      'action.applied',
      'run.escalated',
      'escalation.acknowledged',
    ]);
    expect(timeline[5]?.text).toBe('Approval requested for restart: set pods to "running"');

    const report = incidentReport({
      run: detail.run,
      audit,
      title: 'requirements-agent outage',
      impact: 'Test generation stopped for 12 minutes.',
      escalation: escalator.incident(first.runId) ?? { paged: {} },
    });
    expect(report).toContain('# requirements-agent outage');
    expect(report).toContain('**P1 - High**: Major functionality broken. Response time: 15 min.');
    expect(report).toContain(
      '- Outcome: **escalated**: pods restarted but the agent keeps failing; page on-call',
    );
    expect(report).toContain('Test generation stopped for 12 minutes.');
    expect(report).toMatch(
      /\| alert \| alertmanager \| Alert AgentDown firing: requirements-agent has no ready pods \|/,
    );
    expect(report).toMatch(/\| approval \| bob \| Approval approved by bob: restart is safe \|/);
    expect(report).toMatch(/- Action restart applied: set pods to "running"/);
    expect(report).toContain('Notified slack:#incidents: requirements-agent is down, restarting');
    expect(report).toMatch(/: paged primary/);
    expect(report).toContain('- [ ] The runbook escalated: record what the on-call engineer did by hand.');
    // The token in the check's summary was scrubbed by the engine and stays scrubbed in the report.
    expect(report).not.toContain('ghp_abcdefghijklmnopqrstuvwxyz0123');
    expect(report).toContain('[REDACTED]');
  });

  it("a run that pages security and then recovers resolves its page through the engine's onRunEnd", async () => {
    const world = new World();
    world.values.set('attack', 'on');
    const runbook = defineRunbook({
      id: 'login-attack',
      title: 'Login attack',
      severity: 'P0',
      input: z.object({}),
      async run({ step }) {
        await step.notify('page-security', {
          channel: 'pager:security',
          message: 'login attack',
          severity: 'P0',
        });
        await step.act('block', setValue(world, 'attack', 'off', { verify: () => 'ok' }));
        return step.done('blocked');
      },
    });
    const notifier = createNotifier(sinks());
    const engine = fx.engine([runbook], { notifier });
    const ended: Promise<void>[] = [];
    engine.onRunEnd((run) => ended.push(notifier.runEnded(run)));
    const run = await engine.start('login-attack', {}, { mode: 'execute', actor: 'alertmanager' });
    expect(run.status).toBe('succeeded');
    await Promise.all(ended);
    expect(pd.events.map((e) => [e.action, e.routedTo, e.dedupKey])).toEqual([
      ['trigger', 'security', runDedupKey(run.runId, 'notify', 'login attack')],
      ['resolve', 'security', runDedupKey(run.runId, 'notify', 'login attack')],
    ]);
    expect(pd.incidents()[0]?.status).toBe('resolved');
  });

  it('a notify step to an unknown channel fails the run with UNKNOWN_CHANNEL, without retrying', async () => {
    const runbook = defineRunbook({
      id: 'typo',
      title: 'Typo',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        await step.notify('tell', { channel: 'slack:#incidnets', message: 'hello' });
        return step.done('done');
      },
    });
    const engine = fx.engine([runbook], { notifier: createNotifier(sinks()) });
    const run = await engine.start('typo', {}, { mode: 'execute', actor: 'alice' });
    expect(run.status).toBe('failed');
    const detail = await engine.getRun(run.runId);
    expect(detail.run.error?.code).toBe('UNKNOWN_CHANNEL');
    expect(detail.steps[0]?.attempts).toBe(1);
    expect(slack.messages).toHaveLength(0);
  });
});
