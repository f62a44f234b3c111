import { z } from 'zod';
import { Duration } from '../core/duration';
import { parseOptions } from '../core/parse-options';
import { type Action, defineAction } from '../core/step';
import { type SetEnvParams, setEnv } from '../kubernetes/actions/set-env';
import type { KubernetesCluster } from '../kubernetes/cluster';
import { NamespaceName, ObjectName } from '../kubernetes/options';

/** Options of {@link strictRateLimit}. */
export const StrictRateLimitOptions = z.object({
  /** Namespace of the Deployment. */
  namespace: NamespaceName,
  /** The Deployment that enforces the rate limit. @default "backend" (the manual's) */
  name: ObjectName.default('backend'),
  /** `RATE_LIMIT_GLOBAL`: requests allowed per window while strict. @default 10 (the manual's) */
  global: z.number().int().min(1).max(1_000_000).default(10),
  /** The container to change. @default every container, as `kubectl set env` without `-c` */
  container: z.string().min(1).optional(),
  /** Revert (leave strict mode) this long after it was applied. @default never: a person decides */
  expiresAfter: Duration.optional(),
  /** How long verify waits for the rollout. @default "5m" */
  timeout: Duration.default('5m'),
});
export type StrictRateLimitOptionsInput = z.input<typeof StrictRateLimitOptions>;

/**
 * Runbook 12's "enable rate limiting (strict mode)": `kubectl set env deployment/backend RATE_LIMIT_STRICT=true
 * RATE_LIMIT_GLOBAL=10`. It is the Kubernetes `setEnv` action (plan of each variable before → after, verify =
 * rollout done, revert = the variables as they were) under its own kind, so that budgets and the audit log name it.
 */
export function strictRateLimit(
  cluster: KubernetesCluster,
  options: StrictRateLimitOptionsInput,
): Action<SetEnvParams, null> {
  const o = parseOptions('security.strict-rate-limit', StrictRateLimitOptions, options);
  const inner = setEnv(cluster, {
    namespace: o.namespace,
    name: o.name,
    ...(o.container === undefined ? {} : { container: o.container }),
    env: { RATE_LIMIT_STRICT: 'true', RATE_LIMIT_GLOBAL: String(o.global) },
    timeout: o.timeout,
  });
  return defineAction({
    ...inner,
    kind: 'security.strict-rate-limit',
    description: `Strict rate limiting on deployment ${o.namespace}/${o.name} (RATE_LIMIT_GLOBAL=${o.global})`,
    ...(o.expiresAfter === undefined ? {} : { expiresAfter: o.expiresAfter }),
  });
}
