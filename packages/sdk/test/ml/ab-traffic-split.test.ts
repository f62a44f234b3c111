import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Applied } from '../../src/core/step';
import type { SetEnvParams } from '../../src/kubernetes/actions/set-env';
import type { KubernetesCluster } from '../../src/kubernetes/cluster';
import { abTrafficSplit } from '../../src/ml/ab/ab-traffic-split';
import { DEPLOYMENTS } from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { sealAsEngine, startSimulatedCluster, stepContext } from '../support/kubernetes';

// The A/B traffic split (the manual's `kubectl set env deployment/backend AB_TEST_ENABLED=true
// AB_TEST_TRAFFIC_SPLIT=0.1`) against the project's Kubernetes API simulator through the real client.

const NS = 'aiwebtest';
let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS] }));
  sim.apply({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'backend', namespace: NS, labels: { app: 'backend' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'backend' } },
      template: {
        metadata: { labels: { app: 'backend' } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'aiwebtest/backend:1.0',
              env: [
                { name: 'MLFLOW_MODEL_VERSION', value: '3' },
                { name: 'AB_TEST_ENABLED', value: 'false' },
              ],
            },
          ],
        },
      },
    },
  });
  await sim.settle();
});

afterAll(async () => {
  await sim?.close();
});

const envOf = () =>
  Object.fromEntries(
    (
      (
        sim.store.get(DEPLOYMENTS, NS, 'backend').spec as {
          template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } };
        }
      ).template.spec.containers[0]?.env ?? []
    ).map((e) => [e.name, e.value]),
  );

describe('abTrafficSplit', () => {
  it('plans each variable before → after, sets them, waits for the rollout, and reverts to what was there', async () => {
    const action = abTrafficSplit(cluster, {
      namespace: NS,
      split: 0.1,
      extra: { AB_TEST_CHALLENGER_VERSION: '5' },
    });
    expect([action.kind, action.target, action.risk]).toEqual([
      'ml.ab-traffic-split',
      'k8s:aiwebtest/deployment/backend',
      'medium',
    ]);
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    expect(plan.changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['spec.template.spec.containers[name=app].env[name=AB_TEST_ENABLED]', 'false', 'true'],
      ['spec.template.spec.containers[name=app].env[name=AB_TEST_TRAFFIC_SPLIT]', null, '0.1'],
      ['spec.template.spec.containers[name=app].env[name=AB_TEST_CHALLENGER_VERSION]', null, '5'],
    ]);
    const data = await action.apply(stepContext(), plan);
    expect(envOf()).toEqual({
      MLFLOW_MODEL_VERSION: '3',
      AB_TEST_ENABLED: 'true',
      AB_TEST_TRAFFIC_SPLIT: '0.1',
      AB_TEST_CHALLENGER_VERSION: '5',
    });
    const applied: Applied<SetEnvParams, null> = {
      plan,
      data,
      appliedAt: new Date().toISOString(),
      recovered: false,
    };
    expect((await action.verify?.(stepContext(), applied))?.status).toBe('ok');
    await action.revert?.(stepContext(), applied);
    expect(envOf()).toEqual({ MLFLOW_MODEL_VERSION: '3', AB_TEST_ENABLED: 'false' });
  });

  it('turning it off sets only the enabled variable; bad options are refused when built', async () => {
    const plan = await abTrafficSplit(cluster, { namespace: NS, split: 0, enabled: false }).plan(
      stepContext(),
    );
    expect(plan.changes).toEqual([]);
    expect(() => abTrafficSplit(cluster, { namespace: NS, split: 1.5 })).toThrow(/split: /);
    expect(() => abTrafficSplit(cluster, { namespace: NS, split: 0.1, splitVariable: 'bad name' })).toThrow(
      /splitVariable: expected an environment variable name/,
    );
  });
});
