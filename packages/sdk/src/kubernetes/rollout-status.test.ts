import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { selectorText, templatesEqual } from './revisions';
import { rolloutStatus } from './rollout-status';

const deployment = (
  spec: { replicas?: number },
  status: Record<string, unknown>,
  generation = 2,
  conditions: { type: string; status: string; reason?: string }[] = [],
): V1Deployment =>
  ({
    metadata: { name: 'web', generation },
    spec: { ...spec, selector: {}, template: {} },
    status: { ...status, conditions },
  }) as V1Deployment;

describe('rolloutStatus of a Deployment (kubectl DeploymentStatusViewer)', () => {
  it('waits until the controller has observed the spec', () => {
    const s = rolloutStatus(deployment({ replicas: 3 }, { observedGeneration: 1 }), 'Deployment');
    expect(s).toMatchObject({
      state: 'progressing',
      message: 'Waiting for deployment spec update to be observed...',
      generation: 2,
      observedGeneration: 1,
    });
  });

  it('fails on ProgressDeadlineExceeded, before looking at counts', () => {
    const d = deployment({ replicas: 3 }, { observedGeneration: 2, updatedReplicas: 1 }, 2, [
      { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' },
    ]);
    expect(rolloutStatus(d, 'Deployment')).toMatchObject({
      state: 'failed',
      message: 'deployment "web" exceeded its progress deadline',
    });
  });

  it('reports each waiting stage in kubectl words, then done', () => {
    const base = { observedGeneration: 2 };
    expect(
      rolloutStatus(deployment({ replicas: 3 }, { ...base, updatedReplicas: 1, replicas: 4 }), 'Deployment')
        .message,
    ).toBe('Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...');
    expect(
      rolloutStatus(deployment({ replicas: 3 }, { ...base, updatedReplicas: 3, replicas: 5 }), 'Deployment')
        .message,
    ).toBe('Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination...');
    expect(
      rolloutStatus(
        deployment({ replicas: 3 }, { ...base, updatedReplicas: 3, replicas: 3, availableReplicas: 2 }),
        'Deployment',
      ).message,
    ).toBe('Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...');
    const done = rolloutStatus(
      deployment(
        { replicas: 3 },
        { ...base, updatedReplicas: 3, replicas: 3, availableReplicas: 3, readyReplicas: 3 },
      ),
      'Deployment',
    );
    expect(done).toEqual({
      state: 'done',
      message: 'deployment "web" successfully rolled out',
      generation: 2,
      observedGeneration: 2,
      replicas: 3,
      currentReplicas: 3,
      updatedReplicas: 3,
      readyReplicas: 3,
      availableReplicas: 3,
    });
  });

  it('treats a Deployment scaled to zero with no pods as done', () => {
    expect(rolloutStatus(deployment({ replicas: 0 }, { observedGeneration: 2 }), 'Deployment').state).toBe(
      'done',
    );
  });
});

const sts = (spec: Record<string, unknown>, status: Record<string, unknown>, generation = 3): V1StatefulSet =>
  ({ metadata: { name: 'db', generation }, spec, status }) as unknown as V1StatefulSet;

describe('rolloutStatus of a StatefulSet (kubectl StatefulSetStatusViewer)', () => {
  it('refuses OnDelete, waits for observation and readiness', () => {
    expect(rolloutStatus(sts({ updateStrategy: { type: 'OnDelete' } }, {}), 'StatefulSet')).toMatchObject({
      state: 'failed',
      message: 'rollout status is only available for RollingUpdate strategy type',
    });
    expect(
      rolloutStatus(sts({ replicas: 2, updateStrategy: { type: 'RollingUpdate' } }, {}), 'StatefulSet')
        .message,
    ).toBe('Waiting for statefulset spec update to be observed...');
    expect(
      rolloutStatus(
        sts(
          { replicas: 3, updateStrategy: { type: 'RollingUpdate' } },
          { observedGeneration: 3, readyReplicas: 1 },
        ),
        'StatefulSet',
      ).message,
    ).toBe('Waiting for 2 pods to be ready...');
  });

  it('follows the partition when rollingUpdate is set', () => {
    const spec = { replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } } };
    expect(
      rolloutStatus(
        sts(spec, { observedGeneration: 3, readyReplicas: 3, updatedReplicas: 1 }),
        'StatefulSet',
      ),
    ).toMatchObject({
      state: 'progressing',
      message: 'Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...',
    });
    expect(
      rolloutStatus(
        sts(spec, { observedGeneration: 3, readyReplicas: 3, updatedReplicas: 2 }),
        'StatefulSet',
      ),
    ).toMatchObject({
      state: 'done',
      message: 'partitioned roll out complete: 2 new pods have been updated...',
    });
  });

  it('compares current and update revisions without rollingUpdate', () => {
    const spec = { replicas: 2, updateStrategy: { type: 'RollingUpdate' } };
    const status = { observedGeneration: 3, readyReplicas: 2, updatedReplicas: 1, currentReplicas: 2 };
    expect(
      rolloutStatus(sts(spec, { ...status, currentRevision: 'db-1', updateRevision: 'db-2' }), 'StatefulSet')
        .message,
    ).toBe('waiting for statefulset rolling update to complete 1 pods at revision db-2...');
    expect(
      rolloutStatus(sts(spec, { ...status, currentRevision: 'db-2', updateRevision: 'db-2' }), 'StatefulSet'),
    ).toMatchObject({
      state: 'done',
      message: 'statefulset rolling update complete 2 pods at revision db-2...',
    });
  });
});

describe('revision helpers', () => {
  it('compares templates ignoring pod-template-hash and empty collections', () => {
    const a = {
      metadata: { labels: { app: 'web', 'pod-template-hash': 'abc' } },
      spec: { containers: [{ name: 'c', image: 'x:1', env: [] }] },
    };
    const b = {
      metadata: { labels: { app: 'web', 'pod-template-hash': 'def' }, annotations: {} },
      spec: { containers: [{ name: 'c', image: 'x:1' }] },
    };
    expect(templatesEqual(a, b)).toBe(true);
    expect(templatesEqual(a, { ...b, spec: { containers: [{ name: 'c', image: 'x:2' }] } })).toBe(false);
  });

  it('spells label selectors as the API expects', () => {
    expect(
      selectorText({
        matchLabels: { app: 'web', tier: 'fe' },
        matchExpressions: [
          { key: 'env', operator: 'In', values: ['prod', 'canary'] },
          { key: 'x', operator: 'Exists' },
          { key: 'y', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=web,tier=fe,env in (canary,prod),x,!y');
    expect(selectorText(undefined)).toBe('');
  });
});
