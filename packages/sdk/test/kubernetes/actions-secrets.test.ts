import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Json } from '../../src/core/json';
import { sealPlan } from '../../src/core/plan';
import { createRedactor, REDACTED } from '../../src/core/redact';
import { defineRunbook } from '../../src/core/runbook';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { applyManifests } from '../../src/kubernetes/actions/apply-manifests';
import { rolloutRestart } from '../../src/kubernetes/actions/rollout-restart';
import { rolloutUndo } from '../../src/kubernetes/actions/rollout-undo';
import { scale } from '../../src/kubernetes/actions/scale';
import { setEnv } from '../../src/kubernetes/actions/set-env';
import { connectKubernetes, type KubernetesCluster } from '../../src/kubernetes/cluster';
import type { KubeObject } from '../../src/testing/kubernetes/object-store';
import { CONFIGMAPS, DEPLOYMENTS } from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { engineFixture } from '../support/engine-fixture';
import { sealAsEngine, startSimulatedCluster, stepContext } from '../support/kubernetes';
import { DRIVERS } from '../support/stores';

// How the Kubernetes actions keep secrets out of plans, approvals and the audit log, and still work on the
// plans the engine hands back (sealed AND redacted), against the project's Kubernetes API simulator through
// the real @kubernetes/client-node; the engine tests use the real Engine over an embedded PGlite store.

const NS = 'vault';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS] }));
});

afterAll(async () => {
  await sim?.close();
});

function ctx(signal: AbortSignal = new AbortController().signal, lines: string[] = []): StepContext {
  return stepContext({ signal, log: (message: string) => lines.push(message) });
}

/** plan → seal (redacted) → apply → verify, as the engine drives them; the draft too, to search it. */
async function execute<P, A>(action: Action<P, A>, lines: string[] = []) {
  const c = ctx(undefined, lines);
  const draft = await action.plan(c);
  const plan = sealAsEngine(action, draft);
  const data = await action.apply(c, plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  const verification = action.verify ? await action.verify(c, applied) : undefined;
  return { draft, plan, applied, verification };
}

type Env = { name: string; value?: string }[];

function deployment(name: string, env?: Env, podSpec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: 'app', image: `aiwebtest/${name}:1.0`, ...(env ? { env } : {}) }],
          ...podSpec,
        },
      },
    },
  };
}

async function seed(...manifests: object[]): Promise<void> {
  sim.apply(...manifests);
  await sim.settle();
}

type PodSpec = { containers: { name: string; image: string; env?: Env }[] } & Record<string, unknown>;
const templateOf = (o: KubeObject) => (o.spec as { template: { spec: PodSpec } }).template;
const getDeployment = (name: string) => sim.store.get(DEPLOYMENTS, NS, name);
const envOf = (name: string, container = 'app') =>
  Object.fromEntries(
    (templateOf(getDeployment(name)).spec.containers.find((c) => c.name === container)?.env ?? []).map(
      (e) => [e.name, e.value],
    ),
  );
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await pause(5);
  }
}

/** An API fault that any request would use up: still listed afterwards means no request was made. */
function tripwire() {
  const fault = sim.faults.inject({ kind: 'apiError', code: 500, times: 1 });
  return {
    untouched: () => sim.faults.list().some((f) => f.id === fault.id),
    clear: () => fault.clear(),
  };
}

describe('setEnv on the engine', () => {
  const fx = engineFixture(DRIVERS.pglite);
  const field = (name: string) => `spec.template.spec.containers[name=app].env[name=${name}]`;

  /** A runbook setting `env` on `name`; the values live in the code (as secrets from the environment would). */
  function setEnvRunbook(
    id: string,
    name: string,
    env: Record<string, string>,
    wrap: (action: Action<unknown, unknown>) => Action<unknown, unknown> = (a) => a,
  ) {
    return defineRunbook({
      id,
      title: id,
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        const action = setEnv(cluster, { namespace: NS, name, env, timeout: '20s' });
        // Reverted by the engine one second after it was applied: the engine's own revert path.
        await step.act('set-env', wrap({ ...action, expiresAfter: '1s' } as Action<unknown, unknown>));
        return step.done('set');
      },
    });
  }

  async function revertThroughEngine(engine: ReturnType<typeof fx.engine>): Promise<void> {
    await pause(1_100);
    expect(await engine.revertExpired()).toBe(1);
  }

  /** Everything the store keeps about a run, and the audit log. */
  async function stored(engine: ReturnType<typeof fx.engine>, runId: string): Promise<string> {
    const { run, steps } = await engine.getRun(runId);
    const audit = (await fx.sut.store.readAudit()).map((r) => r.entry).join('\n');
    return JSON.stringify({ run, steps }) + audit;
  }

  it('sets a plain variable (LOG_LEVEL info → debug), verifies, and the engine reverts it', async () => {
    await seed(deployment('plain', [{ name: 'LOG_LEVEL', value: 'info' }]));
    const engine = fx.engine([setEnvRunbook('set-plain', 'plain', { LOG_LEVEL: 'debug' })]);
    const result = await engine.start('set-plain', {}, { mode: 'execute', actor: 'a' });
    expect(result.error).toBeNull();
    expect(result.status).toBe('succeeded');
    const step = (await engine.getRun(result.runId)).steps.find((s) => s.name === 'set-env');
    expect(step?.result).toMatchObject({
      status: 'applied',
      plan: {
        changes: [
          { target: 'k8s:vault/deployment/plain', field: field('LOG_LEVEL'), before: 'info', after: 'debug' },
        ],
      },
      verification: { status: 'ok' },
    });
    expect(envOf('plain')).toEqual({ LOG_LEVEL: 'debug' });

    await revertThroughEngine(engine);
    expect(envOf('plain')).toEqual({ LOG_LEVEL: 'info' });
  });

  it('sets a secret variable without storing its values, and the engine reverts it from the history', async () => {
    await seed(
      deployment('secretive', [
        { name: 'LOG_LEVEL', value: 'info' },
        { name: 'DB_PASSWORD', value: 'old-pw-1234' },
      ]),
    );
    const engine = fx.engine([
      setEnvRunbook('set-secret', 'secretive', { DB_PASSWORD: 'new-pw-5678', LOG_LEVEL: 'warn' }),
    ]);
    const result = await engine.start('set-secret', {}, { mode: 'execute', actor: 'a' });
    expect(result.error).toBeNull();
    expect(result.status).toBe('succeeded');
    const step = (await engine.getRun(result.runId)).steps.find((s) => s.name === 'set-env');
    expect((step?.result as { plan?: { changes: unknown[] } } | undefined)?.plan?.changes).toEqual([
      {
        target: 'k8s:vault/deployment/secretive',
        field: field('DB_PASSWORD'),
        before: REDACTED,
        after: '[REDACTED: new value]',
      },
      { target: 'k8s:vault/deployment/secretive', field: field('LOG_LEVEL'), before: 'info', after: 'warn' },
    ]);
    expect(envOf('secretive')).toEqual({ LOG_LEVEL: 'warn', DB_PASSWORD: 'new-pw-5678' });

    await revertThroughEngine(engine);
    expect(envOf('secretive')).toEqual({ LOG_LEVEL: 'info', DB_PASSWORD: 'old-pw-1234' });
    const kept = await stored(engine, result.runId);
    expect(kept).not.toContain('old-pw-1234');
    expect(kept).not.toContain('new-pw-5678');
  });

  /**
   * The process "dies" during apply: the store says `applying`, and another process takes the run over
   * (its lease is made to look expired). `applyReally` says whether the patch had reached the cluster.
   */
  function crashingOnce(applyReally: boolean) {
    const calls = { applies: 0, crashed: false };
    const wrap = (action: Action<unknown, unknown>): Action<unknown, unknown> => ({
      ...action,
      async apply(c, plan) {
        if (calls.crashed) {
          calls.applies++;
          return action.apply(c, plan);
        }
        calls.crashed = true;
        if (applyReally) {
          calls.applies++;
          await action.apply(c, plan);
        }
        await fx.sut.store.driver.query(
          `UPDATE runs SET lease_owner = 'someone-else', lease_expires_at = now() - interval '1 minute' WHERE id = $1`,
          [c.runId],
        );
        return null;
      },
    });
    return { calls, wrap };
  }

  it('re-applies a secret variable after a crash before the patch reached the cluster', async () => {
    await seed(deployment('crash-before', [{ name: 'API_TOKEN', value: 'tok-old-1234' }]));
    const { calls, wrap } = crashingOnce(false);
    const rb = setEnvRunbook('crash-before', 'crash-before', { API_TOKEN: 'tok-new-5678' }, wrap);
    const first = await fx.engine([rb]).start('crash-before', {}, { mode: 'execute', actor: 'a' });
    expect(first.status).toBe('running'); // this process stopped; the run is not finished
    expect(envOf('crash-before')).toEqual({ API_TOKEN: 'tok-old-1234' });

    const resumed = await fx.engine([rb]).resume(first.runId);
    expect(resumed.status).toBe('succeeded');
    expect(calls.applies).toBe(1);
    expect(envOf('crash-before')).toEqual({ API_TOKEN: 'tok-new-5678' });
    const step = (await fx.sut.store.getSteps(first.runId)).find((s) => s.name === 'set-env');
    expect(step?.result).toMatchObject({ status: 'applied', applied: { recovered: false } });
  });

  it('does not apply a secret variable again after a crash once the patch had taken effect', async () => {
    await seed(deployment('crash-after', [{ name: 'API_TOKEN', value: 'tok-old-1234' }]));
    const { calls, wrap } = crashingOnce(true);
    const rb = setEnvRunbook('crash-after', 'crash-after', { API_TOKEN: 'tok-new-5678' }, wrap);
    const first = await fx.engine([rb]).start('crash-after', {}, { mode: 'execute', actor: 'a' });
    expect(first.status).toBe('running');

    const resumed = await fx.engine([rb]).resume(first.runId);
    expect(resumed.status).toBe('succeeded');
    expect(calls.applies).toBe(1);
    expect(envOf('crash-after')).toEqual({ API_TOKEN: 'tok-new-5678' });
    const step = (await fx.sut.store.getSteps(first.runId)).find((s) => s.name === 'set-env');
    expect(step?.result).toMatchObject({ status: 'applied', applied: { recovered: true } });
  });
});

describe('secret env values stay out of plans, params, findings and errors', () => {
  const SECRETS = ['hunter2-pw', 'hunter3-pw', 'tok-9876-side'];
  const expectNoSecret = (...values: unknown[]) => {
    const text = JSON.stringify(values);
    for (const secret of SECRETS) expect(text).not.toContain(secret);
  };

  it('rolloutUndo to a template whose env was removed since', async () => {
    await seed(
      deployment('undo-env', [
        { name: 'DB_PASSWORD', value: 'hunter2-pw' },
        { name: 'LOG_LEVEL', value: 'info' },
      ]),
    );
    const d = getDeployment('undo-env');
    delete templateOf(d).spec.containers[0]?.env;
    sim.store.update(DEPLOYMENTS, d);
    await sim.settle();
    expect(envOf('undo-env')).toEqual({});

    const lines: string[] = [];
    const { draft, plan, verification } = await execute(
      rolloutUndo(cluster, { namespace: NS, name: 'undo-env', timeout: '20s' }),
      lines,
    );
    expect(plan.changes).toContainEqual({
      target: 'k8s:vault/deployment/undo-env',
      field: 'spec.template.spec.containers[name=app].env',
      before: null,
      after: [
        { name: 'DB_PASSWORD', value: REDACTED },
        { name: 'LOG_LEVEL', value: 'info' },
      ],
    });
    expectNoSecret(draft, plan, verification, lines);
    expect(verification?.status).toBe('ok');
    // The secret was written all the same: apply reads it from the ReplicaSet, not from the plan.
    expect(envOf('undo-env')).toEqual({ DB_PASSWORD: 'hunter2-pw', LOG_LEVEL: 'info' });
  });

  const withSidecar = (appEnv: Env, sidecarEnv?: Env) => {
    const d = deployment('mf-app', appEnv);
    d.spec.template.spec.containers.push({
      name: 'sidecar',
      image: 'envoy:1.30',
      ...(sidecarEnv ? { env: sidecarEnv } : {}),
    });
    return d;
  };

  it('applyManifests create: the planned object shows secret-named env values redacted', async () => {
    const lines: string[] = [];
    const action = applyManifests(cluster, {
      manifests: [
        withSidecar([
          { name: 'DB_PASSWORD', value: 'hunter2-pw' },
          { name: 'LEVEL', value: 'x' },
        ]),
      ],
      timeout: '20s',
    });
    const { draft, plan, applied, verification } = await execute(action, lines);
    const created = plan.changes.find((c) => c.field === '(object)')?.after as {
      spec: { template: { spec: PodSpec } };
    };
    expect(created.spec.template.spec.containers[0]?.env).toEqual([
      { name: 'DB_PASSWORD', value: REDACTED },
      { name: 'LEVEL', value: 'x' },
    ]);
    expectNoSecret(draft, plan, applied, verification, lines);
    expect(verification?.status).toBe('ok');
    expect(envOf('mf-app')).toEqual({ DB_PASSWORD: 'hunter2-pw', LEVEL: 'x' });
  });

  it('applyManifests update: diffs (also of a list only one side has) and previous versions hold no secret', async () => {
    const lines: string[] = [];
    const action = applyManifests(cluster, {
      manifests: [
        withSidecar(
          [
            { name: 'DB_PASSWORD', value: 'hunter3-pw' },
            { name: 'LEVEL', value: 'x' },
          ],
          [{ name: 'SIDECAR_TOKEN', value: 'tok-9876-side' }],
        ),
      ],
      timeout: '20s',
    });
    const { draft, plan, applied, verification } = await execute(action, lines);
    const target = 'k8s:vault/deployment/mf-app';
    expect(plan.changes).toEqual(
      expect.arrayContaining([
        {
          target,
          field: 'spec.template.spec.containers[name=app].env[name=DB_PASSWORD].value',
          before: REDACTED,
          after: '[REDACTED: new value]',
        },
        {
          target,
          field: 'spec.template.spec.containers[name=sidecar].env',
          before: null,
          after: [{ name: 'SIDECAR_TOKEN', value: REDACTED }],
        },
      ]),
    );
    // The live object held a secret value: it is not stored, so revert cannot restore it, and says so.
    expect(draft.params.objects[0]).toMatchObject({ action: 'update', previous: null, restorable: false });
    expect(plan.summary).toContain('revert cannot restore Deployment vault/mf-app');
    expectNoSecret(draft, plan, applied, verification, lines);
    expect(envOf('mf-app')).toEqual({ DB_PASSWORD: 'hunter3-pw', LEVEL: 'x' });
    expect(envOf('mf-app', 'sidecar')).toEqual({ SIDECAR_TOKEN: 'tok-9876-side' });

    // A failed apply's error and log name no secret either.
    const failing = applyManifests(cluster, {
      manifests: [withSidecar([{ name: 'DB_PASSWORD', value: 'hunter2-pw' }])],
    });
    const failingPlan = sealAsEngine(failing, await failing.plan(ctx()));
    const fault = sim.faults.inject({ kind: 'apiError', code: 422, method: 'PUT', times: 1 });
    const error = await failing.apply(ctx(undefined, lines), failingPlan).catch((e: unknown) => e);
    fault.clear();
    expect(error).toMatchObject({ status: 422 });
    expectNoSecret(failingPlan, String(error), JSON.stringify(error), lines);
  });
});

describe('applyManifests revert of objects that only look secret', () => {
  it('restores a Deployment mounting a Secret volume, with automountServiceAccountToken: false', async () => {
    const manifest = (image: string) => {
      const d = deployment('mounts', undefined, {
        automountServiceAccountToken: false,
        volumes: [{ name: 'creds', secret: { secretName: 'db-creds', defaultMode: 256 } }],
      });
      const container = d.spec.template.spec.containers[0] as Record<string, unknown>;
      container.image = image;
      container.volumeMounts = [{ name: 'creds', mountPath: '/etc/creds', readOnly: true }];
      return d;
    };
    await seed(manifest('aiwebtest/mounts:1.0'));
    const action = applyManifests(cluster, { manifests: [manifest('aiwebtest/mounts:2.0')], timeout: '20s' });
    const { plan, applied } = await execute(action);
    expect(plan.params.objects[0]).toMatchObject({ action: 'update', restorable: true });
    expect(templateOf(getDeployment('mounts')).spec.containers[0]?.image).toBe('aiwebtest/mounts:2.0');

    await action.revert?.(ctx(), applied);
    const restored = templateOf(getDeployment('mounts')).spec;
    expect(restored.containers[0]?.image).toBe('aiwebtest/mounts:1.0');
    expect(restored.volumes).toEqual([
      { name: 'creds', secret: { secretName: 'db-creds', defaultMode: 256 } },
    ]);
    expect(restored.automountServiceAccountToken).toBe(false);
  });
});

describe('applyManifests guard: namespaced kinds only', () => {
  const clusterScoped = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'x', namespace: NS },
    },
    { apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', metadata: { name: 'x', namespace: NS } },
    {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: { name: 'x', namespace: NS },
    },
    // A custom resource that borrows a built-in name: the API group tells it apart.
    { apiVersion: 'example.com/v1', kind: 'Service', metadata: { name: 'x', namespace: NS } },
  ];

  it('refuses a kind not known to be namespaced before any request, even with a namespace set', () => {
    const wire = tripwire();
    try {
      for (const manifest of clusterScoped) {
        expect(() => applyManifests(cluster, { manifests: [manifest] })).toThrow(
          new RegExp(
            `manifests\\[0\\]\\.kind: ${manifest.kind} is cluster-scoped or not known to be namespaced`,
          ),
        );
      }
      expect(wire.untouched()).toBe(true);
    } finally {
      wire.clear();
    }
  });

  it('refuses a plan naming such a kind in apply and revert, before any request', async () => {
    const action = applyManifests(cluster, {
      manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: NS } }],
    });
    const forged = sealPlan(action, {
      summary: 'x',
      changes: [],
      params: {
        objects: [
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            namespace: NS,
            name: 'admin',
            action: 'create' as const,
            resourceVersion: null,
            keep: {},
            digest: '',
            previous: null,
            restorable: true,
          },
        ],
        fieldManager: 'm',
        timeoutMs: 1,
      },
    });
    const applied = { plan: forged, data: null, appliedAt: '', recovered: false };
    const wire = tripwire();
    try {
      await expect(action.apply(ctx(), forged)).rejects.toMatchObject({ code: 'K8S_REFUSED' });
      await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({
        code: 'K8S_REFUSED',
        message: expect.stringContaining('ClusterRole'),
      });
      expect(wire.untouched()).toBe(true);
    } finally {
      wire.clear();
    }
  });
});

describe('applyManifests undoes a partial apply', () => {
  const cm = (name: string, level: string) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: NS },
    data: { level },
  });
  const levelOf = (name: string) =>
    (sim.store.find(CONFIGMAPS, NS, name)?.data as { level?: string } | undefined)?.level;

  it('when a later object fails', async () => {
    await seed(cm('pa-b', 'old'));
    const action = applyManifests(cluster, {
      manifests: [cm('pa-a', 'new'), cm('pa-b', 'new'), deployment('pa-c')],
    });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    const fault = sim.faults.inject({
      kind: 'apiError',
      code: 500,
      method: 'POST',
      path: `/apis/apps/v1/namespaces/${NS}/deployments`,
      times: 1,
    });
    const lines: string[] = [];
    try {
      await expect(action.apply(ctx(undefined, lines), plan)).rejects.toMatchObject({ status: 500 });
    } finally {
      fault.clear();
    }
    expect(levelOf('pa-a')).toBeUndefined();
    expect(levelOf('pa-b')).toBe('old');
    expect(sim.store.find(DEPLOYMENTS, NS, 'pa-c')).toBeUndefined();
    expect(lines.join('\n')).toContain('apply stopped after 2 object(s); undone');
  });

  it('when the step is cancelled or times out mid-apply (its signal aborted)', async () => {
    await seed(cm('pc-b', 'old'));
    const action = applyManifests(cluster, {
      manifests: [cm('pc-a', 'new'), cm('pc-b', 'new'), deployment('pc-c')],
    });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    const slow = sim.faults.inject({
      kind: 'apiLatency',
      delay: '2s',
      method: 'POST',
      path: `/apis/apps/v1/namespaces/${NS}/deployments`,
    });
    const step = new AbortController();
    const lines: string[] = [];
    try {
      // pc-a is created, pc-b replaced, then pc-c's create hangs until the step is aborted.
      const applying = action.apply(ctx(step.signal, lines), plan).catch((e: unknown) => e);
      await until(() => levelOf('pc-b') === 'new');
      await pause(50);
      step.abort(new Error('step timed out'));
      expect(await applying).toBeInstanceOf(Error);
    } finally {
      slow.clear();
    }
    expect(levelOf('pc-a')).toBeUndefined();
    expect(levelOf('pc-b')).toBe('old');
    expect(lines.join('\n')).toContain('apply stopped after 2 object(s); undone');
  });
});

describe('applyManifests plans are deterministic', () => {
  it('leaves server-assigned fields (clusterIP, nodePort, uid…) out of a create', async () => {
    // A real API server allocates a fresh clusterIP and nodePorts on every dry-run create; the simulator
    // derives them from the name, so this view of the cluster randomizes them as a real server would.
    const randomizing = connectKubernetes({
      kubeConfig: sim.kubeConfig(),
      expectedContext: 'lab',
      namespaces: [NS],
    });
    const objects = randomizing.objects.bind(randomizing);
    const random = (n: number) => Math.floor(Math.random() * n);
    randomizing.objects = (options) => {
      const api = objects(options);
      const view = Object.create(api) as typeof api;
      view.create = async (...args: Parameters<typeof api.create>) => {
        const out = (await api.create(...args)) as unknown as {
          kind: string;
          spec: { clusterIP?: string; clusterIPs?: string[]; ports?: { nodePort?: number }[] };
        };
        if (args[2] === 'All' && out.kind === 'Service') {
          out.spec.clusterIP = `10.${random(255)}.${random(255)}.${random(255)}`;
          out.spec.clusterIPs = [out.spec.clusterIP];
          for (const port of out.spec.ports ?? []) port.nodePort ??= 30000 + random(2768);
        }
        return out as never;
      };
      return view;
    };
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'edge', namespace: NS },
      spec: {
        type: 'NodePort',
        selector: { app: 'edge' },
        ports: [
          { name: 'http', port: 80 },
          { name: 'https', port: 443, nodePort: 30443 },
        ],
      },
    };
    const action = applyManifests(randomizing, { manifests: [service] });
    const first = sealAsEngine(action, await action.plan(ctx()));
    const second = sealAsEngine(action, await action.plan(ctx()));
    expect(second.hash).toBe(first.hash);
    const created = first.changes[0]?.after as { metadata: Json; spec: Record<string, unknown> };
    expect(created.spec.clusterIP).toBeUndefined();
    expect(created.spec.clusterIPs).toBeUndefined();
    expect(created.spec.ports).toEqual([
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 80 },
      { name: 'https', port: 443, nodePort: 30443, protocol: 'TCP', targetPort: 443 },
    ]);
    expect(created.metadata).toEqual({ name: 'edge', namespace: NS });
  });
});

describe('Kubernetes plans without secrets', () => {
  it('have no secret-looking key in their changes or params: the engine stores them as planned', async () => {
    await seed(deployment('keys', [{ name: 'LOG_LEVEL', value: 'info' }]));
    const d = getDeployment('keys');
    (templateOf(d).spec.containers[0] as { image: string }).image = 'aiwebtest/keys:2.0';
    sim.store.update(DEPLOYMENTS, d);
    await sim.settle();
    const actions: Action<unknown, unknown>[] = [
      rolloutRestart(cluster, { namespace: NS, name: 'keys' }),
      scale(cluster, { namespace: NS, name: 'keys', replicas: 3 }),
      setEnv(cluster, { namespace: NS, name: 'keys', env: { LOG_LEVEL: 'debug', NEW: 'x' } }),
      rolloutUndo(cluster, { namespace: NS, name: 'keys' }),
      applyManifests(cluster, {
        manifests: [
          deployment('keys', [{ name: 'LOG_LEVEL', value: 'warn' }]),
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: 'keys', namespace: NS },
            data: { a: '1' },
          },
        ],
      }),
    ] as Action<unknown, unknown>[];
    for (const action of actions) {
      const draft = await action.plan(ctx());
      expect(draft.changes.length, action.kind).toBeGreaterThan(0);
      expect(createRedactor().redact(draft), action.kind).toEqual(draft);
    }
  });
});
