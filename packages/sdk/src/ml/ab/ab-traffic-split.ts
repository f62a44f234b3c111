import { z } from 'zod';
import { Duration } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import { resourceRef } from '../../core/resource';
import type { Applied } from '../../core/step';
import { type Action, defineAction, type StepContext } from '../../core/step';
import type { SetEnvParams } from '../../kubernetes/actions/set-env';
import type { KubernetesCluster } from '../../kubernetes/cluster';
import { NamespaceName, ObjectName } from '../../kubernetes/options';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Options of {@link abTrafficSplit}. */
export const AbTrafficSplitOptions = z.object({
  /** Namespace of the Deployment. */
  namespace: NamespaceName,
  /** The Deployment that serves the model. @default "backend" */
  name: ObjectName.default('backend'),
  /** The container. @default every container */
  container: z.string().min(1).optional(),
  /** The share of traffic for the challenger, 0–1 (the manual: 0.1). */
  split: z.number().min(0).max(1),
  /** `false` turns the A/B test off (sets only the enabled variable to `false`). @default true */
  enabled: z.boolean().default(true),
  /** @default "AB_TEST_ENABLED" */
  enabledVariable: z
    .string()
    .regex(ENV_NAME, 'expected an environment variable name')
    .default('AB_TEST_ENABLED'),
  /** @default "AB_TEST_TRAFFIC_SPLIT" */
  splitVariable: z
    .string()
    .regex(ENV_NAME, 'expected an environment variable name')
    .default('AB_TEST_TRAFFIC_SPLIT'),
  /** Extra variables set with the split, e.g. `{ AB_TEST_CHALLENGER_VERSION: "5" }`. @default {} */
  extra: z
    .record(z.string().regex(ENV_NAME, 'expected an environment variable name'), z.string())
    .default({}),
  /** How long verify waits for the rollout. @default "5m" */
  timeout: Duration.default('5m'),
});
export type AbTrafficSplitOptions = z.output<typeof AbTrafficSplitOptions>;
export type AbTrafficSplitOptionsInput = z.input<typeof AbTrafficSplitOptions>;

const KIND = 'ml.ab-traffic-split';

/**
 * The manual's A/B test switch (`kubectl set env deployment/backend AB_TEST_ENABLED=true AB_TEST_TRAFFIC_SPLIT=0.1`)
 * as an action: the Kubernetes `setEnv` action under its own kind (so budgets and the audit name it), with the
 * same plan (each variable before → after), verify (the rollout finishes) and revert (the variables as they were).
 * `@kubernetes/client-node` is loaded only when the action plans, so importing `/ml` does not load it.
 *
 * Risk `medium`, not destructive.
 */
export function abTrafficSplit(
  cluster: KubernetesCluster,
  options: AbTrafficSplitOptionsInput,
): Action<SetEnvParams, null> {
  const o = parseOptions(KIND, AbTrafficSplitOptions, options);
  const env: Record<string, string> = o.enabled
    ? { [o.enabledVariable]: 'true', [o.splitVariable]: String(o.split), ...o.extra }
    : { [o.enabledVariable]: 'false' };
  let inner: Promise<Action<SetEnvParams, null>> | undefined;
  const setEnvAction = () =>
    (inner ??= import('../../kubernetes/actions/set-env').then(({ setEnv }) =>
      setEnv(cluster, {
        namespace: o.namespace,
        name: o.name,
        kind: 'Deployment',
        ...(o.container === undefined ? {} : { container: o.container }),
        env,
        timeout: o.timeout,
      }),
    ));
  const describe = o.enabled
    ? `send ${o.split * 100}% of traffic to the challenger`
    : 'turn the A/B test off';
  return defineAction<SetEnvParams, null>({
    kind: KIND,
    target: resourceRef('k8s', o.namespace, 'deployment', o.name),
    risk: 'medium',
    destructive: false,
    description: `A/B test on deployment ${o.namespace}/${o.name}: ${describe}`,
    plan: async (ctx: StepContext) => (await setEnvAction()).plan(ctx),
    apply: async (ctx, plan) => (await setEnvAction()).apply(ctx, plan),
    verify: async (ctx, applied: Applied<SetEnvParams, null>) => {
      const action = await setEnvAction();
      if (!action.verify) throw new Error('setEnv has no verify');
      return action.verify(ctx, applied);
    },
    revert: async (ctx, applied: Applied<SetEnvParams, null>) => {
      const action = await setEnvAction();
      if (!action.revert) throw new Error('setEnv has no revert');
      return action.revert(ctx, applied);
    },
  });
}
