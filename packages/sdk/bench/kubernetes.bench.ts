/**
 * Kubernetes actions on the API simulator (readiness delay 0), two measures:
 *
 * 1. Overhead of `rolloutRestart`: the time from its apply to a verified rollout, as a multiple of the raw
 *    API calls the same restart needs — the strategic-merge patch, then reads of the Deployment with the same
 *    client and the same poll schedule until `kubectl rollout status` would say done — measured in the same
 *    run, alternating, on the same Deployment. Medians of RUNS runs.
 * 2. What the simulator sustains: pods/s to bring a 200-replica Deployment to all Ready, and pods/s replaced
 *    by a restart of it (churn).
 *
 *   pnpm bench          or   npx tsx bench/kubernetes.bench.ts      (BENCH_K8S_RUNS, BENCH_K8S_PODS override)
 */
import type { V1Deployment } from '@kubernetes/client-node';
import { sealPlan } from '../src/core/plan';
import { sleep } from '../src/core/sleep';
import type { Applied, StepContext } from '../src/core/step';
import { rolloutRestart } from '../src/kubernetes/actions/rollout-restart';
import { ROLLOUT_POLL } from '../src/kubernetes/actions/workload';
import { connectKubernetes } from '../src/kubernetes/cluster';
import { rolloutStatus } from '../src/kubernetes/rollout-status';
import { startKubernetesSimulator } from '../src/testing/kubernetes/simulator';

const RUNS = Number(process.env.BENCH_K8S_RUNS ?? 15);
const PODS = Number(process.env.BENCH_K8S_PODS ?? 200);
const NS = 'bench';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const ms = (n: number) => `${n.toFixed(1)} ms`;

const sim = await startKubernetesSimulator({
  contextName: 'bench',
  namespace: NS,
  cluster: { readinessDelay: 0 },
});
const cluster = connectKubernetes({
  kubeConfig: sim.kubeConfig(),
  expectedContext: 'bench',
  namespaces: [NS],
});
const signal = new AbortController().signal;
const ctx: StepContext = {
  runId: 'bench',
  runbookId: 'bench',
  step: 'restart',
  mode: 'execute',
  attempt: 1,
  actor: 'bench',
  signal,
  log() {},
};

function deployment(name: string, replicas: number) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: `bench/${name}:1` }] },
      },
    },
  };
}

/** The action, from the start of its apply to the end of its verify (its plan is timed apart). */
async function viaAction(name: string): Promise<{ planMs: number; applyToVerifiedMs: number }> {
  const action = rolloutRestart(cluster, { namespace: NS, name, timeout: '1m' });
  const t0 = performance.now();
  const plan = sealPlan(action, await action.plan(ctx));
  const t1 = performance.now();
  const data = await action.apply(ctx, plan);
  const applied: Applied<typeof plan.params, typeof data> = { plan, data, appliedAt: '', recovered: false };
  const finding = await action.verify?.(ctx, applied);
  const t2 = performance.now();
  if (finding?.status !== 'ok') throw new Error(`verify did not pass: ${finding?.summary}`);
  return { planMs: t1 - t0, applyToVerifiedMs: t2 - t1 };
}

/**
 * The same restart by hand: one patch, then reads until done — on the action's poll schedule, or every
 * `tightMs` (the fastest a client could notice, to show what the schedule itself costs).
 */
async function viaRawCalls(name: string, tightMs?: number): Promise<number> {
  const t0 = performance.now();
  const restartedAt = new Date().toISOString();
  await cluster.apps.patchNamespacedDeployment(
    {
      name,
      namespace: NS,
      body: {
        spec: {
          template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': restartedAt } } },
        },
      },
    },
    cluster.requestOptions({ signal, contentType: 'application/strategic-merge-patch+json' }),
  );
  let delay: number = ROLLOUT_POLL.firstMs;
  for (;;) {
    const d: V1Deployment = await cluster.apps.readNamespacedDeployment(
      { name, namespace: NS },
      cluster.requestOptions({ signal }),
    );
    if (rolloutStatus(d, 'Deployment').state === 'done') return performance.now() - t0;
    await sleep(tightMs ?? delay, signal);
    delay = Math.min(delay * 2, ROLLOUT_POLL.maxMs);
  }
}

async function timeToReady(name: string, replicas: number, start: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await start();
  for (;;) {
    const d = await cluster.apps.readNamespacedDeployment({ name, namespace: NS });
    if (rolloutStatus(d, 'Deployment').state === 'done' && d.status?.readyReplicas === replicas) {
      return performance.now() - t0;
    }
    await sleep(10, signal);
  }
}

try {
  // 1. restart overhead
  sim.apply(deployment('web', 3));
  await sim.settle();
  await viaAction('web'); // warm-up: connections, JIT
  await sim.settle();
  await viaRawCalls('web');
  await sim.settle();
  const action: number[] = [];
  const plans: number[] = [];
  const raw: number[] = [];
  const tight: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    // Rotate which goes first so that drift in the simulator's state favours no side.
    const order =
      [
        ['action', 'raw', 'tight'],
        ['raw', 'tight', 'action'],
        ['tight', 'action', 'raw'],
      ][i % 3] ?? [];
    for (const which of order) {
      if (which === 'action') {
        const r = await viaAction('web');
        action.push(r.applyToVerifiedMs);
        plans.push(r.planMs);
      } else if (which === 'raw') {
        raw.push(await viaRawCalls('web'));
      } else {
        tight.push(await viaRawCalls('web', 5));
      }
      await sim.settle();
    }
  }

  // 2. what the simulator sustains
  const createMs = await timeToReady('fleet', PODS, () =>
    cluster.apps.createNamespacedDeployment({ namespace: NS, body: deployment('fleet', PODS) }),
  );
  await sim.settle();
  const churnMs = await timeToReady('fleet', PODS, () =>
    cluster.apps.patchNamespacedDeployment(
      {
        name: 'fleet',
        namespace: NS,
        body: {
          spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': 'churn' } } } },
        },
      },
      cluster.requestOptions({ contentType: 'application/strategic-merge-patch+json' }),
    ),
  );

  const ratio = median(action) / median(raw);
  const rows: [string, string][] = [
    [`rolloutRestart apply → verified (median of ${RUNS})`, ms(median(action))],
    [`raw patch + polling reads (median of ${RUNS})`, ms(median(raw))],
    ['ratio action / raw', `${ratio.toFixed(2)}×`],
    [`raw patch + reads every 5 ms (median of ${RUNS})`, ms(median(tight))],
    ['ratio action / raw every 5 ms', `${(median(action) / median(tight)).toFixed(2)}×`],
    ['rolloutRestart plan (median)', ms(median(plans))],
    [
      `create ${PODS}-replica Deployment → all Ready`,
      `${ms(createMs)}  (${((PODS / createMs) * 1000).toFixed(0)} pods/s)`,
    ],
    [
      `restart ${PODS}-replica Deployment → done (churn)`,
      `${ms(churnMs)}  (${((PODS / churnMs) * 1000).toFixed(0)} pods/s replaced)`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nKubernetes actions on the simulator (readiness delay 0)\n');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log('');
} finally {
  await sim.close();
}
