import { createServer } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Evidence, Finding } from '../../src/core/finding';
import type { Json } from '../../src/core/json';
import type { Check, StepContext } from '../../src/core/step';
import {
  clusterHealth,
  deploymentStatus,
  events,
  nodeStatus,
  podLogs,
  podStatus,
  resourceUsage,
  rolloutHistory,
} from '../../src/kubernetes/checks';
import { connectKubernetes, type KubernetesCluster } from '../../src/kubernetes/cluster';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { startSimulatedCluster, stepContext } from '../support/kubernetes';

// These checks run through the real @kubernetes/client-node against the project's Kubernetes API
// simulator (no real API server can run here); its controllers and kubelet play the cluster.

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;
let serial = 0;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: ['lab'], existing: [] }));
});

afterAll(async () => {
  await sim?.close();
});

const ctx = (): StepContext => stepContext({ mode: 'diagnose' });

// `T extends Json` makes the compiler prove that every check's data is JSON, as stored step results must be.
function run<T extends Json>(check: Check<T>): Promise<Finding<T>> {
  return check.run(ctx());
}

/** Polls a check until `done` holds (or the time is up) and returns its last finding. */
async function until<T extends Json>(
  check: Check<T>,
  done: (f: Finding<T>) => boolean,
  timeoutMs = 6000,
): Promise<Finding<T>> {
  const deadline = Date.now() + timeoutMs;
  let last = await run(check);
  while (!done(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await run(check);
  }
  return last;
}

interface AppOptions {
  replicas?: number;
  image?: string;
  resources?: Record<string, Record<string, string>>;
  progressDeadlineSeconds?: number;
  annotations?: Record<string, string>;
  paused?: boolean;
}

function deployment(namespace: string, name: string, o: AppOptions = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace,
      labels: { app: name },
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: {
      replicas: o.replicas ?? 2,
      ...(o.progressDeadlineSeconds ? { progressDeadlineSeconds: o.progressDeadlineSeconds } : {}),
      ...(o.paused ? { paused: true } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'app',
              image: o.image ?? `aiwebtest/${name}:1.0`,
              ports: [{ containerPort: 8080 }],
              env: [{ name: 'OPENROUTER_API_KEY', value: 'sk-or-never-shown-0123456789abcdef' }],
              ...(o.resources ? { resources: o.resources } : {}),
            },
          ],
        },
      },
    },
  };
}

/** A name for a fresh namespace, unique in this file. */
function newNamespace(): string {
  return `checks-${++serial}`;
}

/** Creates the namespace with the given apps in it and waits until they are settled (pods running and ready). */
async function seed(namespace: string, ...apps: [name: string, options?: AppOptions][]): Promise<string> {
  sim.apply(
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    ...apps.map(([name, o]) => deployment(namespace, name, o)),
  );
  await sim.settle();
  return namespace;
}

/** A fresh namespace with the given apps in it, settled. */
function namespaceWith(...apps: [name: string, options?: AppOptions][]): Promise<string> {
  return seed(newNamespace(), ...apps);
}

async function podNames(namespace: string, selector: string): Promise<string[]> {
  const list = await cluster.core.listNamespacedPod({ namespace, labelSelector: selector });
  return list.items.map((p) => p.metadata?.name ?? '').sort();
}

function table(f: Finding<unknown>, title?: string): Extract<Evidence, { kind: 'table' }> {
  const t = f.evidence.find((e) => e.kind === 'table' && (title === undefined || e.title.startsWith(title)));
  if (t?.kind !== 'table') throw new Error(`no table ${title ?? ''} in ${JSON.stringify(f.evidence)}`);
  return t;
}

describe('podStatus', () => {
  it('is ok when every pod is ready, with a kubectl-like table', async () => {
    const ns = await namespaceWith(['web', { replicas: 3 }]);
    const f = await run(podStatus(cluster, { namespace: ns, selector: 'app=web' }));
    expect(f.status).toBe('ok');
    expect(f.summary).toBe(`3/3 pods ready in ${ns} (app=web)`);
    expect(f.data.pods).toHaveLength(3);
    expect(f.data.pods.every((p) => p.ready && p.status === 'Running' && p.node?.startsWith('node-'))).toBe(
      true,
    );
    const pods = table(f, 'Pods');
    expect(pods.columns).toEqual(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'NODE']);
    expect(pods.rows.map((r) => r[1])).toEqual(['1/1', '1/1', '1/1']);
    // Container env never reaches a finding.
    expect(JSON.stringify(f)).not.toContain('sk-or-never-shown');
  });

  it('fails naming CrashLoopBackOff and the restart count of a crash-looping pod', async () => {
    const ns = await namespaceWith(['agent', { replicas: 2 }]);
    const fault = sim.faults.inject({ kind: 'crashLoop', namespace: ns, selector: 'app=agent' });
    try {
      const f = await until(
        podStatus(cluster, { namespace: ns, selector: 'app=agent' }),
        (x) =>
          x.data.problems.some((p) => p.reason === 'CrashLoopBackOff') &&
          x.data.pods.every((p) => p.restarts >= 2),
      );
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(
        new RegExp(
          `^0/2 pods ready in ${ns} \\(app=agent\\): agent-\\S+ CrashLoopBackOff \\(\\d+ restarts, last Error exit 1\\)`,
        ),
      );
      const restarts = Number(/CrashLoopBackOff \((\d+) restarts/.exec(f.summary)?.[1]);
      expect(restarts).toBeGreaterThanOrEqual(2);
      const containers = table(f, 'Containers');
      expect(
        containers.rows.some((r) => r[3] === 'CrashLoopBackOff' && String(r[6]).startsWith('Error exit 1')),
      ).toBe(true);
    } finally {
      fault.clear();
    }
  });

  it('fails on an OOMKilled container that is not ready', async () => {
    const ns = await namespaceWith([
      'hungry',
      { replicas: 1, resources: { requests: { memory: '128Mi' }, limits: { memory: '256Mi' } } },
    ]);
    const fault = sim.faults.inject({ kind: 'oomKill', namespace: ns, selector: 'app=hungry' });
    try {
      const f = await until(podStatus(cluster, { namespace: ns, selector: 'app=hungry' }), (x) =>
        x.summary.includes('OOMKilled'),
      );
      expect(f.status).toBe('fail');
      expect(f.summary).toContain(`0/1 pods ready in ${ns} (app=hungry): hungry-`);
      expect(f.summary).toContain('OOMKilled');
      const container = f.data.pods[0]?.containers[0];
      expect([container?.reason, container?.lastTerminated?.reason]).toContain('OOMKilled');
    } finally {
      fault.clear();
    }
  });

  it('fails on an image that cannot be pulled', async () => {
    const ns = newNamespace();
    // A pull error hits containers that have not started yet: inject it before the pods exist.
    const fault = sim.faults.inject({ kind: 'imagePullError', namespace: ns, selector: 'app=pull' });
    try {
      await seed(ns, ['pull', { replicas: 1 }]);
      const f = await until(podStatus(cluster, { namespace: ns, selector: 'app=pull' }), (x) =>
        x.data.problems.some((p) => p.reason === 'ImagePullBackOff' || p.reason === 'ErrImagePull'),
      );
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(/pull-\S+ (ImagePullBackOff|ErrImagePull)/);
    } finally {
      fault.clear();
    }
  });

  it('fails when no pod matches', async () => {
    const ns = await namespaceWith(['web']);
    const f = await run(podStatus(cluster, { namespace: ns, selector: 'app=missing' }));
    expect(f.status).toBe('fail');
    expect(f.summary).toBe(`No pods match app=missing in ${ns}`);
    expect(f.data.matched).toBe(0);
  });

  it('fails when pods run but are not ready', async () => {
    const ns = await namespaceWith(['probe', { replicas: 2 }]);
    const fault = sim.faults.inject({ kind: 'readinessFailure', namespace: ns, selector: 'app=probe' });
    try {
      const f = await until(
        podStatus(cluster, { namespace: ns, selector: 'app=probe' }),
        (x) => x.data.ready === 0,
      );
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(
        new RegExp(`^0/2 pods ready in ${ns} \\(app=probe\\): probe-\\S+ not ready \\(Running\\)`),
      );
    } finally {
      fault.clear();
    }
  });

  it('warns when ready pods restarted more than maxRestarts times', async () => {
    const ns = await namespaceWith(['flaky', { replicas: 1 }]);
    const fault = sim.faults.inject({ kind: 'crashLoop', namespace: ns, selector: 'app=flaky' });
    const check = podStatus(cluster, { namespace: ns, selector: 'app=flaky', maxRestarts: 1 });
    await until(check, (x) => (x.data.pods[0]?.restarts ?? 0) >= 2);
    fault.clear();
    const f = await until(check, (x) => x.data.ready === 1);
    expect(f.status).toBe('warn');
    expect(f.summary).toMatch(
      new RegExp(
        `^1/1 pods ready in ${ns} \\(app=flaky\\): flaky-\\S+ restarted \\d+ times \\(more than 1\\)$`,
      ),
    );
  });

  it('refuses bad params up front, naming the field', () => {
    expect(() => podStatus(cluster, { namespace: '', selector: 'app=x' })).toThrow(/namespace/);
    expect(() => podStatus(cluster, { namespace: 'x', selector: 'app=x', maxRestarts: -1 })).toThrow(
      /maxRestarts/,
    );
  });
});

describe('podLogs', () => {
  it('reads the tail of one pod', async () => {
    const ns = await namespaceWith(['logs', { replicas: 1 }]);
    const [pod = ''] = await podNames(ns, 'app=logs');
    sim.appendLog(ns, pod, 'app', Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join('\n'));
    const f = await run(podLogs(cluster, { namespace: ns, pod, tailLines: 3, since: '10m' }));
    expect(f.status).toBe('ok');
    expect(f.data.logs[0]?.lines).toEqual(['line 8', 'line 9', 'line 10']);
    expect(f.summary).toBe(`Read 3 lines from logs of pod ${pod} in ${ns}, last 3 lines within 10m`);
    expect(f.evidence).toEqual([
      { kind: 'log', title: `${pod}/app`, lines: ['line 8', 'line 9', 'line 10'] },
    ]);
  });

  it('filters by a case-insensitive pattern and warns when it matches', async () => {
    const ns = await namespaceWith(['grep', { replicas: 1 }]);
    const [pod = ''] = await podNames(ns, 'app=grep');
    sim.appendLog(ns, pod, 'app', 'INFO ok\nERROR db timeout\nINFO fine\nerror: redis refused\nWARN slow');
    const f = await run(podLogs(cluster, { namespace: ns, selector: 'app=grep', pattern: 'error' }));
    expect(f.status).toBe('warn');
    expect(f.data.matched).toBe(2);
    expect(f.data.logs[0]?.lines).toEqual(['ERROR db timeout', 'error: redis refused']);
    expect(f.summary).toMatch(/^2 lines match \/error\/i in logs of 1 pod \(app=grep\)/);

    const none = await run(podLogs(cluster, { namespace: ns, pod, pattern: 'attack' }));
    expect(none.status).toBe('ok');
    expect(none.data.matched).toBe(0);
    expect(none.summary).toMatch(/^No lines match \/attack\/i/);
  });

  it("reads the previous container's last words, and says when there is no previous run", async () => {
    const ns = await namespaceWith(['crashy', { replicas: 1 }], ['steady', { replicas: 1 }]);
    const fault = sim.faults.inject({
      kind: 'crashLoop',
      namespace: ns,
      selector: 'app=crashy',
      message: 'cannot connect to postgres:5432',
    });
    try {
      await until(
        podStatus(cluster, { namespace: ns, selector: 'app=crashy' }),
        (x) => (x.data.pods[0]?.restarts ?? 0) >= 1,
      );
      const f = await run(podLogs(cluster, { namespace: ns, selector: 'app=crashy', previous: true }));
      expect(f.status).toBe('ok');
      expect(f.data.logs[0]?.lines.at(-1)).toBe('ERROR cannot connect to postgres:5432');
      expect(f.summary).toContain('previous logs of 1 pod');
    } finally {
      fault.clear();
    }
    const [steady = ''] = await podNames(ns, 'app=steady');
    const none = await run(podLogs(cluster, { namespace: ns, pod: steady, previous: true }));
    expect(none.status).toBe('unknown');
    expect(none.summary).toBe(
      `Could not read previous logs of pod ${steady} in ${ns}: previous terminated container "app" in pod "${steady}" not found`,
    );
    expect(none.data.logs[0]?.error).toContain('not found');
  });

  it('bounds the size, keeping the newest lines, and says so', async () => {
    const ns = await namespaceWith(['noisy', { replicas: 1 }]);
    const [pod = ''] = await podNames(ns, 'app=noisy');
    const lines = Array.from({ length: 300 }, (_, i) => `${String(i).padStart(4, '0')} ${'x'.repeat(95)}`);
    sim.appendLog(ns, pod, 'app', lines.join('\n'));
    const f = await run(podLogs(cluster, { namespace: ns, pod, tailLines: 1000, maxBytes: 1024 }));
    expect(f.data.truncated).toBe(true);
    const kept = f.data.logs[0]?.lines ?? [];
    expect(kept.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)).toBeLessThanOrEqual(1024);
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.at(-1)).toBe(lines.at(-1));
    expect(f.summary).toContain('truncated to 1 KiB, oldest lines dropped');
    expect(f.evidence[0]?.title).toContain('(truncated)');
  });

  it('reads at most maxPods pods of a selector and says how many matched', async () => {
    const ns = await namespaceWith(['many', { replicas: 3 }]);
    const f = await run(podLogs(cluster, { namespace: ns, selector: 'app=many', maxPods: 2, tailLines: 5 }));
    expect(f.status).toBe('ok');
    expect(f.data.podsMatched).toBe(3);
    expect(f.data.logs).toHaveLength(2);
    expect(f.summary).toContain('(of 3 matching app=many; at most 2 are read)');
    // The kubelet's start-up lines are there.
    expect(f.data.logs[0]?.lines.some((l) => l.includes('Listening on'))).toBe(true);
  });

  it('fails for a pod that does not exist, and refuses pod and selector together', async () => {
    const ns = await namespaceWith(['web', { replicas: 1 }]);
    const f = await run(podLogs(cluster, { namespace: ns, pod: 'ghost-123' }));
    expect(f.status).toBe('fail');
    expect(f.summary).toBe(`Pod ghost-123 not found in ${ns}`);
    expect(() => podLogs(cluster, { namespace: ns, pod: 'a', selector: 'app=a' })).toThrow(
      /pod.*exactly one/,
    );
    expect(() => podLogs(cluster, { namespace: ns, pod: 'a', pattern: '(' })).toThrow(/pattern/);
  });
});

describe('events', () => {
  it('warns with the BackOff events of a crash-looping pod', async () => {
    const ns = await namespaceWith(['loop', { replicas: 1 }]);
    const fault = sim.faults.inject({ kind: 'crashLoop', namespace: ns, selector: 'app=loop' });
    try {
      const [pod = ''] = await podNames(ns, 'app=loop');
      const f = await until(events(cluster, { namespace: ns, kind: 'pod', name: pod }), (x) =>
        x.data.events.some((e) => e.reason === 'BackOff' && e.count >= 2),
      );
      expect(f.status).toBe('warn');
      expect(f.summary).toMatch(
        new RegExp(`Warning events? for pod/${pod} in ${ns} in the last 1h: .*BackOff ×\\d+`),
      );
      expect(f.data.events.every((e) => e.object.name === pod && e.object.kind === 'Pod')).toBe(true);
      const rows = table(f, 'Events').rows;
      expect(rows.some((r) => r[1] === 'Warning' && r[2] === 'BackOff')).toBe(true);
      // Oldest first, as kubectl --sort-by=.lastTimestamp.
      const seen = f.data.events.map((e) => Date.parse(e.lastSeen ?? ''));
      expect([...seen].sort((a, b) => a - b)).toEqual(seen);

      const bySelector = await run(
        events(cluster, { namespace: ns, selector: 'app=loop', types: ['Warning'] }),
      );
      expect(bySelector.status).toBe('warn');
      expect(bySelector.data.events.length).toBeGreaterThan(0);
      expect(bySelector.data.events.every((e) => e.type === 'Warning')).toBe(true);
    } finally {
      fault.clear();
    }
  });

  it('is ok for a healthy pod, showing its Normal events', async () => {
    const ns = await namespaceWith(['calm', { replicas: 1 }]);
    const [pod = ''] = await podNames(ns, 'app=calm');
    const f = await run(events(cluster, { namespace: ns, kind: 'Pod', name: pod }));
    expect(f.status).toBe('ok');
    expect(f.summary).toMatch(
      new RegExp(`^No Warning events for pod/${pod} in ${ns} in the last 1h \\(\\d+ Normal events\\)$`),
    );
    expect(f.data.events.map((e) => e.reason)).toContain('Started');
    expect(() => events(cluster, { namespace: ns, kind: 'Pod' })).toThrow(/name/);
  });
});

describe('deploymentStatus', () => {
  it('is ok when the rollout is done, in kubectl words', async () => {
    const ns = await namespaceWith(['web', { replicas: 2 }]);
    const f = await run(deploymentStatus(cluster, { namespace: ns, name: 'web' }));
    expect(f.status).toBe('ok');
    expect(f.summary).toBe(
      'deployment "web" successfully rolled out (desired 2, current 2, up-to-date 2, ready 2, available 2)',
    );
    expect(f.data).toMatchObject({ found: true, state: 'done', replicas: 2, availableReplicas: 2 });
    expect(table(f, 'Conditions').rows.map((r) => r[0])).toEqual(
      expect.arrayContaining(['Available', 'Progressing']),
    );
  });

  it('warns while the rollout waits for available replicas', async () => {
    const ns = await namespaceWith(['slow', { replicas: 2 }]);
    const fault = sim.faults.inject({ kind: 'readinessFailure', namespace: ns, selector: 'app=slow' });
    try {
      sim.apply(deployment(ns, 'slow', { replicas: 2, image: 'aiwebtest/slow:2.0' }));
      const f = await until(deploymentStatus(cluster, { namespace: ns, name: 'slow' }), (x) =>
        x.summary.startsWith('Waiting for deployment "slow" rollout to finish'),
      );
      expect(f.status).toBe('warn');
      expect(f.data.state).toBe('progressing');
      expect(f.summary).toMatch(/^Waiting for deployment "slow" rollout to finish: /);
    } finally {
      fault.clear();
    }
  });

  it('fails when the progress deadline is exceeded', async () => {
    const ns = await namespaceWith(['stuck', { replicas: 1, progressDeadlineSeconds: 1 }]);
    const fault = sim.faults.inject({ kind: 'imagePullError', namespace: ns, selector: 'app=stuck' });
    try {
      sim.apply(
        deployment(ns, 'stuck', { replicas: 1, progressDeadlineSeconds: 1, image: 'aiwebtest/stuck:9.9' }),
      );
      const f = await until(
        deploymentStatus(cluster, { namespace: ns, name: 'stuck' }),
        (x) => x.status === 'fail',
        8000,
      );
      expect(f.status).toBe('fail');
      expect(f.data.state).toBe('failed');
      expect(f.summary).toMatch(/^deployment "stuck" exceeded its progress deadline/);
      expect(f.data.conditions.find((c) => c.type === 'Progressing')?.reason).toBe(
        'ProgressDeadlineExceeded',
      );
    } finally {
      fault.clear();
    }
  });

  it('fails when a paused deployment has unavailable replicas', async () => {
    const ns = await namespaceWith(['held', { replicas: 2 }]);
    sim.apply(deployment(ns, 'held', { replicas: 2, paused: true }));
    const fault = sim.faults.inject({ kind: 'readinessFailure', namespace: ns, selector: 'app=held' });
    try {
      const f = await until(
        deploymentStatus(cluster, { namespace: ns, name: 'held' }),
        (x) => x.status === 'fail',
      );
      expect(f.status).toBe('fail');
      expect(f.data).toMatchObject({ paused: true, unavailableReplicas: 2 });
      expect(f.summary).toBe(
        `deployment/held in ${ns} is paused with 2 unavailable replicas (desired 2, current 2, up-to-date 2, ready 0, available 0); nothing changes until it is resumed (kubectl rollout resume)`,
      );
    } finally {
      fault.clear();
    }
  });

  it('fails when the deployment does not exist', async () => {
    const ns = await namespaceWith();
    const f = await run(deploymentStatus(cluster, { namespace: ns, name: 'nope' }));
    expect(f.status).toBe('fail');
    expect(f.summary).toBe(`Deployment nope not found in ${ns}`);
    expect(f.data.found).toBe(false);
  });

  it('judges a StatefulSet with the statefulset status viewer', async () => {
    const ns = await namespaceWith();
    sim.apply({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'postgres', namespace: ns },
      spec: {
        replicas: 2,
        serviceName: 'postgres',
        selector: { matchLabels: { app: 'postgres' } },
        template: {
          metadata: { labels: { app: 'postgres' } },
          spec: { containers: [{ name: 'postgres', image: 'postgres:16' }] },
        },
      },
    });
    await sim.settle();
    const f = await until(
      deploymentStatus(cluster, { namespace: ns, name: 'postgres', kind: 'StatefulSet' }),
      (x) => x.status === 'ok',
    );
    expect(f.status).toBe('ok');
    expect(f.data.readyReplicas).toBe(2);
    expect(f.summary).toMatch(/complete/);
    expect(table(f, 'StatefulSet').columns).toContain('UPDATE REVISION');
  });
});

describe('rolloutHistory', () => {
  it('lists revisions with images, change-cause and the current one', async () => {
    const ns = await namespaceWith(['backend', { replicas: 1, image: 'aiwebtest/backend:1.0' }]);
    sim.apply(
      deployment(ns, 'backend', {
        replicas: 1,
        image: 'aiwebtest/backend:1.1',
        annotations: { 'kubernetes.io/change-cause': 'security patch' },
      }),
    );
    await sim.settle();
    const f = await run(rolloutHistory(cluster, { namespace: ns, name: 'backend' }));
    expect(f.status).toBe('ok');
    expect(f.data.current).toBe(2);
    expect(f.data.previous).toBe(1);
    expect(f.data.revisions.map((r) => [r.revision, r.images[0]?.image, r.current])).toEqual([
      [1, 'aiwebtest/backend:1.0', false],
      [2, 'aiwebtest/backend:1.1', true],
    ]);
    expect(f.data.revisions[1]?.changeCause).toBe('security patch');
    expect(f.data.revisions.every((r) => /^[a-z0-9]+$/.test(r.podTemplateHash ?? ''))).toBe(true);
    expect(f.summary).toMatch(
      new RegExp(
        `^deployment/backend in ${ns}: 2 revisions; current 2 \\(app=aiwebtest/backend:1.1, .*"security patch"\\); previous 1 \\(app=aiwebtest/backend:1.0`,
      ),
    );
    expect(table(f, 'Revisions').rows.map((r) => r[1])).toEqual(['', '*']);

    const missing = await run(rolloutHistory(cluster, { namespace: ns, name: 'gone' }));
    expect(missing.status).toBe('fail');
    expect(missing.summary).toBe(`Deployment gone not found in ${ns}`);
  });
});

describe('resourceUsage', () => {
  const resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } };

  it('is ok below the thresholds and warns above them, against the limits', async () => {
    const ns = await namespaceWith(['gen', { replicas: 2, resources }]);
    const check = resourceUsage(cluster, { namespace: ns, selector: 'app=gen' });
    const calm = await until(check, (x) => x.data.containers.length === 2);
    expect(calm.status).toBe('ok');
    expect(calm.summary).toMatch(
      new RegExp(`^2 pods in ${ns} \\(app=gen\\) use \\d+m CPU and \\d+Mi memory; fullest: `),
    );
    expect(calm.data.containers[0]).toMatchObject({ cpuLimit: 0.5, memoryLimit: 256 * 2 ** 20 });

    const [hot = ''] = await podNames(ns, 'app=gen');
    sim.setUsage(ns, hot, 'app', { cpu: '450m', memory: '250Mi' });
    const f = await until(check, (x) => x.status === 'warn');
    expect(f.status).toBe('warn');
    expect(f.data.alarms.map((a) => [a.pod, a.resource])).toEqual([
      [hot, 'memory'],
      [hot, 'cpu'],
    ]);
    expect(f.summary).toBe(
      `2 container limits nearly reached in ${ns} (app=gen): ${hot}/app memory 250Mi = 98% of its 256Mi limit, ${hot}/app CPU 450m = 90% of its 500m limit`,
    );
    expect(table(f, 'Usage').rows[0]?.slice(0, 6)).toEqual([hot, 'app', '450m', '90%', '250Mi', '98%']);
  });

  it('is unknown when the metrics API is not available', async () => {
    const ns = await namespaceWith(['gen', { replicas: 1, resources }]);
    const fault = sim.faults.inject({ kind: 'apiError', code: 503, path: '/apis/metrics.k8s.io' });
    try {
      const f = await run(resourceUsage(cluster, { namespace: ns }));
      expect(f.status).toBe('unknown');
      expect(f.summary).toMatch(
        /^Metrics API \(metrics\.k8s\.io\) not available in checks-\d+: .*\(HTTP 503\); is metrics-server running\?$/,
      );
      expect(f.data.metricsAvailable).toBe(false);
    } finally {
      fault.clear();
    }
  });
});

describe('nodeStatus', () => {
  it('is ok when every node is ready, and fails naming a node that is not', async () => {
    const healthy = await run(nodeStatus(cluster, {}));
    expect(healthy.status).toBe('ok');
    expect(healthy.summary).toBe('3/3 nodes ready');
    expect(healthy.data.nodes.every((n) => n.kubeletVersion?.startsWith('v1.'))).toBe(true);
    expect(healthy.data.nodes[0]?.allocatable.cpu).toBeGreaterThan(0);

    const fault = sim.faults.inject({ kind: 'nodeNotReady', node: 'node-2' });
    try {
      const f = await until(nodeStatus(cluster), (x) => x.status === 'fail');
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(/^2\/3 nodes ready; not ready: node-2 \(/);
      expect(f.data.nodes[0]).toMatchObject({ name: 'node-2', ready: 'Unknown' });
      expect(table(f, 'Nodes').rows[0]?.slice(0, 2)).toEqual(['node-2', 'NotReady']);
    } finally {
      fault.clear();
    }
    expect((await until(nodeStatus(cluster), (x) => x.status === 'ok')).status).toBe('ok');
  });
});

describe('clusterHealth', () => {
  it('is ok when the API answers and the nodes are ready', async () => {
    const f = await run(clusterHealth(cluster, {}));
    expect(f.status).toBe('ok');
    expect(f.summary).toMatch(
      /^Kubernetes API of context "lab" answers \(v1\.[\d.]+.*, \d+ms\); 3\/3 nodes ready$/,
    );
    expect(f.data.reachable).toBe(true);
    expect(f.data.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('fails with the reason when the API answers 503, and warns when it is slow', async () => {
    const error = sim.faults.inject({ kind: 'apiError', code: 503, path: '/version' });
    try {
      const f = await run(clusterHealth(cluster));
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(
        /^Kubernetes API of context "lab" is not healthy: GET \/version failed \(ServiceUnavailable, HTTP 503\)/,
      );
      expect(f.data).toMatchObject({ reachable: false, reason: 'ServiceUnavailable', httpStatus: 503 });
    } finally {
      error.clear();
    }
    const slow = sim.faults.inject({ kind: 'apiLatency', delay: 200, path: '/version' });
    try {
      const f = await run(clusterHealth(cluster, { slowAfter: 100 }));
      expect(f.status).toBe('warn');
      expect(f.summary).toContain('slower than 100ms');
      expect(f.data.latencyMs).toBeGreaterThanOrEqual(190);
    } finally {
      slow.clear();
    }
  });

  it('fails, without throwing, when the API server is gone or too slow', async () => {
    const closed = await closedPort();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'gone', server: `http://127.0.0.1:${closed}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'lab', cluster: 'gone', user: 'u' }],
      currentContext: 'lab',
    });
    const gone = connectKubernetes({ kubeConfig: kc, expectedContext: 'lab', namespaces: ['lab'] });
    const f = await run(clusterHealth(gone));
    expect(f.status).toBe('fail');
    expect(f.data.reason).toBe('Unreachable');
    expect(f.summary).toMatch(
      /^Kubernetes API of context "lab" is not healthy: GET \/version failed \(Unreachable\)/,
    );

    const slow = sim.faults.inject({ kind: 'apiLatency', delay: 500, path: '/version' });
    try {
      const impatient = connectKubernetes({
        kubeConfig: sim.kubeConfig(),
        expectedContext: 'lab',
        namespaces: ['lab'],
        requestTimeout: 100,
      });
      const t = await run(clusterHealth(impatient));
      expect(t.status).toBe('fail');
      expect(t.data.reason).toBe('Timeout');
    } finally {
      slow.clear();
    }
  });
});

describe('cancellation', () => {
  it("aborts a check's request when the step's signal fires", async () => {
    const slow = sim.faults.inject({ kind: 'apiLatency', delay: 2000, path: '/api/v1/nodes' });
    try {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 50);
      await expect(nodeStatus(cluster).run({ ...ctx(), signal: controller.signal })).rejects.toMatchObject({
        code: 'K8S_ABORTED',
      });
      // A cancelled health check does not pretend to be a diagnosis either.
      await expect(clusterHealth(cluster).run({ ...ctx(), signal: controller.signal })).rejects.toMatchObject(
        {
          code: 'K8S_ABORTED',
        },
      );
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      slow.clear();
    }
  });
});

describe('context guard', () => {
  it('refuses every check before any request when the context is not the expected one', async () => {
    const wrong = connectKubernetes({
      kubeConfig: sim.kubeConfig(),
      expectedContext: 'production',
      namespaces: ['lab'],
    });
    // A fault on every path that clears itself after one hit: still listed afterwards means no request came.
    const trap = sim.faults.inject({ kind: 'apiError', code: 500, times: 1 });
    try {
      const checks: Check<unknown>[] = [
        podStatus(wrong, { namespace: 'lab', selector: 'app=x' }),
        podLogs(wrong, { namespace: 'lab', selector: 'app=x' }),
        events(wrong, { namespace: 'lab' }),
        deploymentStatus(wrong, { namespace: 'lab', name: 'x' }),
        rolloutHistory(wrong, { namespace: 'lab', name: 'x' }),
        resourceUsage(wrong, { namespace: 'lab' }),
        nodeStatus(wrong),
        clusterHealth(wrong),
      ];
      for (const check of checks) {
        await expect(check.run(ctx()), check.kind).rejects.toMatchObject({ code: 'K8S_REFUSED' });
      }
      expect(sim.faults.list().map((f) => f.id)).toContain(trap.id);
      // The trap is live: a request through the expected context springs it (and clears it). The check's
      // own outcome is not asserted: undici transparently retries an idempotent GET whose keep-alive
      // socket the server closed, which may hide the 500 from it.
      await run(podStatus(cluster, { namespace: 'lab', selector: 'app=x' })).catch(() => undefined);
      expect(sim.faults.list().map((f) => f.id)).not.toContain(trap.id);
    } finally {
      trap.clear();
    }
  });
});

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
