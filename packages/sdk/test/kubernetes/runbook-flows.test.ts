import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { rolloutRestart } from '../../src/kubernetes/actions/rollout-restart';
import { scale } from '../../src/kubernetes/actions/scale';
import { waitForRollout } from '../../src/kubernetes/actions/wait-for-rollout';
import { podStatus } from '../../src/kubernetes/checks';
import type { KubernetesCluster } from '../../src/kubernetes/cluster';
import { DEPLOYMENTS, PODS, REPLICASETS } from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { engineFixture } from '../support/engine-fixture';
import { startSimulatedCluster } from '../support/kubernetes';
import { DRIVERS } from '../support/stores';

// Whole runbooks run through the real Engine (embedded PGlite store) against the project's Kubernetes API
// simulator, driven by the real @kubernetes/client-node: the manual's "agent failure" recovery, end to end.

const NS = 'aiwebtest';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS] }));
});

afterAll(async () => {
  await sim?.close();
});

function agent(name: string, replicas = 2) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'agent', image: `aiwebtest/${name}:1.0` }] },
      },
    },
  };
}

async function seed(name: string, replicas = 2): Promise<void> {
  sim.apply(agent(name, replicas));
  await sim.settle();
}

const podTemplateHashOf = (name: string) =>
  sim.store.list(REPLICASETS, NS).items.find((rs) => rs.metadata.labels?.app === name)?.metadata.labels?.[
    'pod-template-hash'
  ];

/** The manual's runbook 1 (agent failure): check the pods, restart, wait for ready, check again. */
const agentFailure = defineRunbook({
  id: 'agent-failure',
  title: 'Agent failure recovery',
  severity: 'P1',
  input: z.object({ agent: z.string(), timeout: z.string().default('20s') }),
  async run({ input, step }) {
    const selector = `app=${input.agent}`;
    const pods = await step.check('pods', podStatus(cluster, { namespace: NS, selector }));
    if (pods.status === 'ok') return step.done('agent healthy');
    await step.act(
      'restart',
      rolloutRestart(cluster, { namespace: NS, name: input.agent, timeout: input.timeout }),
      { onGiveUp: step.escalate('restart did not help: page on-call', { severity: 'P1' }) },
    );
    await step.check('wait', waitForRollout(cluster, { namespace: NS, name: input.agent, timeout: '10s' }));
    const after = await step.check('pods-after', podStatus(cluster, { namespace: NS, selector }));
    return after.status === 'ok' ? step.done(`restarted: ${after.summary}`) : step.escalate(after.summary);
  },
});

/** Restarts unconditionally (`n` only makes each run's input differ). */
const restartOnly = defineRunbook({
  id: 'restart-only',
  title: 'Restart only',
  severity: 'P3',
  input: z.object({ agent: z.string(), n: z.number().default(0) }),
  async run({ input, step }) {
    await step.act('restart', rolloutRestart(cluster, { namespace: NS, name: input.agent, timeout: '20s' }));
    return step.done('restarted');
  },
});

/** Scales out, verifies, and scales back in: two actions on one deployment in one run. */
const capacity = defineRunbook({
  id: 'capacity-burst',
  title: 'Capacity burst',
  severity: 'P2',
  input: z.object({ agent: z.string(), replicas: z.number() }),
  async run({ input, step }) {
    await step.act(
      'scale-out',
      scale(cluster, { namespace: NS, name: input.agent, replicas: input.replicas }),
    );
    await step.act('scale-in', scale(cluster, { namespace: NS, name: input.agent, replicas: 1 }));
    return step.done('burst handled');
  },
});

/** Waits until every pod of the app is in CrashLoopBackOff. */
async function untilCrashLooping(app: string): Promise<void> {
  await vi.waitFor(
    () => {
      const pods = sim.store.list(PODS, NS).items.filter((p) => p.metadata.labels?.app === app);
      expect(pods.length).toBeGreaterThan(0);
      for (const p of pods) expect(JSON.stringify(p.status)).toContain('CrashLoopBackOff');
    },
    { timeout: 5_000, interval: 20 },
  );
}

describe('Kubernetes runbooks on the engine (embedded store, simulated cluster)', () => {
  const fx = engineFixture(DRIVERS.pglite);

  it('checks the pods, restarts the deployment, verifies the rollout and ends done', async () => {
    await seed('requirements-agent');
    // Only the current pods crash (their template hash): the restarted ones are healthy.
    const hash = podTemplateHashOf('requirements-agent');
    const fault = sim.faults.inject({
      kind: 'crashLoop',
      namespace: NS,
      selector: `app=requirements-agent,pod-template-hash=${hash}`,
    });
    try {
      await untilCrashLooping('requirements-agent'); // so the diagnosis sees the incident
      const engine = fx.engine([agentFailure]);
      const result = await engine.start(
        'agent-failure',
        { agent: 'requirements-agent' },
        { mode: 'execute', actor: 'alertmanager' },
      );
      expect(result.status).toBe('succeeded');
      expect(result.outcome).toEqual({
        kind: 'done',
        summary: expect.stringMatching(/^restarted: 2\/2 pods ready/),
      });
      const { steps } = await engine.getRun(result.runId);
      expect(steps.map((s) => [s.name, s.status])).toEqual([
        ['pods', 'succeeded'],
        ['restart', 'succeeded'],
        ['wait', 'succeeded'],
        ['pods-after', 'succeeded'],
      ]);
      expect(steps[0]?.result).toMatchObject({ status: 'fail' });
      const restart = steps[1]?.result as {
        status: string;
        plan: { params: { restartedAt: string } };
        verification: { status: string };
      };
      expect(restart.status).toBe('applied');
      expect(restart.verification.status).toBe('ok');
      // The effect, in the cluster: the planned timestamp on the template, all pods from the new ReplicaSet.
      const d = sim.store.get(DEPLOYMENTS, NS, 'requirements-agent');
      const template = (d.spec as { template: { metadata: { annotations: Record<string, string> } } })
        .template;
      expect(template.metadata.annotations['kubectl.kubernetes.io/restartedAt']).toBe(
        restart.plan.params.restartedAt,
      );
      const pods = sim.store
        .list(PODS, NS)
        .items.filter(
          (p) => p.metadata.labels?.app === 'requirements-agent' && !p.metadata.deletionTimestamp,
        );
      expect(pods).toHaveLength(2);
      expect(pods.every((p) => p.metadata.labels?.['pod-template-hash'] !== hash)).toBe(true);
      expect((await engine.verifyAudit()).ok).toBe(true);
    } finally {
      fault.clear();
    }
  });

  it('ends done without touching a healthy deployment, and a plan-mode run changes nothing', async () => {
    await seed('healthy-agent');
    const engine = fx.engine([agentFailure]);
    const rv = sim.store.get(DEPLOYMENTS, NS, 'healthy-agent').metadata.resourceVersion;
    const result = await engine.start(
      'agent-failure',
      { agent: 'healthy-agent' },
      { mode: 'execute', actor: 'a' },
    );
    expect(result.outcome).toEqual({ kind: 'done', summary: 'agent healthy' });
    expect(sim.store.get(DEPLOYMENTS, NS, 'healthy-agent').metadata.resourceVersion).toBe(rv);

    const planner = fx.engine([restartOnly]);
    const planned = await planner.start(
      'restart-only',
      { agent: 'healthy-agent' },
      { mode: 'plan', actor: 'a' },
    );
    expect(planned.status).toBe('succeeded');
    const step = (await planner.getRun(planned.runId)).steps[0]?.result as {
      status: string;
      plan: { summary: string; changes: { field: string; before: unknown }[] };
    };
    expect(step.status).toBe('planned');
    expect(step.plan.summary).toBe(
      'Restart Deployment aiwebtest/healthy-agent (revision 1, 2/2 ready): every pod is replaced',
    );
    expect(step.plan.changes[0]).toMatchObject({ before: null });
    expect(sim.store.get(DEPLOYMENTS, NS, 'healthy-agent').metadata.resourceVersion).toBe(rv);
  });

  it('restarting a deployment that keeps crash-looping fails verify naming CrashLoopBackOff, within its timeout', async () => {
    await seed('execution-agent');
    const fault = sim.faults.inject({ kind: 'crashLoop', namespace: NS, selector: 'app=execution-agent' });
    try {
      await untilCrashLooping('execution-agent');
      const engine = fx.engine([agentFailure]);
      const timeoutMs = 8_000;
      const started = Date.now();
      const result = await engine.start(
        'agent-failure',
        { agent: 'execution-agent', timeout: '8s' },
        { mode: 'execute', actor: 'alertmanager' },
      );
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(timeoutMs + 3_000);
      expect(result.status).toBe('escalated');
      expect(result.outcome).toMatchObject({
        kind: 'escalate',
        reason: 'restart did not help: page on-call',
      });
      const { steps } = await engine.getRun(result.runId);
      const restart = steps.find((s) => s.name === 'restart');
      expect(restart?.status).toBe('failed');
      expect(restart?.error).toMatchObject({
        code: 'VERIFICATION_FAILED',
        message: expect.stringContaining('CrashLoopBackOff'),
      });
      expect(restart?.result).toMatchObject({ status: 'verification-failed' });
      const recorded = (restart?.result ?? {}) as unknown as {
        verification: { status: string; summary: string };
      };
      expect(recorded.verification.status).toBe('fail');
      expect(recorded.verification.summary).toMatch(
        /pods of the new revision are failing: execution-agent-\S+\/agent CrashLoopBackOff/,
      );
      // The restart did happen: the pods are new, and still crashing.
      const d = sim.store.get(DEPLOYMENTS, NS, 'execution-agent');
      expect(d.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
    } finally {
      fault.clear();
      sim.store.delete(DEPLOYMENTS, NS, 'execution-agent');
    }
  });

  it('the restart budget stops the fourth restart within the hour', async () => {
    await seed('budget-agent', 1);
    const engine = fx.engine([restartOnly]);
    for (let n = 1; n <= 3; n++) {
      const r = await engine.start(
        'restart-only',
        { agent: 'budget-agent', n },
        { mode: 'execute', actor: 'a' },
      );
      expect(r.status).toBe('succeeded');
    }
    const fourth = await engine.start(
      'restart-only',
      { agent: 'budget-agent', n: 4 },
      { mode: 'execute', actor: 'a' },
    );
    expect(fourth.status).toBe('escalated');
    expect(fourth.outcome).toMatchObject({ reason: expect.stringContaining('Remediation budget spent') });
    const d = sim.store.get(DEPLOYMENTS, NS, 'budget-agent');
    expect(d.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('4');
  });

  it('scales out and back in within one run, each step verified', async () => {
    await seed('generation-agent', 1);
    const engine = fx.engine([capacity]);
    const result = await engine.start(
      'capacity-burst',
      { agent: 'generation-agent', replicas: 3 },
      { mode: 'execute', actor: 'a' },
    );
    expect(result.status).toBe('succeeded');
    const { steps } = await engine.getRun(result.runId);
    const out = steps.find((s) => s.name === 'scale-out')?.result as {
      plan: { changes: unknown[] };
      verification: { status: string };
    };
    expect(out.plan.changes).toEqual([
      { target: 'k8s:aiwebtest/deployment/generation-agent', field: 'spec.replicas', before: 1, after: 3 },
    ]);
    expect(out.verification.status).toBe('ok');
    expect(sim.store.get(DEPLOYMENTS, NS, 'generation-agent').status).toMatchObject({
      replicas: 1,
      readyReplicas: 1,
    });
  });
});
