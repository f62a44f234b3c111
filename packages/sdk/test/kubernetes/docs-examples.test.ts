import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine, openStore, type RunStore } from '../../src';
import { kubernetes } from '../../src/kubernetes';
import {
  DEPLOYMENTS,
  type KubeObject,
  type KubernetesSimulator,
  PODS,
  startKubernetesSimulator,
} from '../../src/testing';
import { expectDocsShowTested } from '../support/docs-drift';
import { agentFailure } from './docs-example-runbook';

// Keeps KUBERNETES.md and TESTING.md honest. The code between the docs markers below is the vitest example
// of TESTING.md (shown there as `agent-failure.test.ts`), and docs-example-runbook.ts holds the runbook of
// KUBERNETES.md (shown as `agent-failure.ts`). Both are copied into the docs exactly, except the import
// lines: the docs import from the package (`@aiwebtest/runbooks`, `/kubernetes`, `/testing`) and from
// `./agent-failure`; this file imports from the sources. The last describe block checks that the copies
// still match, so a change here that is not made in the docs (or the other way round) fails the suite.

// docs:begin agent-failure.test.ts
const NS = 'aiwebtest';
let sim: KubernetesSimulator;
let store: RunStore;
let engine: Engine;

beforeAll(async () => {
  // Context "lab"; a crashed container restarts after 100 ms instead of a real kubelet's 10 s to 5 min.
  sim = await startKubernetesSimulator({
    contextName: 'lab',
    namespace: NS,
    cluster: { crashBackoff: '100ms' },
  });
  store = await openStore({ dataDir: ':memory:' });
  const k8s = kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'lab', namespaces: [NS] });
  engine = new Engine({ store, runbooks: [agentFailure(k8s)] });
});

afterAll(async () => {
  await store?.close();
  await sim?.close();
});

/** Seeds a two-replica agent, waits until it runs, and returns the `pod-template-hash` of its pods. */
async function deployAgent(name: string): Promise<string | undefined> {
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'agent', image: `aiwebtest/${name}:1.0` }] },
      },
    },
  });
  await sim.settle();
  const pod = sim.store.list(PODS, NS).items.find((p) => p.metadata.labels?.app === name);
  return pod?.metadata.labels?.['pod-template-hash'];
}

/** Restarts of the pod's first container, as the simulated kubelet reports them. */
function restarts(pod: KubeObject): number {
  const status = pod.status as { containerStatuses?: { restartCount: number }[] } | undefined;
  return status?.containerStatuses?.[0]?.restartCount ?? 0;
}

/** Waits until every pod of the agent has crashed at least once, so `logs --previous` has something. */
async function untilCrashLooping(name: string): Promise<void> {
  await vi.waitFor(
    () => {
      const pods = sim.store.list(PODS, NS).items.filter((p) => p.metadata.labels?.app === name);
      expect(pods.length).toBeGreaterThan(0);
      expect(pods.every((p) => restarts(p) > 0)).toBe(true);
    },
    { timeout: 5_000, interval: 50 },
  );
}

describe('agent-failure', () => {
  it('restarts a crash-looping agent, retrying a failed PATCH, and ends done', async () => {
    const hash = await deployAgent('requirements-agent');
    // Only the pods of the current template crash: the pods the restart creates start clean.
    const crash = sim.faults.inject({
      kind: 'crashLoop',
      namespace: NS,
      selector: `app=requirements-agent,pod-template-hash=${hash}`,
      message: 'redis: connection refused',
    });
    // The API server answers the restart's first PATCH with 503, as in a control-plane blip.
    sim.faults.inject({
      kind: 'apiError',
      code: 503,
      method: 'PATCH',
      path: `/apis/apps/v1/namespaces/${NS}/deployments/requirements-agent`,
      times: 1,
    });
    try {
      await untilCrashLooping('requirements-agent');
      const run = await engine.start(
        'agent-failure',
        { agent: 'requirements-agent' },
        { mode: 'execute', actor: 'alertmanager' },
      );

      expect(run.status).toBe('succeeded');
      expect(run.outcome).toMatchObject({
        kind: 'done',
        summary: expect.stringContaining('deployment "requirements-agent" successfully rolled out'),
      });
      const { steps } = await engine.getRun(run.runId);
      expect(steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
        ['pods', 'succeeded', 1],
        ['logs', 'succeeded', 1],
        ['restart', 'succeeded', 2], // the 503 was retried
        ['rollout', 'succeeded', 1],
      ]);
      expect(steps[0]?.result).toMatchObject({ status: 'fail' });
      expect(steps[1]?.result).toMatchObject({
        status: 'warn',
        summary: expect.stringContaining('match /error|fatal|panic/i'),
      });
    } finally {
      crash.clear();
    }
  });

  it('escalates when the restarted pods crash too', async () => {
    await deployAgent('execution-agent');
    const crash = sim.faults.inject({ kind: 'crashLoop', namespace: NS, selector: 'app=execution-agent' });
    try {
      await untilCrashLooping('execution-agent');
      const run = await engine.start(
        'agent-failure',
        { agent: 'execution-agent' },
        { mode: 'execute', actor: 'alertmanager' },
      );

      expect(run.status).toBe('escalated');
      expect(run.outcome).toMatchObject({
        kind: 'escalate',
        reason: 'restart of execution-agent did not bring it back: page on-call',
      });
      const restart = (await engine.getRun(run.runId)).steps.find((s) => s.name === 'restart');
      expect(restart?.error).toMatchObject({
        code: 'VERIFICATION_FAILED',
        message: expect.stringContaining('CrashLoopBackOff'),
      });
    } finally {
      crash.clear();
    }
  });
});
// docs:end agent-failure.test.ts

describe('agent-failure in the other modes, and the guard rails (KUBERNETES.md)', () => {
  it('ends done without a restart when the agent is healthy', async () => {
    await deployAgent('healthy-agent');
    const rv = sim.store.get(DEPLOYMENTS, NS, 'healthy-agent').metadata.resourceVersion;
    const run = await engine.start(
      'agent-failure',
      { agent: 'healthy-agent' },
      { mode: 'execute', actor: 'a' },
    );
    expect(run.outcome).toEqual({
      kind: 'done',
      summary: `agent healthy: 2/2 pods ready in ${NS} (app=healthy-agent)`,
    });
    expect(sim.store.get(DEPLOYMENTS, NS, 'healthy-agent').metadata.resourceVersion).toBe(rv);
  });

  it('plans the restart in plan mode and skips it in diagnose mode, changing nothing', async () => {
    await deployAgent('planned-agent');
    const crash = sim.faults.inject({ kind: 'crashLoop', namespace: NS, selector: 'app=planned-agent' });
    try {
      await untilCrashLooping('planned-agent');
      const rv = sim.store.get(DEPLOYMENTS, NS, 'planned-agent').metadata.resourceVersion;
      const planned = await engine.start(
        'agent-failure',
        { agent: 'planned-agent' },
        { mode: 'plan', actor: 'a' },
      );
      expect(planned.outcome).toEqual({ kind: 'done', summary: 'restart planned; nothing changed' });
      const step = (await engine.getRun(planned.runId)).steps.find((s) => s.name === 'restart');
      expect(step?.result).toMatchObject({
        status: 'planned',
        plan: {
          summary: `Restart Deployment ${NS}/planned-agent (revision 1, 0/2 ready): every pod is replaced`,
          changes: [
            {
              target: `k8s:${NS}/deployment/planned-agent`,
              field: 'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
              before: null,
            },
          ],
        },
      });
      const diagnosed = await engine.start(
        'agent-failure',
        { agent: 'planned-agent' },
        { mode: 'diagnose', actor: 'a' },
      );
      expect(diagnosed.outcome).toEqual({ kind: 'done', summary: 'restart skipped; nothing changed' });
      expect(sim.store.get(DEPLOYMENTS, NS, 'planned-agent').metadata.resourceVersion).toBe(rv);
    } finally {
      crash.clear();
    }
  });

  it('refuses to run against a kubeconfig whose context is not the expected one, before any request', async () => {
    const prod = kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'prod', namespaces: [NS] });
    const guarded = new Engine({ store, runbooks: [agentFailure(prod)] });
    // Any request would use this fault up; still listed afterwards means none was made.
    const tripwire = sim.faults.inject({ kind: 'apiError', code: 500, times: 1 });
    try {
      const run = await guarded.start(
        'agent-failure',
        { agent: 'healthy-agent' },
        { mode: 'execute', actor: 'a' },
      );
      expect(run.status).toBe('failed');
      expect(run.error).toMatchObject({
        code: 'K8S_REFUSED',
        message: expect.stringContaining(`the kubeconfig's context is "lab" but this code expects "prod"`),
      });
      expect(sim.faults.list().some((f) => f.id === tripwire.id)).toBe(true);
    } finally {
      tripwire.clear();
    }
  });
});

describe('the docs show exactly the code tested here', () => {
  const cases = [
    { doc: '../../KUBERNETES.md', file: './docs-example-runbook.ts', name: 'agent-failure.ts' },
    { doc: '../../TESTING.md', file: './docs-examples.test.ts', name: 'agent-failure.test.ts' },
    { doc: '../../TESTING.md', file: '../testing/runbook-test.test.ts', name: 'agent-failure.kit.test.ts' },
  ];
  for (const { doc, file, name } of cases) {
    it(`${doc.slice(6)} shows ${name} as tested`, () => {
      expectDocsShowTested(new URL(doc, import.meta.url), new URL(file, import.meta.url), name);
    });
  }
});
