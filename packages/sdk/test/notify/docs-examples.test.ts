import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { Engine } from '../../src/engine/engine';
import {
  createNotifier,
  EscalationPolicy,
  Escalator,
  incidentReport,
  pagerDuty,
  slackWebhook,
} from '../../src/notify';
import { openStore } from '../../src/store/open-store';
import { startPagerDutyDouble, startSlackDouble } from '../../src/testing/notify';
import { expectDocsShowTested } from '../support/docs-drift';

const NOTIFY_MD = new URL('../../NOTIFY.md', import.meta.url);

describe('NOTIFY.md examples run as shown', () => {
  it('notify-escalation: backup paged when nobody acknowledges, nothing after the acknowledgement', async () => {
    // docs:begin notify-escalation
    // Integration keys are 32 characters; in production they come from your secrets, never from code.
    const routingKeys = { primary: 'p'.repeat(32), backup: 'b'.repeat(32), senior: 's'.repeat(32) };
    const pagerDutyDouble = await startPagerDutyDouble({ routingKeys });
    const escalator = new Escalator({
      // The manual's path with compressed time: backup after 300 ms, senior engineer after 2 s.
      policy: EscalationPolicy.parse({
        levels: [
          { name: 'primary', team: 'primary' },
          { name: 'backup', team: 'backup', after: '300ms' },
          { name: 'senior', team: 'senior', after: '2s', severities: ['P0', 'P1'] },
        ],
      }),
      pagerDuty: pagerDuty({ url: pagerDutyDouble.url, routingKeys }),
    });
    escalator.start();
    await escalator.open({ key: 'run-42', severity: 'P1', summary: 'generation-agent down' });
    await new Promise((resolve) => setTimeout(resolve, 600));
    await escalator.settled();
    await escalator.acknowledge('run-42', 'alice');
    const paged = pagerDutyDouble.events.filter((e) => e.action === 'trigger').map((e) => e.routedTo);
    // paged: ['primary', 'backup']; both PagerDuty incidents are now acknowledged, the senior is never paged.
    escalator.stop();
    await pagerDutyDouble.close();
    // docs:end notify-escalation
    expect(paged).toEqual(['primary', 'backup']);
    expect(escalator.incident('run-42')?.acknowledgedBy).toBe('alice');
    expect(Object.keys(escalator.incident('run-42')?.paged ?? {})).toEqual(['primary', 'backup']);
  });

  it('notify-engine: a runbook notifies Slack through the engine, and the run becomes a report', async () => {
    // docs:begin notify-engine
    const slackDouble = await startSlackDouble({ channels: ['#incidents'] });
    const notifier = createNotifier({
      slack: {
        '#incidents': slackWebhook({ url: slackDouble.webhookUrl('#incidents'), channel: '#incidents' }),
      },
    });
    const checkIn = defineRunbook({
      id: 'check-in',
      title: 'Tell the channel',
      severity: 'P2',
      input: z.object({ agent: z.string() }),
      async run({ input, step }) {
        await step.notify('tell', {
          channel: 'slack:#incidents',
          message: `${input.agent} is slow`,
          severity: 'P2',
        });
        return step.done('told');
      },
    });
    const store = await openStore({ dataDir: ':memory:' });
    const engine = new Engine({ store, runbooks: [checkIn], notifier });
    const { runId } = await engine.start(
      'check-in',
      { agent: 'execution-agent' },
      { mode: 'execute', actor: 'alice' },
    );
    const { run } = await engine.getRun(runId);
    const report = incidentReport({ run, audit: await store.readRunAudit(runId), impact: 'Slow test runs.' });
    // slackDouble.posted('#incidents')[0].text: "[P2] check-in: execution-agent is slow (run …)"
    // report: "# Incident: check-in", "## Timeline", "| … | notification | engine | Notified slack:#incidents: …"
    await store.close();
    await slackDouble.close();
    // docs:end notify-engine
    expect(slackDouble.posted('#incidents').map((m) => m.text)).toEqual([
      `[P2] check-in: execution-agent is slow (run ${runId})`,
    ]);
    expect(report).toContain('# Incident: check-in');
    expect(report).toMatch(
      /\| notification \| alice \| Notified slack:#incidents: execution-agent is slow \|/,
    );
    expect(report).toContain('Slow test runs.');
  }, 60_000);

  it('NOTIFY.md shows exactly the tested code', () => {
    const self = new URL(import.meta.url);
    expectDocsShowTested(NOTIFY_MD, self, 'notify-escalation');
    expectDocsShowTested(NOTIFY_MD, self, 'notify-engine');
  });
});
