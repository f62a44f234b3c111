import { RESTARTED_AT_ANNOTATION } from '@aiwebtest/runbooks/kubernetes';
import { DEPLOYMENTS, type KubeObject } from '@aiwebtest/runbooks/testing';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activity, startActivity } from './activity';
import { type LabHealthOptions, labHealth } from './lab-health';
import { createLabMetrics } from './lab-metrics';
import { type LabPartsFixture, sample, startLabPartsFixture, until } from './lab-parts.fixture';
import { SCENARIO_CATALOG, SCENARIOS, scenario } from './scenarios';

// Windows of seconds instead of minutes, so an incident shows (and its end shows) within a test.
const WINDOWS = { confidenceWindowMinutes: 0.05, p95WindowMinutes: 0.05 };
const HEALTH: LabHealthOptions = { ...WINDOWS };

let lab: LabPartsFixture;
let activity: Activity;
let metrics: Registry;

const failing = async () => (await labHealth(lab.parts, HEALTH)).checks.filter((c) => !c.ok);
const healthy = () =>
  until('a healthy lab', async () => {
    const bad = await failing();
    return bad.length === 0 || bad.map((c) => `${c.name}: ${c.detail}`).join('; ');
  });
const failingCheck = (name: string, detail: RegExp = /./) =>
  until(`the "${name}" check to fail with ${detail}`, async () =>
    (await failing()).some((c) => c.name === name && detail.test(c.detail)),
  );
const metric = async (series: string) => sample(await metrics.metrics(), series);

beforeAll(async () => {
  // This file writes stale generation-cache entries: Redis database 14 is its own.
  lab = await startLabPartsFixture();
  activity = startActivity(lab.parts, { tickMs: 200, executionRealMs: [200, 400], trafficPerSecond: 4 });
  metrics = createLabMetrics(lab.parts, WINDOWS);
  await healthy();
});

afterAll(async () => {
  await activity?.stop();
  await lab?.close();
});

describe('scenario catalog', () => {
  it('has one scenario per runbook and refuses an unknown name', () => {
    expect(new Set(Object.values(SCENARIO_CATALOG).map((s) => s.runbook)).size).toBe(9);
    expect(Object.keys(SCENARIO_CATALOG)).toEqual(SCENARIOS.options);
    expect(() => scenario('requirements-agent-dwon')).toThrow(/expected a scenario name/);
  });
});

describe('scenarios', () => {
  it('requirements-agent-down: the agent crash-loops with the manual log line, then recovers', async () => {
    const incident = await scenario('requirements-agent-down').inject(lab.parts);
    try {
      await failingCheck('agent requirements-agent', /crash-looping/);
      const check = (await failing()).find((c) => c.name === 'agent requirements-agent');
      expect(check?.detail).toMatch(/requirements-agent is down: 0 of 2 pods ready, crash-looping/);
      expect(await metric('agent_health{agent="requirements_agent"}')).toBe(0);
      const pod = check?.detail.match(/crash-looping: ([a-z0-9-]+)/)?.[1];
      const log = await fetch(
        `${lab.parts.simulator.url}/api/v1/namespaces/${lab.parts.namespace}/pods/${pod}/log?previous=true`,
      );
      expect(await log.text()).toContain('RequirementsAgent is not responding');
    } finally {
      await incident.undo();
    }
    await healthy();
    expect(await metric('agent_health{agent="requirements_agent"}')).toBe(1);
  });

  it("requirements-agent-down is healed by the runbook's rollout restart, without undo", async () => {
    const incident = await scenario('requirements-agent-down').inject(lab.parts);
    try {
      await failingCheck('agent requirements-agent', /crash-looping/);
      // `kubectl rollout restart deployment/requirements-agent`: a new template annotation, new pods.
      const store = lab.parts.simulator.store;
      const deployment = store.get(DEPLOYMENTS, lab.parts.namespace, 'requirements-agent') as KubeObject & {
        spec: { template: { metadata: { annotations?: Record<string, string> } } };
      };
      deployment.spec.template.metadata.annotations = {
        ...deployment.spec.template.metadata.annotations,
        [RESTARTED_AT_ANNOTATION]: new Date().toISOString(),
      };
      store.update(DEPLOYMENTS, deployment);
      await healthy();
    } finally {
      await incident.undo();
    }
  });

  it('generation-quality-drop: confidence falls below 0.7, then recovers', async () => {
    const incident = await scenario('generation-quality-drop').inject(lab.parts);
    try {
      await failingCheck('generation confidence', /< 0\.7/);
      await until(
        'agent_confidence < 0.7',
        async () => ((await metric('agent_confidence{agent="generation_agent"}')) ?? 1) < 0.7,
      );
    } finally {
      await incident.undo();
    }
    await healthy();
    await until(
      'agent_confidence >= 0.7',
      async () => ((await metric('agent_confidence{agent="generation_agent"}')) ?? 0) >= 0.7,
    );
  });
});
