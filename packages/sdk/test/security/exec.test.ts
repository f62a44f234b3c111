import { Writable } from 'node:stream';
import { Exec } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubernetesCluster } from '../../src/kubernetes/cluster';
import { changedFilesScan, removeFiles } from '../../src/security/changed-files';
import { connectPodExec, type PodExec } from '../../src/security/pod-exec';
import { strictRateLimit } from '../../src/security/strict-rate-limit';
import { PODS } from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { startSimulatedCluster, stepContext } from '../support/kubernetes';
import { execute } from './support';

// `pods/exec` through the Kubernetes simulator: the real @kubernetes/client-node `Exec` speaks WebSocket
// (v5/v4.channel.k8s.io) to the simulator's API server, which runs the command in the pod's in-memory files.

const NS = 'aiwebtest';
let sim: KubernetesSimulator;
let cluster: KubernetesCluster;
let exec: PodExec;
let pods: string[];

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS] }));
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'backend', namespace: NS, labels: { app: 'backend' } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'backend' } },
      template: {
        metadata: { labels: { app: 'backend' } },
        spec: {
          containers: [
            { name: 'backend', image: 'aiwebtest/backend:1.0', env: [{ name: 'LOG_LEVEL', value: 'info' }] },
          ],
        },
      },
    },
  });
  await sim.settle();
  pods = sim.store
    .list(PODS, NS)
    .items.map((p) => p.metadata.name as string)
    .sort();
  exec = connectPodExec({ cluster, kubeConfig: sim.kubeConfig() });
});
afterAll(async () => {
  await sim?.close();
});

const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);

/** Runs a command with the unmodified client, returning what it printed and the Status it got. */
async function rawExec(pod: string, command: string[]) {
  let out = '';
  const sink = new Writable({
    write(chunk, _e, done) {
      out += String(chunk);
      done();
    },
  });
  const status = await new Promise<{ status?: string; details?: unknown }>((resolve, reject) => {
    new Exec(sim.kubeConfig())
      .exec(NS, pod, 'backend', command, sink, sink, null, false, resolve)
      .catch(reject);
  });
  return { out, status };
}

describe('simulator pods/exec', () => {
  it('lists recent files with find, refuses other programs with 126, and 404s a missing pod', async () => {
    const [pod] = pods as [string];
    const files = sim.files(NS, pod);
    files.write('/app/server.py', { mtime: hoursAgo(72) });
    files.write('/app/.cache/backdoor.py', { mtime: hoursAgo(2), size: 812 });
    files.write('/etc/cron.d/evil', { mtime: hoursAgo(1) });
    const found = await rawExec(pod, ['find', '/app', '-type', 'f', '-mtime', '-1']);
    expect(found).toEqual({ out: '/app/.cache/backdoor.py\n', status: { metadata: {}, status: 'Success' } });
    const refused = await rawExec(pod, ['sh', '-c', 'rm -rf /']);
    expect(refused.out).toContain('only "find <dir> -type f -mmin -N" and "rm -f -- <paths>" are simulated');
    expect(refused.status).toMatchObject({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '126' }] },
    });
    await expect(
      exec.run(NS, 'backend-gone', undefined, ['find', '/app', '-type', 'f']),
    ).rejects.toMatchObject({
      code: 'K8S_EXEC',
      message: expect.stringContaining('404'),
    });
    // Output beyond 64 KiB travels in frames with 64-bit lengths.
    for (let i = 0; i < 3_000; i++) files.write(`/app/generated/module_${String(i).padStart(4, '0')}.py`);
    const many = await exec.run(NS, pod, undefined, ['find', '/app/generated', '-type', 'f']);
    expect(many.stdout.length).toBeGreaterThan(65_536);
    expect(many.stdout.trim().split('\n')).toHaveLength(3_000);
    for (let i = 0; i < 3_000; i++) files.remove(`/app/generated/module_${String(i).padStart(4, '0')}.py`);
    files.remove('/app/.cache/backdoor.py');
    files.remove('/etc/cron.d/evil');
  });
});

describe('changedFilesScan and removeFiles', () => {
  it('finds the files changed in the last hours in every pod, then removes exactly the planned ones', async () => {
    const [a, b] = pods as [string, string];
    sim.files(NS, a).write('/app/server.py', { mtime: hoursAgo(72) });
    sim.files(NS, a).write('/app/backdoor.py', { mtime: hoursAgo(3) });
    sim.files(NS, a).write('/app/logs/today.log', { mtime: hoursAgo(0.1) });
    sim.files(NS, b).write('/app/server.py', { mtime: hoursAgo(72) });

    const scan = await changedFilesScan(exec, {
      namespace: NS,
      selector: 'app=backend',
      within: '24h',
      ignore: ['/app/logs/'],
    }).run(stepContext());
    expect(scan.status).toBe('warn');
    expect(scan.data.pods).toEqual([a, b]);
    expect(scan.data.files).toEqual([{ pod: a, path: '/app/backdoor.py' }]);
    expect(scan.summary).toBe('1 file under /app changed in the last 24h: /app/backdoor.py');
    expect(scan.evidence[0]).toMatchObject({
      kind: 'table',
      columns: ['pod', 'path'],
      rows: [[a, '/app/backdoor.py']],
    });
    const narrow = await changedFilesScan(exec, {
      namespace: NS,
      pod: a,
      within: '2h',
      ignore: ['/app/logs/'],
    }).run(stepContext());
    expect(narrow).toMatchObject({ status: 'ok', data: { files: [] } });
    const noPod = await changedFilesScan(exec, { namespace: NS, pod: 'nope' }).run(stepContext());
    expect(noPod.status).toBe('unknown');

    const action = removeFiles(exec, {
      namespace: NS,
      pod: a,
      paths: ['/app/backdoor.py', '/app/not-there.py'],
    });
    expect(action).toMatchObject({ destructive: true, risk: 'high', target: `k8s:${NS}/pod/${a}` });
    expect(action.revert).toBeUndefined();
    const run = await execute(action);
    expect(run.plan.changes).toEqual([
      { target: `k8s:${NS}/pod/${a}`, field: 'file:/app/backdoor.py', before: 'present', after: null },
    ]);
    expect(run.plan.params.paths).toEqual(['/app/backdoor.py']);
    expect(run.plan.summary).toBe(`Remove 1 file from ${NS}/${a}: /app/backdoor.py (1 path already gone)`);
    expect(run.verification?.status).toBe('ok');
    expect(
      sim
        .files(NS, a)
        .list()
        .map((f) => f.path),
    ).toEqual(['/app/logs/today.log', '/app/server.py']);
  });

  it('passes paths as argv: a path with shell characters is one file, nothing else is touched', async () => {
    const [, b] = pods as [string, string];
    const odd = '/app/x; rm -rf $HOME "*"';
    sim.files(NS, b).write(odd);
    const run = await execute(removeFiles(exec, { namespace: NS, pod: b, paths: [odd] }));
    expect(run.data).toEqual({ removed: 1 });
    expect(
      sim
        .files(NS, b)
        .list()
        .map((f) => f.path),
    ).toEqual(['/app/server.py']);
  });

  it('reads find -print0: a newline in a name cannot add a path to the removal plan; such names are reported', async () => {
    const [a] = pods as [string];
    const files = sim.files(NS, a);
    const sneaky = '/app/cache\n/app/server.py';
    files.write('/app/server.py', { mtime: hoursAgo(72) }); // old: must never be planned for removal
    files.write(sneaky, { mtime: hoursAgo(1) });
    files.write('/app/dropper.py', { mtime: hoursAgo(1) });
    try {
      const scan = await changedFilesScan(exec, { namespace: NS, pod: a, ignore: ['/app/logs/'] }).run(
        stepContext(),
      );
      expect(scan.status).toBe('warn');
      expect(scan.data.files).toEqual([{ pod: a, path: '/app/dropper.py' }]);
      expect(scan.data.unrepresentable).toEqual([{ pod: a, path: sneaky }]);
      expect(scan.summary).toBe(
        `1 file under /app changed in the last 24h: /app/dropper.py; 1 more file with control characters in the name, to remove by hand: ${a}:"/app/cache\\n/app/server.py"`,
      );
      expect(scan.evidence[1]).toMatchObject({ rows: [[a, '"/app/cache\\n/app/server.py"']] });
      // Only the odd name changed: still a warning, not "nothing changed".
      files.remove('/app/dropper.py');
      const onlyOdd = await changedFilesScan(exec, { namespace: NS, pod: a, ignore: ['/app/logs/'] }).run(
        stepContext(),
      );
      expect(onlyOdd).toMatchObject({ status: 'warn', data: { files: [] } });
    } finally {
      files.remove(sneaky);
      files.remove('/app/server.py');
    }
  });

  it('removes more paths than one command may carry, in batches, as one planned action', async () => {
    const [, b] = pods as [string, string];
    const files = sim.files(NS, b);
    const paths = Array.from({ length: 150 }, (_, i) => `/app/drop/f${String(i).padStart(3, '0')}.py`);
    for (const path of paths) files.write(path, { mtime: hoursAgo(1) });
    const scan = await changedFilesScan(exec, { namespace: NS, pod: b, dir: '/app/drop' }).run(stepContext());
    expect(scan.data.files).toHaveLength(150);
    const run = await execute(
      removeFiles(exec, { namespace: NS, pod: b, paths: scan.data.files.map((f) => f.path), batchSize: 40 }),
    );
    expect(run.plan.changes).toHaveLength(150);
    expect(run.data).toEqual({ removed: 150 });
    expect(run.verification?.status).toBe('ok');
    expect(files.list().filter((f) => f.path.startsWith('/app/drop/'))).toEqual([]);
  });

  it('refuses relative paths, "..", and namespaces actions may not change', async () => {
    expect(() => removeFiles(exec, { namespace: NS, pod: 'p', paths: ['app/x'] })).toThrow(
      /paths\[0\]: expected an absolute path/,
    );
    expect(() => removeFiles(exec, { namespace: NS, pod: 'p', paths: ['/app/../etc/passwd'] })).toThrow(
      /".." is not allowed/,
    );
    await expect(
      removeFiles(exec, { namespace: 'kube-system', pod: 'p', paths: ['/x'] }).plan(stepContext()),
    ).rejects.toMatchObject({
      message: expect.stringContaining('namespace "kube-system" is not in the allowed list'),
    });
  });
});

describe('strictRateLimit', () => {
  it('sets RATE_LIMIT_STRICT and RATE_LIMIT_GLOBAL on the deployment (kubectl set env), and reverts', async () => {
    const action = strictRateLimit(cluster, { namespace: NS, global: 10, timeout: '20s' });
    expect(action.kind).toBe('security.strict-rate-limit');
    const run = await execute(action);
    expect(run.plan.changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['spec.template.spec.containers[name=backend].env[name=RATE_LIMIT_STRICT]', null, 'true'],
      ['spec.template.spec.containers[name=backend].env[name=RATE_LIMIT_GLOBAL]', null, '10'],
    ]);
    expect(run.verification?.status).toBe('ok');
    const env = async () =>
      (await cluster.apps.readNamespacedDeployment({ name: 'backend', namespace: NS })).spec?.template.spec
        ?.containers[0]?.env;
    expect(await env()).toEqual([
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'RATE_LIMIT_STRICT', value: 'true' },
      { name: 'RATE_LIMIT_GLOBAL', value: '10' },
    ]);
    await run.revert();
    expect(await env()).toEqual([{ name: 'LOG_LEVEL', value: 'info' }]);
  });
});
