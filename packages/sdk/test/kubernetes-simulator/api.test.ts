import { PassThrough } from 'node:stream';
import {
  ApiException,
  ApisApi,
  AppsV1Api,
  CoreApi,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  Log,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Deployment,
  type V1Pod,
  VersionApi,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiFaults } from '../../src/testing/kubernetes/api-faults';
import { type ApiServer, startApiServer } from '../../src/testing/kubernetes/api-server';
import { ObjectStore } from '../../src/testing/kubernetes/object-store';
import type { PodLogLine } from '../../src/testing/kubernetes/pod-log';
import { CONFIGMAPS, DEPLOYMENTS, NAMESPACES, POD_METRICS } from '../../src/testing/kubernetes/resources';
import { type KubernetesSimulator, startKubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { badRequest } from '../../src/testing/kubernetes/status-error';

/** What a failed call answered: the HTTP code and the Status body's fields. */
interface Failure {
  code: number;
  reason: string;
  message: string;
  kind: string;
  details?: { name?: string; causes?: { field?: string }[] };
}

async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const status = JSON.parse(String(e.body)) as Omit<Failure, 'code'> & { code: number };
    expect(status.kind).toBe('Status');
    expect(status.code).toBe(e.code);
    return status;
  }
  throw new Error('expected the request to fail, it succeeded');
}

interface Event {
  type: string;
  object: {
    kind?: string;
    metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
    code?: number;
    reason?: string;
  };
}

/** Opens a watch through client-node's Watch and records what it receives. */
async function watch(kc: KubeConfig, path: string, query: Record<string, string | number | boolean> = {}) {
  const events: Event[] = [];
  let ended: unknown = 'open';
  const controller = await new Watch(kc).watch(
    path,
    query,
    (type, object) => events.push({ type, object }),
    (err) => {
      ended = err ?? null;
    },
  );
  return {
    events,
    /** `'open'` until the stream ends; then null for a clean end, or the error. */
    ended: () => ended,
    names: () =>
      events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object.metadata?.name}`),
    stop: () => controller.abort(),
  };
}

const LOG: PodLogLine[] = [
  { time: new Date('2026-01-01T10:00:00.000Z'), text: 'starting' },
  { time: new Date('2026-01-01T10:00:01.250Z'), text: 'listening on :8080' },
  { time: new Date('2026-01-01T10:00:02.000Z'), text: 'GET /healthz 200' },
];

const deploymentBody = (name: string, replicas = 2): V1Deployment => ({
  metadata: { name, labels: { app: name } },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: [
          {
            name: 'app',
            image: `${name}:1.0`,
            env: [
              { name: 'LOG_LEVEL', value: 'info' },
              { name: 'DB_HOST', value: 'db' },
            ],
          },
        ],
      },
    },
  },
});

const podBody = (name: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { name, labels },
  spec: { containers: [{ name: 'app', image: 'web:1.0' }] },
});

describe('Kubernetes API server simulator (a test double) through the real @kubernetes/client-node', () => {
  let store: ObjectStore;
  let faults: ApiFaults;
  let server: ApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  beforeAll(async () => {
    store = new ObjectStore();
    for (const name of ['default', 'shop']) store.create(NAMESPACES, { metadata: { name } });
    faults = new ApiFaults();
    server = await startApiServer({
      store,
      faults,
      bookmarkInterval: 50,
      logs: (_namespace, pod, options) => {
        if (!options.container) throw badRequest(`a container name must be specified for pod ${pod}`);
        return LOG;
      },
    });
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'sim', server: server.url, skipTLSVerify: true }],
      users: [{ name: 'sim', token: 't' }],
      contexts: [{ name: 'sim', cluster: 'sim', user: 'sim', namespace: 'shop' }],
      currentContext: 'sim',
    });
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
  });

  afterAll(async () => {
    await server.close();
  });

  describe('discovery', () => {
    it('serves /version, /api, /apis and the resource lists with subresources', async () => {
      expect((await kc.makeApiClient(VersionApi).getCode()).gitVersion).toBe('v1.31.0-sim');
      expect((await kc.makeApiClient(CoreApi).getAPIVersions()).versions).toEqual(['v1']);
      const groups = (await kc.makeApiClient(ApisApi).getAPIVersions()).groups;
      expect(groups.map((g) => [g.name, g.preferredVersion?.groupVersion])).toEqual([
        ['apps', 'apps/v1'],
        ['metrics.k8s.io', 'metrics.k8s.io/v1beta1'],
      ]);
      const coreResources = (await core.getAPIResources()).resources;
      expect(coreResources.find((r) => r.name === 'pods')).toMatchObject({
        singularName: 'pod',
        namespaced: true,
        kind: 'Pod',
        shortNames: ['po'],
        verbs: expect.arrayContaining(['create', 'list', 'watch', 'deletecollection']),
      });
      expect(coreResources.find((r) => r.name === 'pods/log')).toMatchObject({ kind: 'Pod', verbs: ['get'] });
      expect(coreResources.find((r) => r.name === 'namespaces')?.namespaced).toBe(false);
      const appsResources = (await apps.getAPIResources()).resources;
      expect(appsResources.find((r) => r.name === 'deployments/scale')).toMatchObject({
        group: 'autoscaling',
        version: 'v1',
        kind: 'Scale',
        verbs: ['get', 'patch', 'update'],
      });
      const health = await fetch(`${server.url}/readyz`);
      expect([health.status, await health.text()]).toEqual([200, 'ok']);
    });
  });

  describe('CRUD', () => {
    it('creates, reads, replaces and deletes namespaces, pods, configmaps, services and deployments', async () => {
      const ns = await core.createNamespace({ body: { metadata: { name: 'crud' } } });
      expect(ns.status?.phase).toBe('Active');
      expect(ns.metadata?.labels?.['kubernetes.io/metadata.name']).toBe('crud');

      const pod = await core.createNamespacedPod({
        namespace: 'crud',
        body: podBody('web-1', { app: 'web' }),
      });
      expect(pod.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(pod.status?.phase).toBe('Pending');
      expect(pod.spec?.containers[0]?.imagePullPolicy).toBe('IfNotPresent');
      expect((await core.readNamespacedPod({ namespace: 'crud', name: 'web-1' })).metadata?.uid).toBe(
        pod.metadata?.uid,
      );

      const cm = await core.createNamespacedConfigMap({
        namespace: 'crud',
        body: { metadata: { name: 'settings' }, data: { mode: 'a' } },
      });
      const replaced = await core.replaceNamespacedConfigMap({
        namespace: 'crud',
        name: 'settings',
        body: { ...cm, data: { mode: 'b' } },
      });
      expect(replaced.data).toEqual({ mode: 'b' });
      expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(
        Number(cm.metadata?.resourceVersion),
      );

      const svc = await core.createNamespacedService({
        namespace: 'crud',
        body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } },
      });
      expect(svc.spec?.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
      expect(svc.spec?.ports?.[0]).toMatchObject({ port: 80, protocol: 'TCP', targetPort: 80 });

      const dep = await apps.createNamespacedDeployment({ namespace: 'crud', body: deploymentBody('web') });
      expect(dep.metadata?.generation).toBe(1);
      expect(dep.spec?.strategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
      });
      const image = dep.spec?.template.spec?.containers[0];
      if (image) image.image = 'web:2.0';
      const bumped = await apps.replaceNamespacedDeployment({ namespace: 'crud', name: 'web', body: dep });
      expect(bumped.metadata?.generation).toBe(2);

      const listed = await core.listPodForAllNamespaces();
      expect(listed.items.map((p) => [p.kind, p.metadata?.namespace, p.metadata?.name])).toEqual([
        ['Pod', 'crud', 'web-1'],
      ]);

      const gone = await core.deleteNamespacedConfigMap({ namespace: 'crud', name: 'settings' });
      expect(gone).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'settings' } });
      expect(
        await failure(core.readNamespacedConfigMap({ namespace: 'crud', name: 'settings' })),
      ).toMatchObject({
        code: 404,
        reason: 'NotFound',
        message: 'configmaps "settings" not found',
      });
      const deletedPod = await core.deleteNamespacedPod({ namespace: 'crud', name: 'web-1' });
      expect(deletedPod.kind).toBe('Pod');
      expect(deletedPod.metadata?.deletionTimestamp).toBeInstanceOf(Date);

      await core.deleteNamespace({ name: 'crud' });
      expect(store.list(CONFIGMAPS, 'crud').items).toEqual([]);
      expect((await failure(apps.readNamespacedDeployment({ namespace: 'crud', name: 'web' }))).code).toBe(
        404,
      );
    });

    it('answers AlreadyExists, Conflict, Invalid and BadRequest with the real codes and reasons', async () => {
      const body: V1ConfigMap = { metadata: { name: 'dup' }, data: { a: '1' } };
      const first = await core.createNamespacedConfigMap({ namespace: 'shop', body });
      expect(await failure(core.createNamespacedConfigMap({ namespace: 'shop', body }))).toMatchObject({
        code: 409,
        reason: 'AlreadyExists',
        message: 'configmaps "dup" already exists',
      });

      await core.replaceNamespacedConfigMap({
        namespace: 'shop',
        name: 'dup',
        body: { ...first, data: { a: '2' } },
      });
      expect(
        await failure(
          core.replaceNamespacedConfigMap({
            namespace: 'shop',
            name: 'dup',
            body: { ...first, data: { a: '3' } },
          }),
        ),
      ).toMatchObject({
        code: 409,
        reason: 'Conflict',
        message: expect.stringContaining('the object has been modified'),
      });

      const mismatched = deploymentBody('bad');
      if (mismatched.spec?.template.metadata) mismatched.spec.template.metadata.labels = { app: 'other' };
      const invalid = await failure(apps.createNamespacedDeployment({ namespace: 'shop', body: mismatched }));
      expect(invalid).toMatchObject({ code: 422, reason: 'Invalid' });
      expect(invalid.message).toContain('Deployment "bad" is invalid: spec.template.metadata.labels');
      expect(invalid.details?.causes?.[0]?.field).toBe('spec.template.metadata.labels');
      expect(
        await failure(
          core.createNamespacedPod({
            namespace: 'shop',
            body: { metadata: { name: 'empty' }, spec: { containers: [] } },
          }),
        ),
      ).toMatchObject({
        code: 422,
        reason: 'Invalid',
        message: 'Pod "empty" is invalid: spec.containers: Required value',
      });
      expect(
        await failure(
          core.createNamespacedConfigMap({
            namespace: 'shop',
            body: { metadata: { name: 'x', namespace: 'default' } },
          }),
        ),
      ).toMatchObject({ code: 400, reason: 'BadRequest' });
      expect(
        await failure(
          core.createNamespacedConfigMap({ namespace: 'nowhere', body: { metadata: { name: 'x' } } }),
        ),
      ).toMatchObject({
        code: 404,
        message: 'namespaces "nowhere" not found',
      });
    });

    it('answers unknown paths 404, wrong methods 405, bad JSON 400 and unknown patch types 415, as Status objects', async () => {
      const call = async (path: string, init?: RequestInit) => {
        const res = await fetch(`${server.url}${path}`, init);
        return { http: res.status, ...((await res.json()) as { reason: string; kind: string }) };
      };
      expect(await call('/apis/nope.example.com/v1/things')).toMatchObject({
        http: 404,
        kind: 'Status',
        reason: 'NotFound',
      });
      expect(await call('/api/v1/pods/some-pod')).toMatchObject({ http: 404, reason: 'NotFound' });
      expect(await call('/api/v1/namespaces/shop/pods/x', { method: 'POST', body: '{}' })).toMatchObject({
        http: 405,
        reason: 'MethodNotAllowed',
      });
      expect(
        await call('/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods', { method: 'POST', body: '{}' }),
      ).toMatchObject({
        http: 405,
      });
      expect(
        await call('/api/v1/namespaces/shop/configmaps', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json;charset=utf-8' },
          body: '{"metadata": {',
        }),
      ).toMatchObject({ http: 400, reason: 'BadRequest' });
      expect(
        await call('/api/v1/namespaces/shop/configmaps/dup', {
          method: 'PATCH',
          headers: { 'Content-Type': 'text/plain' },
          body: '{}',
        }),
      ).toMatchObject({ http: 415, reason: 'UnsupportedMediaType' });
    });
  });

  describe('lists', () => {
    it('filters by label and field selectors, and rejects unsupported fields like the real server', async () => {
      await core.createNamespace({ body: { metadata: { name: 'sel' } } });
      for (const [name, tier] of [
        ['a-1', 'front'],
        ['a-2', 'front'],
        ['b-1', 'back'],
      ] as const) {
        await core.createNamespacedPod({ namespace: 'sel', body: podBody(name, { tier }) });
      }
      const running = await core.readNamespacedPodStatus({ namespace: 'sel', name: 'a-2' });
      await core.replaceNamespacedPodStatus({
        namespace: 'sel',
        name: 'a-2',
        body: { ...running, status: { phase: 'Running' } },
      });
      const names = async (labelSelector?: string, fieldSelector?: string) =>
        (await core.listNamespacedPod({ namespace: 'sel', labelSelector, fieldSelector })).items.map(
          (p) => p.metadata?.name,
        );
      expect(await names('tier=front')).toEqual(['a-1', 'a-2']);
      expect(await names('tier in (back),!missing')).toEqual(['b-1']);
      expect(await names(undefined, 'status.phase=Running')).toEqual(['a-2']);
      expect(await names('tier==front', 'metadata.name!=a-1,status.phase!=Failed')).toEqual(['a-2']);
      expect(await names(undefined, 'spec.nodeName=')).toEqual(['a-1', 'a-2', 'b-1']);
      expect(
        await failure(core.listNamespacedPod({ namespace: 'sel', fieldSelector: 'spec.image=x' })),
      ).toMatchObject({
        code: 400,
        reason: 'BadRequest',
        message: 'field label not supported: spec.image',
      });
      expect((await failure(core.listNamespacedPod({ namespace: 'sel', labelSelector: 'a b c' }))).code).toBe(
        400,
      );
    });

    it("answers kubectl's Table requests with the printer columns", async () => {
      await core.createNamespace({ body: { metadata: { name: 'tbl' } } });
      await core.createNamespacedPod({ namespace: 'tbl', body: podBody('p-1') });
      const started = await core.readNamespacedPodStatus({ namespace: 'tbl', name: 'p-1' });
      await core.replaceNamespacedPodStatus({
        namespace: 'tbl',
        name: 'p-1',
        body: {
          ...started,
          status: {
            phase: 'Running',
            containerStatuses: [
              {
                name: 'app',
                image: 'web:1.0',
                imageID: '',
                ready: false,
                restartCount: 4,
                state: { waiting: { reason: 'CrashLoopBackOff' } },
              },
            ],
          },
        },
      });
      const res = await fetch(`${server.url}/api/v1/namespaces/tbl/pods`, {
        headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' },
      });
      expect(res.headers.get('content-type')).toBe('application/json;as=Table;v=v1;g=meta.k8s.io');
      const table = (await res.json()) as {
        kind: string;
        columnDefinitions: { name: string; priority: number }[];
        rows: { cells: unknown[]; object: { kind: string } }[];
      };
      expect(table.kind).toBe('Table');
      expect(table.columnDefinitions.map((c) => [c.name, c.priority])).toEqual([
        ['Name', 0],
        ['Ready', 0],
        ['Status', 0],
        ['Restarts', 0],
        ['Age', 0],
        ['IP', 1],
        ['Node', 1],
      ]);
      expect(table.rows.map((r) => r.cells.slice(0, 4))).toEqual([['p-1', '0/1', 'CrashLoopBackOff', '4']]);
      expect(table.rows[0]?.cells[4]).toMatch(/^\d+s$/);
      expect(table.rows[0]?.object.kind).toBe('PartialObjectMetadata');
      // client-node asks for plain JSON and gets it.
      expect((await core.listNamespacedPod({ namespace: 'tbl' })).kind).toBe('PodList');
    });

    it('pages with limit and an opaque continue token', async () => {
      await core.createNamespace({ body: { metadata: { name: 'paging' } } });
      for (let i = 1; i <= 5; i++) {
        await core.createNamespacedConfigMap({
          namespace: 'paging',
          body: { metadata: { name: `cm-${i}` } },
        });
      }
      const first = await core.listNamespacedConfigMap({ namespace: 'paging', limit: 2 });
      expect(first.items.map((c) => c.metadata?.name)).toEqual(['cm-1', 'cm-2']);
      expect(first.metadata?.remainingItemCount).toBe(3);
      const second = await core.listNamespacedConfigMap({
        namespace: 'paging',
        limit: 2,
        _continue: first.metadata?._continue,
      });
      expect(second.items.map((c) => c.metadata?.name)).toEqual(['cm-3', 'cm-4']);
      const last = await core.listNamespacedConfigMap({
        namespace: 'paging',
        limit: 2,
        _continue: second.metadata?._continue,
      });
      expect(last.items.map((c) => c.metadata?.name)).toEqual(['cm-5']);
      expect(last.metadata?._continue).toBeUndefined();
      expect(
        (await failure(core.listNamespacedConfigMap({ namespace: 'paging', _continue: 'garbage' }))).code,
      ).toBe(400);
    });

    it('deletes a collection by label selector', async () => {
      await core.createNamespace({ body: { metadata: { name: 'dc' } } });
      for (const [name, keep] of [
        ['x', 'no'],
        ['y', 'no'],
        ['z', 'yes'],
      ] as const) {
        await core.createNamespacedConfigMap({
          namespace: 'dc',
          body: { metadata: { name, labels: { keep } } },
        });
      }
      await core.deleteCollectionNamespacedConfigMap({ namespace: 'dc', labelSelector: 'keep=no' });
      expect(store.list(CONFIGMAPS, 'dc').items.map((c) => c.metadata.name)).toEqual(['z']);
    });
  });

  describe('patches, /scale, /status and dry runs', () => {
    it('applies JSON, merge and strategic merge patches chosen by Content-Type', async () => {
      await apps.createNamespacedDeployment({ namespace: 'shop', body: deploymentBody('patchy') });
      const json = await apps.patchNamespacedDeployment({
        namespace: 'shop',
        name: 'patchy',
        body: [
          { op: 'replace', path: '/spec/replicas', value: 3 },
          { op: 'add', path: '/metadata/annotations', value: { 'team~1x': 'a/b' } },
        ],
      });
      expect(json.spec?.replicas).toBe(3);
      expect(json.metadata?.annotations).toEqual({ 'team~1x': 'a/b' });

      const merge = await apps.patchNamespacedDeployment(
        {
          namespace: 'shop',
          name: 'patchy',
          body: { spec: { replicas: 4 }, metadata: { annotations: null } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      expect(merge.spec?.replicas).toBe(4);
      expect(merge.metadata?.annotations).toBeUndefined();

      const restartedAt = '2026-11-27T10:00:00Z';
      const smp = await apps.patchNamespacedDeployment(
        {
          namespace: 'shop',
          name: 'patchy',
          body: {
            spec: {
              template: {
                metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': restartedAt } },
                spec: {
                  containers: [
                    {
                      name: 'app',
                      env: [
                        { name: 'LOG_LEVEL', value: 'debug' },
                        { name: 'DB_HOST', $patch: 'delete' },
                      ],
                    },
                  ],
                },
              },
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
      expect(smp.spec?.template.metadata?.annotations).toEqual({
        'kubectl.kubernetes.io/restartedAt': restartedAt,
      });
      expect(smp.spec?.template.spec?.containers.map((c) => [c.name, c.image, c.env])).toEqual([
        ['app', 'patchy:1.0', [{ name: 'LOG_LEVEL', value: 'debug' }]],
      ]);
      expect(smp.metadata?.generation).toBe(4);

      expect(
        await failure(
          apps.patchNamespacedDeployment({
            namespace: 'shop',
            name: 'patchy',
            body: [{ op: 'test', path: '/spec/replicas', value: 99 }],
          }),
        ),
      ).toMatchObject({ code: 422, reason: 'Invalid' });
      expect(
        (await failure(apps.patchNamespacedDeployment({ namespace: 'shop', name: 'ghost', body: [] })))
          .reason,
      ).toBe('NotFound');
    });

    it('reads and patches /scale, with resourceVersion conflicts', async () => {
      await apps.createNamespacedDeployment({ namespace: 'shop', body: deploymentBody('scaled', 2) });
      const scale = await apps.readNamespacedDeploymentScale({ namespace: 'shop', name: 'scaled' });
      expect(scale).toMatchObject({ kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 2 } });
      expect(scale.status).toMatchObject({ replicas: 0, selector: 'app=scaled' });

      const patched = await apps.patchNamespacedDeploymentScale(
        { namespace: 'shop', name: 'scaled', body: { spec: { replicas: 5 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      expect(patched.spec?.replicas).toBe(5);
      expect(
        (await apps.readNamespacedDeployment({ namespace: 'shop', name: 'scaled' })).spec?.replicas,
      ).toBe(5);

      expect(
        await failure(
          apps.replaceNamespacedDeploymentScale({
            namespace: 'shop',
            name: 'scaled',
            body: { ...scale, spec: { replicas: 1 } },
          }),
        ),
      ).toMatchObject({ code: 409, reason: 'Conflict' });
      expect(
        (
          await failure(
            apps.patchNamespacedDeploymentScale(
              { namespace: 'shop', name: 'scaled', body: { spec: { replicas: -1 } } },
              setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
            ),
          )
        ).code,
      ).toBe(422);
    });

    it('changes only status through /status, and keeps status on a main-resource update', async () => {
      const created = await apps.createNamespacedDeployment({
        namespace: 'shop',
        body: deploymentBody('stat'),
      });
      const withStatus = await apps.patchNamespacedDeploymentStatus(
        {
          namespace: 'shop',
          name: 'stat',
          body: { spec: { replicas: 9 }, status: { replicas: 2, readyReplicas: 1 } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      expect(withStatus.status).toEqual({ replicas: 2, readyReplicas: 1 });
      expect(withStatus.spec?.replicas).toBe(2);
      expect(withStatus.metadata?.generation).toBe(created.metadata?.generation);

      const updated = await apps.replaceNamespacedDeployment({
        namespace: 'shop',
        name: 'stat',
        body: { ...withStatus, status: { replicas: 100 } },
      });
      expect(updated.status).toEqual({ replicas: 2, readyReplicas: 1 });
    });

    it('stores nothing with dryRun=All, through typed and generic clients', async () => {
      const before = store.resourceVersion;
      const dry = await core.createNamespacedConfigMap({
        namespace: 'shop',
        dryRun: 'All',
        body: { metadata: { name: 'dry' }, data: { a: '1' } },
      });
      expect(dry.data).toEqual({ a: '1' });
      const objects = KubernetesObjectApi.makeApiClient(kc);
      const generic = await objects.create(
        { apiVersion: 'apps/v1', kind: 'Deployment', ...deploymentBody('dry-dep') },
        undefined,
        'All',
      );
      expect(generic.metadata?.namespace).toBe('shop'); // the context's namespace
      await apps.patchNamespacedDeployment(
        { namespace: 'shop', name: 'patchy', dryRun: 'All', body: { spec: { replicas: 1 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await core.deleteNamespacedConfigMap({ namespace: 'shop', name: 'dup', dryRun: 'All' });
      expect(store.resourceVersion).toBe(before);
      expect(store.find(CONFIGMAPS, 'shop', 'dry')).toBeUndefined();
      expect(
        (await apps.readNamespacedDeployment({ namespace: 'shop', name: 'patchy' })).spec?.replicas,
      ).toBe(4);
      expect(store.find(CONFIGMAPS, 'shop', 'dup')).toBeDefined();
    });

    it('creates, reads and patches through the generic KubernetesObjectApi (discovery-driven)', async () => {
      const objects = KubernetesObjectApi.makeApiClient(kc);
      await objects.create({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'generic' },
        data: { a: '1' },
      });
      const patched = await objects.patch<V1ConfigMap>({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'generic', namespace: 'shop' },
        data: { b: '2' },
      });
      expect(patched.data).toEqual({ a: '1', b: '2' });
      const read = await objects.read<V1ConfigMap>({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'generic', namespace: 'shop' },
      });
      expect(read.data).toEqual({ a: '1', b: '2' });
      expect(read.metadata?.resourceVersion).toBe(patched.metadata?.resourceVersion);
    });
  });

  describe('watch', () => {
    it('streams ADDED, MODIFIED and DELETED in order, and resumes from a resourceVersion', async () => {
      await core.createNamespace({ body: { metadata: { name: 'w' } } });
      await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'existing' } } });
      const live = await watch(kc, '/api/v1/namespaces/w/configmaps');
      const created = await core.createNamespacedConfigMap({
        namespace: 'w',
        body: { metadata: { name: 'c' } },
      });
      await core.patchNamespacedConfigMap(
        { namespace: 'w', name: 'c', body: { data: { k: 'v' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await core.deleteNamespacedConfigMap({ namespace: 'w', name: 'c' });
      await vi.waitFor(() => expect(live.names()).toHaveLength(4));
      expect(live.names()).toEqual(['ADDED existing', 'ADDED c', 'MODIFIED c', 'DELETED c']);
      live.stop();

      const resumed = await watch(kc, '/api/v1/namespaces/w/configmaps', {
        resourceVersion: created.metadata?.resourceVersion as string,
      });
      await vi.waitFor(() => expect(resumed.names()).toEqual(['MODIFIED c', 'DELETED c']));
      resumed.stop();
      const legacy = await watch(kc, '/api/v1/watch/namespaces/w/configmaps/existing');
      const initial = await watch(kc, '/api/v1/namespaces/w/configmaps', {
        sendInitialEvents: true,
        allowWatchBookmarks: true,
        resourceVersionMatch: 'NotOlderThan',
      });
      await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'later' } } });
      await vi.waitFor(() => expect(initial.names()).toEqual(['ADDED existing', 'ADDED later']));
      // Then periodic bookmarks (allowWatchBookmarks), every 50 ms here.
      expect(initial.events.slice(0, 3).map((e) => e.type)).toEqual(['ADDED', 'BOOKMARK', 'ADDED']);
      expect(initial.events[1]?.object).toMatchObject({
        metadata: { annotations: { 'k8s.io/initial-events-end': 'true' } },
      });
      expect(legacy.names()).toEqual(['ADDED existing']);
      legacy.stop();
      initial.stop();
    });

    it('turns selector transitions into ADDED/DELETED, sends bookmarks, and ends at timeoutSeconds', async () => {
      await core.createNamespace({ body: { metadata: { name: 'wsel' } } });
      const filtered = await watch(kc, '/api/v1/namespaces/wsel/configmaps', {
        labelSelector: 'watched=yes',
        allowWatchBookmarks: true,
        timeoutSeconds: 1,
      });
      await core.createNamespacedConfigMap({
        namespace: 'wsel',
        body: { metadata: { name: 'm', labels: { watched: 'no' } } },
      });
      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      await core.patchNamespacedConfigMap(
        { namespace: 'wsel', name: 'm', body: { metadata: { labels: { watched: 'yes' } } } },
        merge,
      );
      await core.patchNamespacedConfigMap(
        { namespace: 'wsel', name: 'm', body: { data: { a: '1' } } },
        merge,
      );
      await core.patchNamespacedConfigMap(
        { namespace: 'wsel', name: 'm', body: { metadata: { labels: { watched: 'no' } } } },
        merge,
      );
      await vi.waitFor(() => expect(filtered.names()).toEqual(['ADDED m', 'MODIFIED m', 'DELETED m']));
      await vi.waitFor(() => expect(filtered.events.some((e) => e.type === 'BOOKMARK')).toBe(true));
      const bookmark = filtered.events.find((e) => e.type === 'BOOKMARK');
      expect(bookmark?.object).toMatchObject({
        kind: 'ConfigMap',
        metadata: { resourceVersion: expect.any(String) },
      });
      await vi.waitFor(() => expect(filtered.ended()).toBeNull(), { timeout: 3000 });
    });

    it('answers a too-old resourceVersion with an ERROR event carrying 410 Expired', async () => {
      const oldVersion = store.resourceVersion;
      await core.createNamespace({ body: { metadata: { name: 'churn' } } });
      const cm = store.create(CONFIGMAPS, {
        metadata: { name: 'churn', namespace: 'churn' },
        data: { n: '0' },
      });
      for (let i = 1; i <= 5001; i++)
        store.update(CONFIGMAPS, {
          ...cm,
          metadata: { ...cm.metadata, resourceVersion: '' },
          data: { n: String(i) },
        });
      const expired = await watch(kc, '/api/v1/namespaces/churn/configmaps', { resourceVersion: oldVersion });
      await vi.waitFor(() => expect(expired.ended()).toBeNull());
      expect(expired.events).toEqual([
        { type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) },
      ]);
    });

    it('ends open watches cleanly when the server closes', async () => {
      const other = await startApiServer({ store: new ObjectStore() });
      const otherKc = new KubeConfig();
      otherKc.loadFromClusterAndUser(
        { name: 'other', server: other.url, skipTLSVerify: true },
        { name: 'u' },
      );
      const open = await watch(otherKc, '/api/v1/namespaces');
      expect(open.ended()).toBe('open');
      await other.close();
      await vi.waitFor(() => expect(open.ended()).toBeNull());
    });
  });

  describe('logs and metrics', () => {
    it('serves pod logs as text with tailLines and timestamps, through readNamespacedPodLog and Log', async () => {
      await core.createNamespacedPod({ namespace: 'shop', body: podBody('logger') });
      const tail = await core.readNamespacedPodLog({
        namespace: 'shop',
        name: 'logger',
        container: 'app',
        tailLines: 2,
        timestamps: true,
      });
      expect(tail).toBe(
        '2026-01-01T10:00:01.250000000Z listening on :8080\n2026-01-01T10:00:02.000000000Z GET /healthz 200\n',
      );
      const sink = new PassThrough();
      let streamed = '';
      sink.on('data', (chunk: Buffer) => {
        streamed += chunk.toString();
      });
      const finished = new Promise((resolve) => sink.on('end', resolve));
      await new Log(kc).log('shop', 'logger', 'app', sink, { limitBytes: 8 });
      await finished;
      expect(streamed).toBe('starting');
      expect(await failure(core.readNamespacedPodLog({ namespace: 'shop', name: 'logger' }))).toMatchObject({
        code: 400,
        message: 'a container name must be specified for pod logger',
      });
      expect(
        (await failure(core.readNamespacedPodLog({ namespace: 'shop', name: 'ghost', container: 'app' })))
          .code,
      ).toBe(404);
    });

    it('serves metrics.k8s.io PodMetrics read-only through CustomObjectsApi', async () => {
      store.create(POD_METRICS, {
        metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
        timestamp: '2026-01-01T10:00:00Z',
        window: '30s',
        containers: [{ name: 'app', usage: { cpu: '250000000n', memory: '131072Ki' } }],
      });
      const custom = kc.makeApiClient(CustomObjectsApi);
      const list = (await custom.listNamespacedCustomObject({
        group: 'metrics.k8s.io',
        version: 'v1beta1',
        namespace: 'shop',
        plural: 'pods',
      })) as { kind: string; items: { metadata: { name: string }; containers: unknown[] }[] };
      expect(list.kind).toBe('PodMetricsList');
      expect(list.items.map((m) => [m.metadata.name, m.containers])).toEqual([
        ['web-1', [{ name: 'app', usage: { cpu: '250000000n', memory: '131072Ki' } }]],
      ]);
      const deleting = await failure(
        custom.deleteNamespacedCustomObject({
          group: 'metrics.k8s.io',
          version: 'v1beta1',
          namespace: 'shop',
          plural: 'pods',
          name: 'web-1',
        }),
      );
      expect(deleting).toMatchObject({ code: 405, reason: 'MethodNotAllowed' });
    });
  });

  describe('API faults', () => {
    it('answers an injected 503 for `times` requests, then recovers', async () => {
      const fault = faults.inject({
        kind: 'apiError',
        code: 503,
        method: 'GET',
        path: '/api/v1/namespaces/shop/configmaps',
        times: 2,
      });
      expect(faults.list()).toEqual([expect.objectContaining({ id: fault.id, code: 503, hits: 0 })]);
      for (let i = 0; i < 2; i++) {
        expect(await failure(core.listNamespacedConfigMap({ namespace: 'shop' }))).toMatchObject({
          code: 503,
          reason: 'ServiceUnavailable',
        });
      }
      expect((await core.listNamespacedConfigMap({ namespace: 'shop' })).kind).toBe('ConfigMapList');
      expect(faults.list()).toEqual([]);
      expect((await core.listNamespacedPod({ namespace: 'shop' })).kind).toBe('PodList');
    });

    it('delays matching requests by an injected latency until it is cleared', async () => {
      const fault = faults.inject({ kind: 'apiLatency', delay: '300ms', path: /\/configmaps$/ });
      const started = performance.now();
      await core.listNamespacedConfigMap({ namespace: 'shop' });
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
      const unaffected = performance.now();
      await core.listNamespacedPod({ namespace: 'shop' });
      expect(performance.now() - unaffected).toBeLessThan(250);
      fault.clear();
      const cleared = performance.now();
      await core.listNamespacedConfigMap({ namespace: 'shop' });
      expect(performance.now() - cleared).toBeLessThan(250);
    });

    it('refuses a malformed fault, naming the field', () => {
      expect(() => faults.inject({ kind: 'apiError', code: 200 })).toThrow(/code/);
      expect(() => faults.inject({ kind: 'apiLatency', delay: 'soon' })).toThrow(/delay/);
    });
  });
});

describe('startKubernetesSimulator (a test double cluster) through the real @kubernetes/client-node', () => {
  let sim: KubernetesSimulator;

  beforeAll(async () => {
    sim = await startKubernetesSimulator({
      namespace: 'aiwebtest',
      cluster: { nodes: ['node-a', 'node-b'] },
    });
  });

  afterAll(async () => {
    await sim.close();
  });

  it('hands out a kubeconfig (object and YAML) that client-node uses as is', async () => {
    const fromYaml = new KubeConfig();
    fromYaml.loadFromString(sim.kubeConfigYaml());
    expect(fromYaml.getCurrentCluster()).toMatchObject({ server: sim.url, skipTLSVerify: true });
    expect(fromYaml.getContextObject(sim.contextName)?.namespace).toBe('aiwebtest');
    const core = sim.kubeConfig().makeApiClient(CoreV1Api);
    const namespaces = await core.listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toEqual(['aiwebtest', 'default', 'kube-system']);
    expect((await core.listNode()).items.map((n) => n.metadata?.name)).toEqual(['node-a', 'node-b']);
  });

  it('seeds manifests with apply() (namespaces first) and rolls them out through the controllers', async () => {
    const [dep, ns] = sim.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        ...deploymentBody('agent', 2),
        metadata: { name: 'agent', namespace: 'agents' },
      },
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'agents' },
      },
    );
    expect([dep?.kind, ns?.kind]).toEqual(['Deployment', 'Namespace']);
    expect(dep?.spec).toMatchObject({ revisionHistoryLimit: 10, strategy: { type: 'RollingUpdate' } });
    await sim.settle();
    const core = sim.kubeConfig().makeApiClient(CoreV1Api);
    const pods = await core.listNamespacedPod({ namespace: 'agents', labelSelector: 'app=agent' });
    expect(pods.items).toHaveLength(2);
    expect(pods.items.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
    const status = await sim
      .kubeConfig()
      .makeApiClient(AppsV1Api)
      .readNamespacedDeploymentStatus({ namespace: 'agents', name: 'agent' });
    expect(status.status?.readyReplicas).toBe(2);

    const pod = pods.items[0]?.metadata?.name as string;
    sim.appendLog('agents', pod, 'app', 'ready to serve');
    const log = await core.readNamespacedPodLog({ namespace: 'agents', name: pod });
    expect(log.trimEnd().split('\n').at(-1)).toBe('ready to serve');

    // apply() again replaces the stored object.
    const again = sim.apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      ...deploymentBody('agent', 3),
      metadata: { name: 'agent', namespace: 'agents' },
    });
    expect(again[0]?.spec).toMatchObject({ replicas: 3 });
    expect(sim.store.get(DEPLOYMENTS, 'agents', 'agent').metadata.generation).toBe(2);
    expect(() => sim.apply({ apiVersion: 'v1', kind: 'Gadget', metadata: { name: 'x' } })).toThrow(
      /not served/,
    );
  });

  it('injects pod faults and API faults through one handle', async () => {
    const crash = sim.faults.inject({ kind: 'crashLoop', namespace: 'agents', selector: 'app=agent' });
    const outage = sim.faults.inject({
      kind: 'apiError',
      code: 500,
      path: '/api/v1/namespaces/agents/pods',
      times: 1,
    });
    expect(sim.faults.list().map((f) => [f.id, f.kind])).toEqual([
      [crash.id, 'crashLoop'],
      [outage.id, 'apiError'],
    ]);
    const core = sim.kubeConfig().makeApiClient(CoreV1Api);
    expect(await failure(core.listNamespacedPod({ namespace: 'agents' }))).toMatchObject({
      code: 500,
      reason: 'InternalError',
    });
    await sim.settle();
    const pods = await core.listNamespacedPod({ namespace: 'agents' });
    const waiting = pods.items.map((p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason);
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting.every((r) => r === 'CrashLoopBackOff')).toBe(true);
    sim.faults.clear(crash.id);
    expect(sim.faults.list()).toEqual([]);
  });
});
