import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Registry,
  type RegistryContentType,
} from 'prom-client';
import type { Engine } from '../engine/engine';
import { FINAL_RUN_STATUSES } from '../store/records';

/**
 * Bucket bounds (seconds) of `runbook_run_duration_seconds`. A run's duration includes the time it waited
 * for an approval, so the buckets reach from sub-second diagnoses to a few hours of waiting for a person.
 */
export const RUN_DURATION_BUCKETS: readonly number[] = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400,
];

/**
 * Bucket bounds (seconds) of `runbook_step_duration_seconds`: one attempt of a check or an action, from a
 * quick API read to a rollout that takes minutes.
 */
export const STEP_DURATION_BUCKETS: readonly number[] = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

/** Options of {@link serviceMetrics}. */
export interface ServiceMetricsOptions {
  /**
   * Also collect prom-client's default process metrics (CPU, memory, event loop lag, GC) on the registry.
   * Skipped when the registry already has them, so passing the global registry of an app that collects
   * them itself does not throw. @default true
   */
  processMetrics?: boolean;
  /** How long a scrape waits for the store to count pending approvals. @default 2000 */
  storeTimeoutMs?: number;
  /** Told about failures that must not fail a scrape (the store not answering). @default ignores them */
  onError?: (error: unknown, what: string) => void;
}

/** The metrics of one engine on one registry; dispose to stop listening and unregister them. */
export interface ServiceMetrics extends Disposable {
  /** The registry the metrics are on; its `metrics()` and `contentType` answer `GET /metrics`. */
  readonly registry: Registry<RegistryContentType>;
  /** Removes the engine listeners and the metrics from the registry (not the process metrics). */
  dispose(): void;
}

const FINAL = new Set<string>(FINAL_RUN_STATUSES);

/** prom-client default metrics that fail Prometheus' lint (gauges ending in `_total`) and repeat others. */
const REDUNDANT_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * Registers the runbook service's metrics of `engine` on `registry`:
 *
 * - `runbook_runs_total{runbook,mode,outcome}`: runs that reached a final status (`succeeded`, `failed`,
 *   `escalated`, `cancelled`) in this process. A suspension for approval is not counted, so each run is
 *   counted once, by the replica that finished it.
 * - `runbook_run_duration_seconds{runbook,mode}`: from the run's first start to its end, as stored (so a run
 *   resumed by another replica, or after an approval, is measured whole).
 * - `runbook_step_duration_seconds{runbook,kind}`: each step attempt this process ran; replayed steps are
 *   not observed again.
 * - `runbook_lock_contention_total{runbook}`: actions refused because another run held the resource's lock
 *   (`RESOURCE_LOCKED`). The engine does not wait for locks, it refuses, so this counts refusals.
 * - `runbook_approvals_pending`: approval requests waiting for a decision, counted in the store at scrape
 *   time (the same value on every replica; aggregate with `max`, not `sum`). `NaN` when the store does not
 *   answer, so a scrape still succeeds and a stale count is never shown.
 *
 * Labels are runbook ids, modes, step kinds and final statuses only: never run ids, actors or inputs, so
 * the number of series is bounded by the catalog. Throws if the registry already has these metrics.
 */
export function serviceMetrics(
  engine: Engine,
  registry: Registry<RegistryContentType>,
  options: ServiceMetricsOptions = {},
): ServiceMetrics {
  const storeTimeoutMs = options.storeTimeoutMs ?? 2_000;
  const onError = options.onError ?? (() => {});
  // Durations are read from the store after a run ends; a scrape waits for those still being read so that
  // a run counted in runs_total is also in the histogram of the same scrape.
  const pending = new Set<Promise<void>>();

  const runs = new Counter({
    name: 'runbook_runs_total',
    help: 'Runs that reached a final status in this process, by runbook, mode and outcome (final status).',
    labelNames: ['runbook', 'mode', 'outcome'] as const,
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: 'runbook_run_duration_seconds',
    help: 'Wall time of finished runs from first start to end, including waits for approval.',
    labelNames: ['runbook', 'mode'] as const,
    buckets: [...RUN_DURATION_BUCKETS],
    registers: [registry],
    async collect() {
      await Promise.allSettled([...pending]);
    },
  });
  const stepDuration = new Histogram({
    name: 'runbook_step_duration_seconds',
    help: 'Duration of step attempts run by this process (replays excluded), by runbook and step kind.',
    labelNames: ['runbook', 'kind'] as const,
    buckets: [...STEP_DURATION_BUCKETS],
    registers: [registry],
  });
  const lockContention = new Counter({
    name: 'runbook_lock_contention_total',
    help: 'Actions refused because another run held the lock on their resource (RESOURCE_LOCKED).',
    labelNames: ['runbook'] as const,
    registers: [registry],
  });
  const approvalsPending = new Gauge({
    name: 'runbook_approvals_pending',
    help: 'Approval requests waiting for a decision, in the whole store (same on every replica).',
    registers: [registry],
    async collect() {
      try {
        this.set(await withTimeout(countPendingApprovals(engine), storeTimeoutMs));
      } catch (e) {
        onError(e, 'counting pending approvals');
        this.set(Number.NaN);
      }
    },
  });

  const listeners = [
    engine.onRunEnd((e) => {
      if (!FINAL.has(e.status)) return;
      runs.inc({ runbook: e.runbookId, mode: e.mode, outcome: e.status });
      const observed = engine.store
        .getRun(e.runId)
        .then((run) => {
          const end = run?.endedAt ?? new Date();
          const start = run?.startedAt ?? run?.createdAt;
          if (start) {
            runDuration.observe(
              { runbook: e.runbookId, mode: e.mode },
              Math.max(0, end.getTime() - start.getTime()) / 1000,
            );
          }
        })
        .catch((err: unknown) => onError(err, 'reading a finished run for its duration'))
        .finally(() => pending.delete(observed));
      pending.add(observed);
    }),
    engine.onStepEnd((e) => {
      if (e.replayed) return;
      stepDuration.observe({ runbook: e.runbookId, kind: e.kind }, e.durationMs / 1000);
      if (e.error?.code === 'RESOURCE_LOCKED') lockContention.inc({ runbook: e.runbookId });
    }),
  ];

  if (options.processMetrics ?? true) {
    // collectDefaultMetrics throws when they are already registered: the caller may own them.
    if (!registry.getSingleMetric('process_cpu_user_seconds_total')) {
      collectDefaultMetrics({ register: registry });
      // These three are gauges named like counters, which `promtool check metrics` rejects; each is the sum
      // of the `{type}`-labelled gauge of the same name without `_total`, so nothing is lost.
      for (const name of REDUNDANT_DEFAULT_GAUGES) registry.removeSingleMetric(name);
    }
  }

  const names = [runs, runDuration, stepDuration, lockContention, approvalsPending].map(
    (m) => (m as unknown as { name: string }).name,
  );
  const dispose = () => {
    for (const l of listeners) l.dispose();
    for (const name of names) registry.removeSingleMetric(name);
  };
  return { registry, dispose, [Symbol.dispose]: dispose };
}

/**
 * Pending approvals in the store. A plain count over the `approvals` table through the store's driver
 * (in the store's schema): the run store has no query for it, and one aggregate per scrape is cheap next to
 * a scrape interval. Requests past their expiry still count: the run still waits until someone acts.
 */
async function countPendingApprovals(engine: Engine): Promise<number> {
  const rows = await engine.store.driver.query<{ n: number | string }>(
    "SELECT count(*)::int AS n FROM approvals WHERE status = 'pending'",
  );
  return Number(rows[0]?.n ?? 0);
}

/** `promise`, or a rejection after `ms`; the timer never keeps the process alive. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
