import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import type { ReplayableCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { clusterHealth, events, podLogs, podStatus, resourceUsage } from '../../src/kubernetes/checks';
import type { KubernetesCluster } from '../../src/kubernetes/cluster';
import { recordRun } from '../../src/replay/fixture';
import { replayRun } from '../../src/replay/replay';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { startSimulatedCluster } from '../support/kubernetes';
import { postgresStore, uniqueSchema } from '../support/stores';
import { observe, rejudge } from './replayable';

// The Kubernetes checks whose verdict a runbook tunes, run once against the simulator, then judged again
// from their observation: by the same check (the live finding, exactly) and by one with another threshold.

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;
const ns = 'replay';
const limits = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } };

function deployment(name: string, resources?: typeof limits) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: 'app', image: `aiwebtest/${name}:1.0`, ...(resources ? { resources } : {}) }],
        },
      },
    },
  };
}

/** Reads a check until `done` holds (the simulator's controllers act in the background). */
async function until<T, O>(check: ReplayableCheck<T, O>, done: (data: T) => boolean) {
  const deadline = Date.now() + 6000;
  let live = await observe(check);
  while (!done(live.finding.data) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    live = await observe(check);
  }
  return live;
}

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [ns] }));
  sim.apply(deployment('flaky'), deployment('gen', limits));
  await sim.settle();
  // flaky crash-loops a while, then runs again: ready, restarted, with BackOff events.
  const fault = sim.faults.inject({ kind: 'crashLoop', namespace: ns, selector: 'app=flaky' });
  await until(
    podStatus(cluster, { namespace: ns, selector: 'app=flaky' }),
    (d) => (d.pods[0]?.restarts ?? 0) >= 2,
  );
  fault.clear();
  await until(podStatus(cluster, { namespace: ns, selector: 'app=flaky' }), (d) => d.ready === 1);
});

afterAll(async () => {
  await sim?.close();
});

describe('Kubernetes checks judge their observation again', () => {
  it('podStatus: the recorded restarts, against another maxRestarts', async () => {
    const check = (maxRestarts: number) =>
      podStatus(cluster, { namespace: ns, selector: 'app=flaky', maxRestarts });
    const live = await observe(check(1));
    expect(live.finding.status).toBe('warn');
    expect(live.observation.pods).toHaveLength(1);
    expect(live.observation.now).toBeGreaterThan(0);
    const replayed = rejudge(live, check(1), check(100), 'ok');
    expect(replayed.summary).toMatch(/^1\/1 pods ready in replay \(app=flaky\)$/);
  });

  it('events: the recorded BackOff warnings, with fewer types or a shorter window', async () => {
    const check = (o: { types?: ('Normal' | 'Warning')[]; since?: number | string } = {}) =>
      events(cluster, { namespace: ns, selector: 'app=flaky', ...o });
    const live = await observe(check());
    expect(live.finding.status).toBe('warn');
    expect(live.observation.events.some((e) => e.reason === 'BackOff')).toBe(true);
    rejudge(live, check(), check({ types: ['Normal'] }), 'ok');
    // A window of 1 ms before the recorded moment holds none of the recorded events.
    const shorter = rejudge(live, check(), check({ since: 1 }), 'ok');
    expect(shorter.data.total).toBe(0);
  });

  it('podLogs: the recorded lines, filtered by another pattern', async () => {
    const [pod] = (await cluster.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=gen' })).items;
    sim.appendLog(ns, pod?.metadata?.name ?? '', 'app', 'INFO up\nERROR db timeout\nINFO fine');
    const check = (pattern: string) => podLogs(cluster, { namespace: ns, selector: 'app=gen', pattern });
    const live = await observe(check('attack'));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.logs[0]?.lines).toContain('ERROR db timeout');
    const replayed = rejudge(live, check('attack'), check('error'), 'warn');
    expect(replayed.data.logs[0]?.lines).toEqual(['ERROR db timeout']);
  });

  it('resourceUsage: the recorded usage, against other limits', async () => {
    const [pod] = (await cluster.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=gen' })).items;
    sim.setUsage(ns, pod?.metadata?.name ?? '', 'app', { cpu: '450m', memory: '200Mi' });
    const check = (cpuWarn: number) =>
      resourceUsage(cluster, { namespace: ns, selector: 'app=gen', cpuWarn });
    const live = await until(check(0.8), (d) => d.alarms.length > 0);
    expect(live.finding.status).toBe('warn');
    const replayed = rejudge(live, check(0.8), check(0.95), 'ok');
    expect(replayed.data.alarms).toEqual([]);
  });

  it('clusterHealth: the recorded latency, against another slowAfter', async () => {
    const slow = sim.faults.inject({ kind: 'apiLatency', delay: 50, path: '/version' });
    try {
      const check = (slowAfter: number) => clusterHealth(cluster, { slowAfter });
      const live = await observe(check(5000));
      expect(live.finding.status).toBe('ok');
      expect(live.observation.latencyMs).toBeGreaterThanOrEqual(45);
      const replayed = rejudge(live, check(5000), check(10), 'warn');
      expect(replayed.summary).toContain('slower than 10ms');
    } finally {
      slow.clear();
    }
  });
});

describe('through the engine and a replay', () => {
  it('a recorded podStatus finding becomes a warning when the runbook is replayed with a lower maxRestarts', async () => {
    const { store, dispose } = await postgresStore(uniqueSchema('replay_k8s'));
    try {
      const runbook = defineRunbook({
        id: 'flaky-pods',
        title: 'Flaky pods',
        severity: 'P3',
        input: z.object({ maxRestarts: z.number().int().optional() }),
        async run({ input, step }) {
          const pods = await step.check(
            'pods',
            podStatus(cluster, {
              namespace: ns,
              selector: 'app=flaky',
              maxRestarts: input.maxRestarts ?? 100,
            }),
          );
          return pods.status === 'ok' ? step.done('pods fine') : step.escalate(pods.summary);
        },
      });
      const engine = new Engine({ store, runbooks: [runbook] });
      const { runId } = await engine.start(runbook.id, {}, { mode: 'diagnose', actor: 'alice' });
      const fixture = await recordRun(store, runId);
      const report = await replayRun(runbook, fixture, { input: { maxRestarts: 1 } });
      expect(report.firstDifference).toMatchObject({
        name: 'pods',
        recorded: 'ok',
        replayed: 'warn',
        note: expect.stringMatching(
          /^ok → warn: 1\/1 pods ready in replay \(app=flaky\): flaky-\S+ restarted \d+ times/,
        ),
      });
      expect(report.outcome.replayed.status).not.toBe(report.outcome.recorded.status);
    } finally {
      await dispose();
    }
  });
});
