import type { ScaffoldNames } from './names';

/**
 * The source of `<id>.test.ts`: vitest tests of the scaffolded runbook against the in-process Kubernetes
 * simulator and the runbook test kit of `@aiwebtest/runbooks/testing`, so they need no cluster.
 */
export function runbookTestSource(names: ScaffoldNames): string {
  const { id, factory } = names;
  return `// Tests of the "${id}" runbook.
//
// runRunbook (@aiwebtest/runbooks/testing) runs it in an engine of its own and asserts on what the run did.
// The cluster is the Kubernetes simulator of the same module: a real Kubernetes API server inside this
// process, with faults (here a crash loop) to rehearse the incident; TESTING.md in @aiwebtest/runbooks lists
// them. AUTHORING.md there is the guide to writing and testing runbooks.
//
// The runbook is imported with its .ts extension, as Node's type stripping needs; for tsc, enable
// allowImportingTsExtensions (or rewriteRelativeImportExtensions) in your tsconfig.

import { openStore, type RunStore } from '@aiwebtest/runbooks';
import { kubernetes, RESTARTED_AT_ANNOTATION } from '@aiwebtest/runbooks/kubernetes';
import {
  DEPLOYMENTS,
  type KubeObject,
  type KubernetesSimulator,
  PODS,
  runRunbook,
  startKubernetesSimulator,
} from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ${factory} } from './${id}.ts';

// Vitest's default limits (5 s a test, 10 s a hook) are tight for a store and a cluster on a busy CI machine.
const TIME_LIMIT = 30_000;
const CONTEXT = 'lab';
const NS = 'demo';
let sim: KubernetesSimulator;
let store: RunStore;

// The runbook connects inside its run, so it can be made here and the simulator started in beforeAll.
const runbook = ${factory}(() =>
  kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: CONTEXT, namespaces: [NS] }),
);

beforeAll(async () => {
  // Where the runs are kept. Opening a store takes a second or two, so the tests share one (without
  // \`store\`, runRunbook opens a fresh one for each run).
  store = await openStore({ dataDir: ':memory:' });
  // A crashed container restarts after 100 ms instead of a real kubelet's 10 s to 5 min.
  sim = await startKubernetesSimulator({
    contextName: CONTEXT,
    namespace: NS,
    cluster: { crashBackoff: '100ms' },
  });
}, TIME_LIMIT);

afterAll(async () => {
  await sim?.close();
  await store?.close();
});

/** Seeds a two-replica Deployment whose pods carry \`app=<name>\`, and returns their pod-template-hash. */
async function deploy(name: string): Promise<string> {
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: \`example/\${name}:1.0\` }] },
      },
    },
  });
  await sim.settle(); // the controllers have created the ReplicaSet and its pods run
  const hash = podsOf(name)[0]?.metadata.labels?.['pod-template-hash'];
  if (!hash) throw new Error(\`no pods of \${name} after settle()\`);
  return hash;
}

function podsOf(name: string): KubeObject[] {
  return sim.store.list(PODS, NS).items.filter((pod) => pod.metadata.labels?.app === name);
}

/**
 * Makes the pods of the current template crash in a loop (the pods a restart creates start clean), and
 * waits until each has crashed once. Returns the fault, to clear.
 */
async function crashLoop(name: string, hash: string) {
  const fault = sim.faults.inject({
    kind: 'crashLoop',
    namespace: NS,
    selector: \`app=\${name},pod-template-hash=\${hash}\`,
    message: 'panic: connection refused',
  });
  await vi.waitFor(
    () => {
      const restarts = podsOf(name).map((pod) => {
        const status = pod.status as { containerStatuses?: { restartCount: number }[] } | undefined;
        return status?.containerStatuses?.[0]?.restartCount ?? 0;
      });
      expect(restarts.length).toBeGreaterThan(0);
      expect(restarts.every((n) => n > 0)).toBe(true);
    },
    { timeout: 5_000, interval: 50 },
  );
  return fault;
}

/** The annotation \`kubectl rollout restart\` (and the runbook's restart) sets on the pod template. */
function restartedAt(name: string): string | undefined {
  const spec = sim.store.get(DEPLOYMENTS, NS, name).spec as {
    template: { metadata?: { annotations?: Record<string, string> } };
  };
  return spec.template.metadata?.annotations?.[RESTARTED_AT_ANNOTATION];
}

describe('${id}', { timeout: TIME_LIMIT }, () => {
  it('ends done and changes nothing when the deployment is healthy', async () => {
    await deploy('healthy');

    const run = await runRunbook(runbook, {
      input: { namespace: NS, deployment: 'healthy' },
      mode: 'execute',
      store,
    });

    run.expectStatus('succeeded');
    run.expectFinding('deployment', 'ok');
    run.expectFinding('pods', 'ok');
    expect(run.applied).toEqual([]);
    expect(restartedAt('healthy')).toBeUndefined();
  });

  it('restarts a crash-looping deployment, and the new pods run', async () => {
    const hash = await deploy('crashing');
    const fault = await crashLoop('crashing', hash);
    try {
      const run = await runRunbook(runbook, {
        input: { namespace: NS, deployment: 'crashing' },
        mode: 'execute',
        store,
      });

      run.expectStatus('succeeded');
      run.expectFinding('pods', 'fail');
      run.expectApplied('restart');
      run.expectAudit('action.applied', 'restart');
      run.expectFinding('rollout', 'ok');
      // The effect, as \`kubectl get deployment -o yaml\` would show it.
      expect(restartedAt('crashing')).toBeDefined();
    } finally {
      fault.clear();
    }
  });

  it('in diagnose mode only looks: the failing pods are found, nothing is restarted', async () => {
    const hash = await deploy('looked-at');
    const fault = await crashLoop('looked-at', hash);
    try {
      const run = await runRunbook(runbook, {
        input: { namespace: NS, deployment: 'looked-at' },
        mode: 'diagnose',
        store,
      });

      run.expectStatus('succeeded');
      run.expectFinding('pods', 'fail');
      run.expectNotApplied('restart');
      expect(restartedAt('looked-at')).toBeUndefined();
    } finally {
      fault.clear();
    }
  });
});
`;
}
