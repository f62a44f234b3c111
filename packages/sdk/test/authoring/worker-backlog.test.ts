// The tests AUTHORING.md shows ("Testing it" and "Record and replay"), run here as they are shown: the
// runbook of worker-backlog.ts against the Kubernetes simulator and the real Redis. Between the docs markers
// the code appears in the guide exactly, except the import lines.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { kubernetes } from '../../src/kubernetes';
import { replayRun } from '../../src/replay/replay';
import {
  DEPLOYMENTS,
  type KubernetesSimulator,
  runRunbook,
  startKubernetesSimulator,
} from '../../src/testing';
import { workerBacklog } from './worker-backlog';

// docs:begin worker-backlog.test.ts
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('worker-backlog', () => {
  let sim: KubernetesSimulator;
  let redis: Redis;
  const queue = `jobs-${process.pid}`; // a queue of this test's own in a shared Redis

  beforeAll(async () => {
    sim = await startKubernetesSimulator({ contextName: 'test', namespace: 'shop' });
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await redis.del(`queue:${queue}`, `queue:${queue}:paused`);
    redis.disconnect();
    await sim.close();
  });
  beforeEach(async () => {
    await redis.del(`queue:${queue}`, `queue:${queue}:paused`);
    await sim.apply(deployment('worker', 2));
    await sim.settle();
  });

  const runbook = workerBacklog(() => ({
    k8s: kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'test', namespaces: ['shop'] }),
    redis,
  }));
  const jobs = (n: number) =>
    redis.rpush(`queue:${queue}`, ...Array.from({ length: n }, (_, i) => `job-${i}`));

  it('does nothing while the queue is short', async () => {
    await jobs(10);
    const run = await runRunbook(runbook, { input: { queue } });
    run.expectStatus('succeeded');
    run.expectFinding('queue-depth', 'ok');
    run.expectNotReached('scale-out', 'pause-intake');
  });

  it('scales the workers out on a backlog', async () => {
    await jobs(1500);
    const run = await runRunbook(runbook, { input: { queue } });
    run.expectFinding('queue-depth', 'fail');
    run.expectApplied('scale-out');
    expect(run.plan('scale-out').changes).toEqual([
      expect.objectContaining({ field: 'spec.replicas', before: 2, after: 4 }),
    ]);
    expect(replicas(sim, 'worker')).toBe(4);
    run.expectAudit('action.applied', 'scale-out');
  });

  it('at the replica ceiling, pauses the intake once a second person agrees', async () => {
    await jobs(1500);
    await sim.apply(deployment('worker', 8));
    const run = await runRunbook(runbook, { input: { queue } });
    run.expectApprovalAsked('agree-to-pause');
    run.expectApplied('pause-intake');
    expect(await redis.get(`queue:${queue}:paused`)).toBe('1');
    expect(run.notifications).toEqual([
      expect.objectContaining({ channel: 'slack:#shop', message: `intake of ${queue} paused for 30m` }),
    ]);
  });

  it('pauses nothing when the approver says no', async () => {
    await jobs(1500);
    await sim.apply(deployment('worker', 8));
    const run = await runRunbook(runbook, { input: { queue }, approvals: 'reject' });
    run.expectStatus('cancelled');
    run.expectNotReached('pause-intake');
    expect(await redis.get(`queue:${queue}:paused`)).toBeNull();
  });

  it('in diagnose mode, changes nothing', async () => {
    await jobs(1500);
    const run = await runRunbook(runbook, { input: { queue }, mode: 'diagnose' });
    run.expectNotApplied('scale-out');
    expect(replicas(sim, 'worker')).toBe(2);
  });
});

/** The Deployment's `spec.replicas`, as the cluster has it now. */
function replicas(sim: KubernetesSimulator, name: string) {
  return (sim.store.get(DEPLOYMENTS, 'shop', name).spec as { replicas: number }).replicas;
}

/** A Deployment of `replicas` ready pods. */
function deployment(name: string, replicas: number) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: `${name}:1` }] } },
    },
  };
}
// docs:end worker-backlog.test.ts

// docs:begin backtest.test.ts
describe('worker-backlog, backtested', () => {
  let sim: KubernetesSimulator;
  let redis: Redis;
  const queue = `orders-${process.pid}`;

  beforeAll(async () => {
    sim = await startKubernetesSimulator({ contextName: 'test', namespace: 'shop' });
    await sim.apply(deployment('worker', 2));
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await redis.del(`queue:${queue}`);
    redis.disconnect();
    await sim.close();
  });
  const connect = () => ({
    k8s: kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'test', namespaces: ['shop'] }),
    redis,
  });

  it('a lower threshold would have acted on a queue the recorded run found fine', async () => {
    await redis.rpush(`queue:${queue}`, ...Array.from({ length: 600 }, (_, i) => `order-${i}`));
    const recorded = await runRunbook(workerBacklog(connect), { input: { queue }, mode: 'diagnose' });
    recorded.expectFinding('queue-depth', 'ok'); // 600 ≤ 1000
    const fixture = recorded.fixture(); // a stored run: `runbook record <runId>`, or recordRun(store, runId)

    // The same runbook, asked with a threshold of 500: the recorded "ok" becomes a "fail" at queue-depth.
    const report = await replayRun(workerBacklog(connect), fixture, { input: { maxDepth: 500 } });
    expect(report.firstDifference).toMatchObject({ name: 'queue-depth', recorded: 'ok', replayed: 'fail' });
    // The recorded run never looked at the workers: the replay says so and stops there, guessing nothing.
    expect(report.steps[1]).toMatchObject({ name: 'workers', recorded: null, replayed: 'new' });
    expect(report.outcome.replayed.status).toBe('incomplete');
  });
});
// docs:end backtest.test.ts
