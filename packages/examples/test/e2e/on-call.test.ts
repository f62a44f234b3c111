import { join } from 'node:path';
import { Engine, openStore, type RunStore } from '@aiwebtest/runbooks';
import { incidentReport, type NotifyWiring, notifierFromConfig } from '@aiwebtest/runbooks/notify';
import { readServiceConfig } from '@aiwebtest/runbooks/server';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentFailureRunbook } from '../../src/aiwebtest/agent-failure';
import { type AiWebTest, connectAiWebTest } from '../../src/aiwebtest/environment';
import { compressedOnCallPolicy } from '../../src/aiwebtest/on-call';
import { labNotifyVariables } from '../../src/lab/notify/lab-notify';
import { startTestLab, type TestLab } from '../support/test-lab';
import { until } from '../support/until';

// The on-call procedure end to end on a lab: an agent that a restart does not cure makes agent-failure end
// escalated; the runbook service's notifier (built from prometheus/service-lab.yaml, as `runbook serve` builds it)
// opens an on-call incident and pages the lab's PagerDuty double; nobody acknowledges, so the backup is paged
// (the manual's 15 minutes compressed to 1 s); the acknowledgement stops the escalation before the senior
// engineer; the run's audit becomes the incident report.
const SERVICE_LAB = join(import.meta.dirname, '../../prometheus/service-lab.yaml');
const AGENT = 'evolution-agent';

let lab: TestLab;
let store: RunStore;
let platform: AiWebTest;
let wiring: NotifyWiring;
let engine: Engine;

beforeAll(async () => {
  [lab, store] = await Promise.all([startTestLab(), openStore({ dataDir: ':memory:' })]);
  platform = connectAiWebTest(lab.env);
  const config = readServiceConfig(SERVICE_LAB).notify;
  if (!config) throw new Error('service-lab.yaml has no notify: section');
  // Time / 900: backup after 1 s, senior engineer after 2 s, status updates every 2 s.
  wiring = notifierFromConfig(
    { ...config, escalation: compressedOnCallPolicy(900) },
    labNotifyVariables(lab.env),
  );
  engine = new Engine({
    store,
    runbooks: [createAgentFailureRunbook({ connect: () => platform })],
    notifier: wiring.notifier,
    secrets: wiring.secrets,
  });
  wiring.escalator?.start();
}, 90_000);
afterAll(async () => {
  wiring?.escalator?.stop();
  await platform?.close();
  await store?.close();
  await lab?.close();
});

const readyReplicas = () =>
  (
    lab.simulator.store.get(DEPLOYMENTS, lab.namespace, AGENT)?.status as
      | { readyReplicas?: number }
      | undefined
  )?.readyReplicas ?? 0;

describe('on-call: an escalated run pages, escalates and stops on acknowledgement', () => {
  it('pages primary, then backup when unacknowledged; acknowledging stops it; the report tells the story', async () => {
    const notifications = lab.notifications;
    if (!notifications || !wiring.escalator) throw new Error('the lab has no notification doubles');
    const pd = notifications.pagerDuty;
    const fault = lab.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: lab.namespace,
      selector: `app=${AGENT}`,
      message: 'EvolutionAgent is not responding',
    });
    try {
      await until(`${AGENT} down`, () => readyReplicas() === 0);
      const run = await engine.start(
        'agent-failure',
        { agent: AGENT, readyTimeout: '3s' },
        { mode: 'execute', actor: 'alertmanager' },
      );
      expect(run.status).toBe('escalated');
      const triggers = () => pd.events.filter((e) => e.action === 'trigger' && e.status === 202);

      // Level 1 at once, keyed by the run.
      await until('primary paged', () => triggers().length >= 1, 5_000);
      expect(triggers().map((e) => [e.routedTo, e.dedupKey, e.severity])).toEqual([
        ['primary', `${run.runId}:primary`, 'error'],
      ]);
      expect(triggers()[0]?.summary).toMatch(/^\[P1\] agent-failure: restart did not cure evolution-agent/);
      // Nobody acknowledges: the backup is paged after the (compressed) 15 minutes.
      await until('backup paged', () => triggers().length >= 2, 10_000);
      expect(triggers().map((e) => e.routedTo)).toEqual(['primary', 'backup']);

      await wiring.escalator.acknowledge(run.runId, 'alice');
      // Past the senior engineer's 30 minutes (2 s here) and more: nobody else is paged, nobody twice.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await wiring.escalator.settled();
      expect(triggers().map((e) => e.routedTo)).toEqual(['primary', 'backup']);
      expect(pd.incident(`${run.runId}:primary`, 'primary')?.status).toBe('acknowledged');
      expect(pd.incident(`${run.runId}:backup`, 'backup')?.status).toBe('acknowledged');
      // P1: the escalation opened a status page incident (investigating); the first update after the
      // acknowledgement says the issue is identified.
      await until(
        'a status update after the acknowledgement',
        () => notifications.statusPage.incidents()[0]?.status === 'identified',
        5_000,
      );
      const [page] = notifications.statusPage.incidents();
      expect(page?.impact).toBe('major');
      expect(page?.incident_updates.at(-1)?.status).toBe('investigating');
      expect(notifications.slack.posted('#incidents').map((m) => m.text)).toContainEqual(
        expect.stringContaining('acknowledged by alice'),
      );

      await wiring.escalator.resolve(run.runId, 'alice');
      expect(pd.incident(`${run.runId}:backup`, 'backup')?.status).toBe('resolved');
      expect(notifications.statusPage.incidents()[0]?.status).toBe('resolved');

      const detail = await engine.getRun(run.runId);
      const report = incidentReport({
        run: detail.run,
        audit: await store.readRunAudit(run.runId),
        title: 'evolution-agent crash loop',
        escalation: wiring.escalator.incident(run.runId) ?? { paged: {} },
      });
      expect(report).toContain('# evolution-agent crash loop');
      expect(report).toContain('**P1 - High**');
      expect(report).toMatch(/- Outcome: \*\*escalated\*\*: restart did not cure evolution-agent/);
      expect(report).toMatch(/\| check \| alertmanager \| Check pod-status: fail: 0\/2 pods ready/);
      expect(report).toContain(
        '- Action restart verify-failed: Restart Deployment aiwebtest/evolution-agent',
      );
      expect(report).toContain('- [ ] Find out why restart did not hold (action.verify-failed).');
      expect(report).toMatch(
        /: paged primary\n- .*: paged backup\n- .*: acknowledged by alice\n- .*: resolved/,
      );
    } finally {
      fault.clear();
    }
  }, 120_000);
});
