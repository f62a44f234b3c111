import { describe, expect, it } from 'vitest';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from './patch';
import { StatusError } from './status-error';

/** The code and reason of the StatusError `fn` throws. */
function failure(fn: () => unknown): { code: number; reason: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof StatusError) return { code: e.code, reason: e.reason, message: e.message };
    throw e;
  }
  throw new Error('expected a StatusError, nothing was thrown');
}

const deployment = () => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'shop',
    annotations: { 'deployment.kubernetes.io/revision': '3', owner: 'team-a' },
    finalizers: ['a', 'b', 'c'],
  },
  spec: {
    replicas: 2,
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
    template: {
      metadata: { labels: { app: 'web' }, annotations: { 'prometheus.io/scrape': 'true' } },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'web:1.0',
            env: [
              { name: 'LOG_LEVEL', value: 'info' },
              { name: 'DB_HOST', value: 'db' },
              { name: 'FEATURE_X', value: 'on' },
            ],
            ports: [{ containerPort: 8080, name: 'http' }],
            volumeMounts: [{ name: 'cache', mountPath: '/cache' }],
          },
          { name: 'sidecar', image: 'proxy:2.1', env: [{ name: 'MODE', value: 'tcp' }] },
        ],
        volumes: [{ name: 'cache', emptyDir: {} }],
        tolerations: [{ key: 'gpu', operator: 'Exists' }],
        nodeSelector: { disk: 'ssd', zone: 'a' },
      },
    },
  },
});

type Deployment = ReturnType<typeof deployment>;
const containers = (d: Deployment) => d.spec.template.spec.containers;
const app = (d: Deployment) => containers(d)[0] as Deployment['spec']['template']['spec']['containers'][0];

describe('applyJsonPatch (RFC 6902)', () => {
  it('applies add, remove, replace, move, copy and test in order, unescaping ~1 and ~0', () => {
    const d = applyJsonPatch(deployment() as Deployment & { metadata: { labels?: Record<string, string> } }, [
      { op: 'test', path: '/spec/replicas', value: 2 },
      { op: 'replace', path: '/spec/replicas', value: 5 },
      { op: 'add', path: '/metadata/annotations/kubectl.kubernetes.io~1restartedAt', value: 'now' },
      { op: 'add', path: '/metadata/labels', value: { 'a~b': 'x' } },
      { op: 'replace', path: '/metadata/labels/a~0b', value: 'y' },
      { op: 'remove', path: '/metadata/annotations/owner' },
      { op: 'add', path: '/spec/template/spec/containers/0/env/-', value: { name: 'NEW', value: '1' } },
      { op: 'add', path: '/spec/template/spec/containers/0/env/0', value: { name: 'FIRST', value: '0' } },
      { op: 'move', from: '/spec/template/spec/nodeSelector', path: '/spec/template/spec/affinityHint' },
      { op: 'copy', from: '/spec/template/metadata/labels', path: '/metadata/annotations/copied' },
    ]);
    expect(d.spec.replicas).toBe(5);
    expect(d.metadata.annotations).toEqual({
      'deployment.kubernetes.io/revision': '3',
      'kubectl.kubernetes.io/restartedAt': 'now',
      copied: { app: 'web' },
    });
    expect(d.metadata.labels).toEqual({ 'a~b': 'y' });
    expect(app(d).env.map((e) => e.name)).toEqual(['FIRST', 'LOG_LEVEL', 'DB_HOST', 'FEATURE_X', 'NEW']);
    expect(d.spec.template.spec).not.toHaveProperty('nodeSelector');
    expect(d.spec.template.spec).toHaveProperty('affinityHint', { disk: 'ssd', zone: 'a' });
  });

  it("applies kubectl rollout undo's patch: replace the template and the annotations", () => {
    const previousTemplate = {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: 'web:0.9' }] },
    };
    const out = applyJsonPatch(deployment(), [
      { op: 'replace', path: '/spec/template', value: previousTemplate },
      { op: 'replace', path: '/metadata/annotations', value: { 'deployment.kubernetes.io/revision': '3' } },
    ]);
    expect(out.spec.template).toEqual(previousTemplate);
    expect(out.metadata.annotations).toEqual({ 'deployment.kubernetes.io/revision': '3' });
  });

  it('does not change the document it is given', () => {
    const original = deployment();
    applyJsonPatch(original, [{ op: 'remove', path: '/spec/template/spec/containers/1' }]);
    expect(original).toEqual(deployment());
  });

  it('answers 422 Invalid for a patch that does not apply, naming the path', () => {
    expect(
      failure(() => applyJsonPatch(deployment(), [{ op: 'test', path: '/spec/replicas', value: 3 }])),
    ).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message: expect.stringContaining('testing value /spec/replicas failed'),
    });
    expect(
      failure(() => applyJsonPatch(deployment(), [{ op: 'remove', path: '/spec/paused' }])),
    ).toMatchObject({
      code: 422,
      message: expect.stringContaining('/spec/paused'),
    });
    expect(
      failure(() => applyJsonPatch(deployment(), [{ op: 'replace', path: '/spec/nope', value: 1 }])).code,
    ).toBe(422);
    expect(failure(() => applyJsonPatch(deployment(), [{ op: 'add', path: '/a/b', value: 1 }])).code).toBe(
      422,
    );
    expect(
      failure(() =>
        applyJsonPatch(deployment(), [{ op: 'add', path: '/spec/template/spec/containers/7', value: {} }]),
      ).code,
    ).toBe(422);
    expect(failure(() => applyJsonPatch(deployment(), [{ op: 'frobnicate', path: '/spec' }])).code).toBe(422);
  });

  it('answers 400 BadRequest for a body that is not a JSON Patch', () => {
    expect(failure(() => applyJsonPatch(deployment(), { spec: { replicas: 1 } }))).toMatchObject({
      code: 400,
      reason: 'BadRequest',
    });
    expect(failure(() => applyJsonPatch(deployment(), ['remove /spec'])).code).toBe(400);
  });
});

describe('applyMergePatch (RFC 7386)', () => {
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('merges %j with %j into %j (the RFC examples)', (target, patch, expected) => {
    expect(applyMergePatch(target, patch)).toEqual(expected);
  });

  it('scales with {"spec":{"replicas":N}} and replaces lists whole', () => {
    const out = applyMergePatch(deployment(), {
      spec: { replicas: 4, template: { spec: { containers: [{ name: 'app', image: 'web:2.0' }] } } },
    });
    expect(out.spec.replicas).toBe(4);
    expect(containers(out)).toEqual([{ name: 'app', image: 'web:2.0' }]);
    expect(out.spec.strategy).toEqual(deployment().spec.strategy);
  });
});

describe('applyStrategicMergePatch', () => {
  it("applies kubectl rollout restart's annotation patch without touching anything else", () => {
    const patch = {
      spec: {
        template: {
          metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-27T10:00:00Z' } },
        },
      },
    };
    const out = applyStrategicMergePatch(deployment(), patch);
    expect(out.spec.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'kubectl.kubernetes.io/restartedAt': '2026-11-27T10:00:00Z',
    });
    const expected = deployment();
    expected.spec.template.metadata.annotations = out.spec.template.metadata.annotations;
    expect(out).toEqual(expected);
  });

  it('merges containers and their env by name, as kubectl set env does', () => {
    const out = applyStrategicMergePatch(deployment(), {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'app',
                env: [
                  { name: 'LOG_LEVEL', value: 'debug' },
                  { name: 'CACHE_TTL', value: '60' },
                ],
              },
            ],
          },
        },
      },
    });
    expect(app(out).image).toBe('web:1.0');
    expect(app(out).env).toEqual([
      { name: 'LOG_LEVEL', value: 'debug' },
      { name: 'DB_HOST', value: 'db' },
      { name: 'FEATURE_X', value: 'on' },
      { name: 'CACHE_TTL', value: '60' },
    ]);
    expect(containers(out)[1]).toEqual(deployment().spec.template.spec.containers[1]);
  });

  it('removes an env var with $patch: delete, and a whole map with $patch: delete', () => {
    const out = applyStrategicMergePatch(deployment(), {
      spec: {
        template: {
          spec: {
            containers: [{ name: 'app', env: [{ name: 'FEATURE_X', $patch: 'delete' }] }],
            nodeSelector: { $patch: 'delete' },
          },
        },
      },
    });
    expect(app(out).env.map((e) => e.name)).toEqual(['LOG_LEVEL', 'DB_HOST']);
    expect(out.spec.template.spec).not.toHaveProperty('nodeSelector');
  });

  it('replaces a map or a list with $patch: replace', () => {
    const out = applyStrategicMergePatch(deployment(), {
      spec: {
        template: {
          spec: {
            nodeSelector: { zone: 'b', $patch: 'replace' },
            containers: [{ $patch: 'replace' }, { name: 'only', image: 'x:1' }],
          },
        },
      },
    });
    expect(out.spec.template.spec.nodeSelector).toEqual({ zone: 'b' });
    expect(containers(out)).toEqual([{ name: 'only', image: 'x:1' }]);
  });

  it('deletes keys set to null and replaces lists without a merge key (tolerations)', () => {
    const out = applyStrategicMergePatch(deployment(), {
      metadata: { annotations: { owner: null } },
      spec: { template: { spec: { tolerations: [{ key: 'spot', operator: 'Exists' }] } } },
    });
    expect(out.metadata.annotations).toEqual({ 'deployment.kubernetes.io/revision': '3' });
    expect(out.spec.template.spec.tolerations).toEqual([{ key: 'spot', operator: 'Exists' }]);
  });

  it('merges ports by containerPort, volume mounts by mountPath and volumes by name', () => {
    const out = applyStrategicMergePatch(deployment(), {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'app',
                ports: [{ containerPort: 8080, name: 'web' }, { containerPort: 9090 }],
                volumeMounts: [{ mountPath: '/cache', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'web' } }],
          },
        },
      },
    });
    expect(app(out).ports).toEqual([{ containerPort: 8080, name: 'web' }, { containerPort: 9090 }]);
    expect(app(out).volumeMounts).toEqual([{ name: 'cache', mountPath: '/cache', readOnly: true }]);
    expect(out.spec.template.spec.volumes.map((v) => v.name)).toEqual(['cache', 'config']);
  });

  it('merges Service ports by port', () => {
    const service = {
      spec: {
        ports: [
          { port: 80, targetPort: 8080 },
          { port: 443, targetPort: 8443 },
        ],
      },
    };
    const out = applyStrategicMergePatch(service, { spec: { ports: [{ port: 80, targetPort: 9000 }] } });
    expect(out.spec.ports).toEqual([
      { port: 80, targetPort: 9000 },
      { port: 443, targetPort: 8443 },
    ]);
  });

  it('honours $setElementOrder, $deleteFromPrimitiveList and $retainKeys', () => {
    const out = applyStrategicMergePatch(deployment(), {
      metadata: { '$deleteFromPrimitiveList/finalizers': ['b'], finalizers: ['d'] },
      spec: {
        strategy: { $retainKeys: ['type'], type: 'Recreate' },
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'app' }],
            containers: [{ name: 'sidecar', image: 'proxy:2.2' }],
          },
        },
      },
    });
    expect(out.metadata.finalizers).toEqual(['a', 'c', 'd']);
    expect(out.spec.strategy).toEqual({ type: 'Recreate' });
    expect(containers(out).map((c) => [c.name, c.image])).toEqual([
      ['sidecar', 'proxy:2.2'],
      ['app', 'web:1.0'],
    ]);
  });

  it('answers 400 BadRequest for a list item without its merge key or an unknown directive', () => {
    expect(
      failure(() =>
        applyStrategicMergePatch(deployment(), {
          spec: { template: { spec: { containers: [{ image: 'x' }] } } },
        }),
      ),
    ).toMatchObject({ code: 400, reason: 'BadRequest', message: expect.stringContaining('merge key: name') });
    expect(failure(() => applyStrategicMergePatch(deployment(), { spec: { $patch: 'explode' } })).code).toBe(
      400,
    );
    expect(failure(() => applyStrategicMergePatch(deployment(), [1])).code).toBe(400);
  });
});
