/**
 * Runbook 4 of the operations manual, "PostgreSQL Connection Loss" (alert `PostgresDown`, `pg_up == 0`): the
 * application cannot reach its database through PgBouncer. Diagnosis looks at the PostgreSQL pod and its log,
 * connects the way the backend does (through PgBouncer), and reads PgBouncer's pools and stats; recovery
 * restarts what is broken in the manual's order and proves the database answers again.
 */
import {
  type Action,
  type Applied,
  type Check,
  Duration,
  defineAction,
  defineCheck,
  defineRunbook,
  type Finding,
  finding,
  formatMillis,
  isReplayableCheck,
  type Json,
  onAlert,
  type Plan,
  type ReplayableCheck,
  resourceRef,
  toMillis,
} from '@aiwebtest/runbooks';
import { isKubernetesApiError, type Kubernetes } from '@aiwebtest/runbooks/kubernetes';
import { isPgBouncerError, type PoolsData } from '@aiwebtest/runbooks/postgres';
import pg from 'pg';
import { z } from 'zod';
import { connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';

/** Input of `postgres-connection-loss`. The defaults are the manual's values. */
export const PostgresConnectionLossInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** How long PostgreSQL may take to be ready after its restart (`kubectl wait … --timeout=120s`). @default "120s" */
  readyTimeout: Duration.default('120s'),
  /** Bound on the connection probe through PgBouncer (the `pg_up` metric allows 2 s). @default "5s" */
  connectTimeout: Duration.default('5s'),
  /** How long the `SELECT NOW()` verification keeps trying while the restarted pieces come up. @default "30s" */
  verifyWithin: Duration.default('30s'),
  /** A pool using more than this share of its server connections is a warning (the manual alerts at >80%). @default 0.8 */
  poolAlertAt: z
    .number()
    .gt(0, 'expected a share above 0')
    .max(1, 'expected a share of at most 1')
    .default(0.8),
  /** Active client connections above this are unusual (the manual: "should be 10-20"). @default 20 */
  maxActiveConnections: z.number().int().min(1).default(20),
});
/** Input of `postgres-connection-loss`. */
export type PostgresConnectionLossInput = z.input<typeof PostgresConnectionLossInput>;

const POSTGRES_SELECTOR = 'app=postgres';

/** The database name PgBouncer serves, from the application's URL (its path). */
function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** Why a connection failed, without the URL (it may carry a password). */
function reasonOf(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err?.code && !/^\d/.test(err.code) ? err.code : (err?.message ?? String(e));
}

/** What {@link pgbouncerCheck} read: the inner check's observation, or how the console failed to answer. */
export type PgBouncerCheckObservation<O> =
  | { seen: O; down: null }
  | { seen: null; down: { code: string; message: string } };

/**
 * A PgBouncer console check that reports a PgBouncer which does not answer as the finding (`fail`, data
 * `null`) instead of throwing: "PgBouncer is down" is this runbook's diagnosis, not an error of the run.
 * A replayable check stays replayable: the console's failure, or the inner observation, is what it records.
 */
export function pgbouncerCheck<T, O>(
  inner: ReplayableCheck<T, O>,
  what: string,
): ReplayableCheck<T | null, PgBouncerCheckObservation<O>>;
export function pgbouncerCheck<T>(inner: Check<T>, what: string): Check<T | null>;
export function pgbouncerCheck<T>(inner: Check<T>, what: string): Check<T | null> {
  const about = { kind: inner.kind, description: inner.description ?? what };
  const downOf = (e: unknown, signal: AbortSignal): { code: string; message: string } => {
    signal.throwIfAborted();
    if (!isPgBouncerError(e) || !['PGBOUNCER_CONNECTION', 'PGBOUNCER_TIMEOUT'].includes(e.code)) throw e;
    return { code: e.code, message: e.message };
  };
  const isDown = (down: { code: string; message: string }) =>
    finding<T | null>(
      'fail',
      `PgBouncer is down: ${what} got no answer from its admin console (${down.code})`,
      null,
      [{ kind: 'text', title: 'Console error', text: down.message }],
    );
  if (isReplayableCheck(inner)) {
    return defineCheck({
      ...about,
      async read(ctx): Promise<PgBouncerCheckObservation<Json>> {
        try {
          return { seen: await inner.read(ctx), down: null };
        } catch (e) {
          return { seen: null, down: downOf(e, ctx.signal) };
        }
      },
      judge: (o: PgBouncerCheckObservation<Json>): Finding<T | null> =>
        o.down === null ? inner.judge(o.seen) : isDown(o.down),
    });
  }
  return defineCheck<T | null>({
    ...about,
    async run(ctx) {
      try {
        return await inner.run(ctx);
      } catch (e) {
        return isDown(downOf(e, ctx.signal));
      }
    },
  });
}

/** Parameters of {@link restartCrashedStatefulSet}'s plan: the rollout restart's, and the pods it deletes. */
type RestartParams = Json & { deletePods: string[] };

/**
 * `kubectl rollout restart statefulset/<name>`, plus what an operator does when the pod to replace crashed:
 * a StatefulSet with `OrderedReady` pod management does not roll a pod that is not Running and Ready (the
 * rolling update waits for it forever), so the crashed pods of the old revision are deleted and the
 * controller recreates them from the restarted template (their volumes stay). The plan names those pods;
 * verify is the rollout restart's (the rollout completes and the pods are Ready within `timeout`).
 */
function restartCrashedStatefulSet(
  k8s: Kubernetes,
  options: { namespace: string; name: string; selector: string; timeout: Duration },
): Action<RestartParams, Json> {
  const restart = k8s.rolloutRestart({
    namespace: options.namespace,
    kind: 'StatefulSet',
    name: options.name,
    timeout: options.timeout,
  }) as unknown as Action<Json, Json>;
  const { cluster } = k8s;
  return defineAction<RestartParams, Json>({
    kind: restart.kind,
    target: restart.target,
    // Restarting the database drops every session: a second person approves.
    risk: 'high',
    destructive: false,
    description: `${restart.description ?? 'rollout restart'}; crashed pods are deleted so the rollout can replace them`,
    ...(restart.budget ? { budget: restart.budget } : {}),
    async plan(ctx) {
      const draft = await restart.plan(ctx);
      const { items } = await cluster.call(`list pods ${options.selector}`, (o) =>
        cluster.core.listNamespacedPod({ namespace: options.namespace, labelSelector: options.selector }, o),
      );
      const crashed = items.filter((pod) => {
        if (pod.metadata?.deletionTimestamp) return false;
        const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return !ready;
      });
      const changes = [
        ...draft.changes,
        ...crashed.map((pod) => {
          const waiting = pod.status?.containerStatuses?.find((c) => c.state?.waiting)?.state?.waiting
            ?.reason;
          return {
            target: resourceRef('k8s', options.namespace, 'pod', pod.metadata?.name ?? '?'),
            field: 'pod',
            before: `${pod.status?.phase ?? 'Unknown'}${waiting ? ` (${waiting})` : ''}, not ready`,
            after: 'deleted: recreated from the restarted template',
          };
        }),
      ];
      const names = crashed.map((p) => p.metadata?.name ?? '').filter(Boolean);
      return {
        ...draft,
        summary: names.length
          ? `${draft.summary}; delete crashed ${names.join(', ')} (a not-ready pod blocks the rolling update)`
          : draft.summary,
        changes,
        params: { ...(draft.params as Record<string, Json>), deletePods: names },
      };
    },
    async apply(ctx, plan) {
      const applied = await restart.apply(ctx, plan as unknown as Plan<Json>);
      cluster.assertContext();
      cluster.assertMayChange(options.namespace);
      for (const name of plan.params.deletePods) {
        try {
          await cluster.call(`delete pod ${name}`, (o) =>
            cluster.core.deleteNamespacedPod({ namespace: options.namespace, name }, o),
          );
        } catch (e) {
          // Gone already (the rollout got to it first): what we wanted.
          if (!isKubernetesApiError(e) || e.status !== 404) throw e;
        }
        ctx.log(`deleted crashed pod ${name}`);
      }
      return applied;
    },
    async verify(ctx, applied) {
      if (!restart.verify) return finding('unknown', 'no verification', null);
      return restart.verify(ctx, applied as unknown as Applied<Json, Json>);
    },
  });
}

/** What {@link connectionProbe} found. */
export interface ConnectionProbeData {
  answered: boolean;
  /** What the server answered (`SELECT NOW()`: its time). */
  answer: string | null;
  attempts: number;
  latencyMs: number | null;
  error: string | null;
}

/**
 * A statement through PgBouncer on a NEW connection, the way the backend connects (a pooled connection would
 * hide a PgBouncer that refuses new clients): the manual's step 3 (`SELECT 1`) and step 5 (`SELECT NOW()`).
 * With `retryWithinMs` it tries again until it answers or that time passes (restarted pieces take a moment
 * to listen). It never throws for an unreachable database: saying so is its job.
 */
export function connectionProbe(options: {
  databaseUrl: string;
  statement: 'SELECT 1' | 'SELECT NOW()';
  timeoutMs: number;
  retryWithinMs?: number;
}): Check<ConnectionProbeData> {
  const { databaseUrl, statement, timeoutMs } = options;
  const retryWithinMs = options.retryWithinMs ?? 0;
  return defineCheck<ConnectionProbeData>({
    kind: 'aiwebtest.connection-probe',
    description: `${statement} through PgBouncer on a new connection`,
    async run(ctx) {
      const deadline = Date.now() + retryWithinMs;
      let attempts = 0;
      let error = 'no attempt';
      for (;;) {
        attempts += 1;
        const started = performance.now();
        const client = new pg.Client({
          connectionString: databaseUrl,
          connectionTimeoutMillis: timeoutMs,
          query_timeout: timeoutMs,
          application_name: 'aiwebtest-runbooks',
        });
        client.on('error', () => {});
        try {
          await client.connect();
          const { rows } = await client.query<{ answer: unknown }>(`${statement} AS answer`);
          const latencyMs = Math.round(performance.now() - started);
          const value = rows[0]?.answer;
          const answer = value instanceof Date ? value.toISOString() : value == null ? null : String(value);
          return finding(
            'ok',
            `${statement} through PgBouncer answered ${answer} in ${latencyMs} ms` +
              (attempts > 1 ? ` (attempt ${attempts})` : ''),
            { answered: true, answer, attempts, latencyMs, error: null },
          );
        } catch (e) {
          error = reasonOf(e);
        } finally {
          await client.end().catch(() => {});
        }
        ctx.signal.throwIfAborted();
        if (Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const tried = attempts > 1 ? ` after ${attempts} attempts in ${formatMillis(retryWithinMs)}` : '';
      return finding('fail', `${statement} through PgBouncer fails${tried}: ${error}`, {
        answered: false,
        answer: null,
        attempts,
        latencyMs: null,
        error,
      });
    },
  });
}

/** The pools that make clients wait: "db/user: N waiting, M of S server connections in use". */
function saturatedPools(data: PoolsData | null): string[] {
  if (!data) return [];
  return data.pools
    .filter((p) => p.clWaiting > 0 || (p.utilization ?? 0) >= 1)
    .map(
      (p) =>
        `pool ${p.database}/${p.user} saturated: ${p.svActive}/${p.poolSize} server connections in use, ` +
        `${p.clWaiting} clients waiting (longest ${formatMillis(p.maxWaitMs)})`,
    );
}

/**
 * The manual's step 6 ("Active Connections should be 10-20", alert at >80%): SHOW POOLS after the recovery,
 * judged by the pools check (clients waiting: exhausted) and by the active client connections. Replayable
 * like the pools check it reads: its observation is that check's, judged against `maxActive` too.
 */
export function poolUtilization<O>(
  inner: ReplayableCheck<PoolsData | null, O>,
  maxActive: number,
): ReplayableCheck<PoolsData | null, O> {
  return defineCheck({
    kind: 'aiwebtest.pool-utilization',
    description: `PgBouncer pool utilization (active client connections normally 10-${maxActive})`,
    read: (ctx) => inner.read(ctx),
    judge(seen) {
      const pools = inner.judge(seen);
      if (!pools.data) return pools;
      const active = pools.data.pools.reduce((n, p) => n + p.clActive, 0);
      const waiting = pools.data.pools.reduce((n, p) => n + p.clWaiting, 0);
      const line = `${active} active client connections (normal 10-${maxActive}), ${waiting} waiting`;
      if (pools.status === 'fail' || active <= maxActive) {
        return { ...pools, summary: `${line}; ${pools.summary}` };
      }
      return { ...pools, status: 'warn', summary: `${line}: above the normal range; ${pools.summary}` };
    },
  });
}

/**
 * Runbook 4, PostgreSQL connection loss. Diagnosis: `postgres-pods` (kubectl get pods -l app=postgres),
 * `postgres-logs`, `app-connection` (SELECT 1 through PgBouncer, as the backend connects), `pgbouncer-pools`
 * (SHOW POOLS), `pool-stats` (SHOW STATS). Recovery, only while the connection is lost or a pool is exhausted:
 * `restart-postgres` (only if its pod crashed; high risk: a second person approves), `wait-postgres-ready`,
 * `restart-pgbouncer`, `restart-backend` (resets its connections), `verify-connectivity` (SELECT NOW()),
 * `pool-utilization`. Escalations are the manual's: PostgreSQL won't start → check disk space and corruption;
 * pool exhausted → increase the PgBouncer pool size; persistent → fail over to a replica or backup.
 */
export function createPostgresConnectionLossRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'postgres-connection-loss',
    title: 'PostgreSQL connection loss',
    description:
      'Finds why the application cannot reach PostgreSQL through PgBouncer (PostgreSQL pod crashed, PgBouncer down, pool exhausted); restarts PostgreSQL (with approval), PgBouncer and the backend, and verifies SELECT NOW() and the pool utilization.',
    severity: 'P1',
    input: PostgresConnectionLossInput,
    triggers: [onAlert({ alertname: 'PostgresDown' })],
    tags: ['component: database', 'runbook: 4'],
    async run({ input, step, mode }) {
      const platform = connect();
      const { k8s, env } = platform;
      const namespace = input.namespace;
      const database = databaseOf(env.databaseUrl);
      const connectTimeoutMs = toMillis(input.connectTimeout);

      // Diagnosis, in the manual's order.
      const pods = await step.check(
        'postgres-pods',
        k8s.podStatus({ namespace, selector: POSTGRES_SELECTOR }),
      );
      await step.check(
        'postgres-logs',
        k8s.podLogs({ namespace, selector: POSTGRES_SELECTOR, tailLines: 100 }),
      );
      const connection = await step.check(
        'app-connection',
        connectionProbe({ databaseUrl: env.databaseUrl, statement: 'SELECT 1', timeoutMs: connectTimeoutMs }),
      );
      const pools = await step.check(
        'pgbouncer-pools',
        pgbouncerCheck(
          platform.pgbouncer.pools({ database, warnAt: input.poolAlertAt, maxWait: '1s' }),
          'SHOW POOLS',
        ),
      );
      await step.check('pool-stats', pgbouncerCheck(platform.pgbouncer.stats({ database }), 'SHOW STATS'));

      const postgresCrashed = pods.status === 'fail';
      const pgbouncerDown = pools.data === null;
      const saturated = saturatedPools(pools.data);
      const exhausted = pools.data?.problems.some((p) => p.reason === 'clients-waiting') ?? false;
      const connectionLost = connection.status === 'fail';

      const causes: string[] = [];
      if (postgresCrashed) causes.push(`PostgreSQL pod down: ${pods.summary}`);
      if (pgbouncerDown) causes.push(pools.summary);
      if (exhausted) causes.push(saturated.join('; ') || pools.summary);
      if (connectionLost && !pgbouncerDown && !exhausted)
        causes.push(`connection refused: ${connection.summary}`);
      if (causes.length === 0) {
        return step.done(
          `PostgreSQL is reachable through PgBouncer (${connection.summary}); ${pools.summary}; no recovery needed`,
        );
      }
      const cause = causes.join('; ');

      // Recovery step 1 and 2: PostgreSQL itself, only when its pod crashed.
      let postgresRestart = 'not needed (pod ready)';
      if (postgresCrashed) {
        const restart = await step.act(
          'restart-postgres',
          restartCrashedStatefulSet(k8s, {
            namespace,
            name: 'postgres',
            selector: POSTGRES_SELECTOR,
            timeout: input.readyTimeout,
          }),
          { onGiveUp: step.escalate("PostgreSQL won't start: check disk space and corruption") },
        );
        postgresRestart = restart.status;
        if (restart.status === 'applied') {
          const ready = await step.check(
            'wait-postgres-ready',
            k8s.waitForRollout({
              namespace,
              kind: 'StatefulSet',
              name: 'postgres',
              timeout: input.readyTimeout,
            }),
          );
          if (ready.status !== 'ok') {
            return step.escalate(
              `PostgreSQL won't start (${ready.summary}): check disk space and corruption`,
            );
          }
        }
      }

      // Steps 3 and 4: PgBouncer (its server connections point at the old server, or it is gone), then the
      // backend, whose pooled connections went with PgBouncer.
      const bouncer = await step.act(
        'restart-pgbouncer',
        k8s.rolloutRestart({ namespace, name: 'pgbouncer' }),
        {
          onGiveUp: step.escalate('PgBouncer does not come back after a restart: page the database on-call'),
        },
      );
      const backend = await step.act('restart-backend', k8s.rolloutRestart({ namespace, name: 'backend' }), {
        onGiveUp: step.escalate('the backend does not come back after a restart: page on-call'),
      });

      if (mode !== 'execute') {
        const would = [
          postgresCrashed ? 'restart statefulset/postgres (needs approval)' : null,
          'restart deployment/pgbouncer',
          'restart deployment/backend',
        ].filter(Boolean);
        return step.done(
          mode === 'plan'
            ? `${cause}. Would ${would.join(', ')}, then verify SELECT NOW() through PgBouncer`
            : `${cause}. Plan or execute this runbook to ${would.join(', ')}`,
        );
      }

      // Steps 5 and 6: prove it.
      const verified = await step.check(
        'verify-connectivity',
        connectionProbe({
          databaseUrl: env.databaseUrl,
          statement: 'SELECT NOW()',
          timeoutMs: connectTimeoutMs,
          retryWithinMs: toMillis(input.verifyWithin),
        }),
      );
      if (verified.status !== 'ok') {
        return step.escalate(
          `persistent connection loss (${verified.summary}): fail over to the read replica or restore from backup`,
        );
      }
      const utilization = await step.check(
        'pool-utilization',
        poolUtilization(
          pgbouncerCheck(
            platform.pgbouncer.pools({ database, warnAt: input.poolAlertAt, maxWait: '1s' }),
            'SHOW POOLS',
          ),
          input.maxActiveConnections,
        ),
      );
      if (utilization.status === 'fail') {
        return step.escalate(
          `connection pool exhausted after the restarts (${utilization.summary}): increase the PgBouncer pool size (default_pool_size)`,
        );
      }
      return step.done(
        `${cause}. Recovered: postgres restart ${postgresRestart}, pgbouncer restart ${bouncer.status}, ` +
          `backend restart ${backend.status}; ${verified.summary}; ${utilization.summary}`,
      );
    },
  });
}

/** `postgres-connection-loss` on the environment of `connectFromEnvironment` (env vars or the lab's lab.json). */
export const postgresConnectionLoss = createPostgresConnectionLossRunbook();
