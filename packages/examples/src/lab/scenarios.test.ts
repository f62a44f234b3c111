import { RESTARTED_AT_ANNOTATION } from '@aiwebtest/runbooks/kubernetes';
import { DEPLOYMENTS, type KubeObject } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScenarioLab, startScenarioLab } from '../../test/support/scenario-lab';
import { until } from './lab-parts.fixture';
import { SCENARIO_CATALOG, SCENARIOS, scenario } from './scenarios';

let lab: ScenarioLab;

beforeAll(async () => {
  lab = await startScenarioLab();
});

afterAll(async () => {
  await lab?.close();
});

describe('scenario catalog', () => {
  it('has one scenario per runbook and refuses an unknown name', () => {
    expect(new Set(Object.values(SCENARIO_CATALOG).map((s) => s.runbook)).size).toBe(13);
    expect(Object.keys(SCENARIO_CATALOG)).toEqual(SCENARIOS.options);
    expect(() => scenario('requirements-agent-dwon')).toThrow(/expected a scenario name/);
  });
});

describe('scenarios', () => {
  it('requirements-agent-down: the agent crash-loops with the manual log line, then recovers', async () => {
    const incident = await scenario('requirements-agent-down').inject(lab.parts);
    try {
      await lab.failingCheck('agent requirements-agent', /crash-looping/);
      const check = (await lab.failing()).find((c) => c.name === 'agent requirements-agent');
      expect(check?.detail).toMatch(/requirements-agent is down: 0 of 2 pods ready, crash-looping/);
      expect(await lab.metric('agent_health{agent="requirements_agent"}')).toBe(0);
      const pod = check?.detail.match(/crash-looping: ([a-z0-9-]+)/)?.[1];
      const log = await fetch(
        `${lab.parts.simulator.url}/api/v1/namespaces/${lab.parts.namespace}/pods/${pod}/log?previous=true`,
      );
      expect(await log.text()).toContain('RequirementsAgent is not responding');
    } finally {
      await incident.undo();
    }
    await lab.healthy();
    expect(await lab.metric('agent_health{agent="requirements_agent"}')).toBe(1);
  });

  it("requirements-agent-down is healed by the runbook's rollout restart, without undo", async () => {
    const incident = await scenario('requirements-agent-down').inject(lab.parts);
    try {
      await lab.failingCheck('agent requirements-agent', /crash-looping/);
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
      await lab.healthy();
    } finally {
      await incident.undo();
    }
  });

  it('generation-quality-drop: confidence falls below 0.7, then recovers', async () => {
    const incident = await scenario('generation-quality-drop').inject(lab.parts);
    try {
      await lab.failingCheck('generation confidence', /< 0\.7/);
      await until(
        'agent_confidence < 0.7',
        async () => ((await lab.metric('agent_confidence{agent="generation_agent"}')) ?? 1) < 0.7,
      );
    } finally {
      await incident.undo();
    }
    await lab.healthy();
    await until(
      'agent_confidence >= 0.7',
      async () => ((await lab.metric('agent_confidence{agent="generation_agent"}')) ?? 0) >= 0.7,
    );
  });
});
