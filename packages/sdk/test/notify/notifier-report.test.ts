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

  it('pages a team with a dedup key per run, so repeats update one PagerDuty incident', async () => {
    const notifier = createNotifier(sinks());
    await notifier.notify({ ...base, channel: 'pager:security', message: 'login attack', severity: 'P0' });
    await notifier.notify({
      ...base,
      channel: 'pager:security',
      message: 'login attack (again)',
      severity: 'P0',
    });
    expect(pd.incidents()).toEqual([
      expect.objectContaining({
        routedTo: 'security',
        dedupKey: 'run:r1',
        triggers: 2,
        severity: 'critical',
      }),
    ]);
    expect(pd.incidents()[0]?.summary).toBe('[P0] agent-failure: login attack');
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
        dedupKey: 'run:r1',
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
