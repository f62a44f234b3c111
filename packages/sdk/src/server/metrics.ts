import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Registry,
  type RegistryContentType,
} from 'prom-client';
import type { Json } from '../core/json';
import type { ActiveBudgetRule, Engine } from '../engine/engine';
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

/**
 * Bucket bounds (seconds) of `runbook_alert_to_diagnosis_seconds` and `runbook_alert_to_recovery_seconds`:
 * measured from the alert's `startsAt`, so they include Alertmanager's `for`, grouping and delivery, and
 * reach from seconds to a day for a recovery that waited for a person.
 */
export const ALERT_LATENCY_BUCKETS: readonly number[] = [
  5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400,
];

/** Options of {@link serviceMetrics}. */
export interface ServiceMetricsOptions {
  /**
   * Also collect prom-client's default process metrics (CPU, memory, event loop lag, GC) on the registry.
   * Skipped when the registry already has them, so passing the global registry of an app that collects
   * them itself does not throw. @default true
   */
  processMetrics?: boolean;
  /** How long a scrape waits for the store to count pending approvals and spent budgets. @default 2000 */
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
 * - `runbook_alert_to_diagnosis_seconds{runbook}`: for runs started by an Alertmanager alert (context
 *   `source: "alertmanager"`), from the alert's `startsAt` to the diagnosis: the moment the run's checks are
 *   done, which is the first of: a plan or execute run reaching its first act or approve step (its first
 *   plan), or the run ending `succeeded` or `escalated` (a diagnose run, or one that found nothing to fix).
 *   Observed once per run, by the replica executing it at that moment; a run resumed after an approval or a
 *   hand-over is not observed again (one edge: a hand-over in the middle of the very first plan may count
 *   that run twice).
 * - `runbook_alert_to_recovery_seconds{runbook}`: for the same runs in execute mode (including "ask"), from
 *   the alert's `startsAt` to the run ending `succeeded`.
 * - `runbook_remediation_budget_remaining{action,resource_prefix}`: for each engine budget rule
 *   (`budgets`), `max` minus the spend of the rule's most-used resource in its sliding window, read from the
 *   store at scrape time (same on every replica; aggregate with `min` or `max`). `resource_prefix` is empty
 *   for a rule over every resource. Resources an earlier rule for the same action already matches are not
 *   counted (the first matching rule wins, as when spending). `NaN` when the store does not answer.
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

  const alertDiagnosis = new Histogram({
    name: 'runbook_alert_to_diagnosis_seconds',
    help: 'From the alert start to the diagnosis (checks done: first plan, or the run ended) of alert-started runs.',
    labelNames: ['runbook'] as const,
    buckets: [...ALERT_LATENCY_BUCKETS],
    registers: [registry],
    async collect() {
      await Promise.allSettled([...pending]);
    },
  });
  const alertRecovery = new Histogram({
    name: 'runbook_alert_to_recovery_seconds',
    help: 'From the alert start to the successful end of alert-started runs in execute mode.',
    labelNames: ['runbook'] as const,
    buckets: [...ALERT_LATENCY_BUCKETS],
    registers: [registry],
    async collect() {
      await Promise.allSettled([...pending]);
    },
  });
  const budgetRemaining = new Gauge({
    name: 'runbook_remediation_budget_remaining',
    help: 'Applies left in the current window of each budget rule, for its most-used resource (whole store).',
    labelNames: ['action', 'resource_prefix'] as const,
    async collect() {
      const rules = distinctRules(engine.budgetRules());
      try {
        const remaining = await withTimeout(budgetsRemaining(engine, rules), storeTimeoutMs);
        for (const [i, rule] of rules.entries()) this.set(budgetLabels(rule), remaining[i] ?? Number.NaN);
      } catch (e) {
        onError(e, 'reading spent budgets');
        for (const rule of rules) this.set(budgetLabels(rule), Number.NaN);
      }
    },
    registers: [registry],
  });

  const alertRuns = new AlertRuns(engine);
  /** Runs `observe` with the run's alert state once it is known; a scrape waits for it. */
  const withAlertRun = (runId: string, at: number, observe: (run: AlertRun) => void) => {
    const observed = alertRuns
      .get(runId, at)
      .then((run) => {
        if (run.startsAt !== null) observe(run);
      })
      .catch((err: unknown) => onError(err, 'reading an alert-started run'))
      .finally(() => pending.delete(observed));
    pending.add(observed);
    return observed;
  };
  const diagnosed = (runbook: string, at: number) => (run: AlertRun) => {
    if (run.diagnosed || run.startsAt === null) return;
    run.diagnosed = true;
    alertDiagnosis.observe({ runbook }, Math.max(0, at - run.startsAt) / 1000);
  };

  const listeners = [
    // The first event of an execution fixes what "before this execution" means (see AlertRuns).
    engine.onStepStart((e) => {
      const at = Date.now();
      if (e.kind === 'act') withAlertRun(e.runId, at, diagnosed(e.runbookId, at));
      else alertRuns.touch(e.runId, at);
    }),
    engine.onStepEnd((e) => {
      const at = Date.now();
      if (e.kind === 'approve' && !e.replayed) withAlertRun(e.runId, at, diagnosed(e.runbookId, at));
      else alertRuns.touch(e.runId, at);
    }),
    engine.onApprovalRequested((e) => {
      const at = Date.now();
      withAlertRun(e.runId, at, diagnosed(e.runbookId, at));
    }),
    engine.onRunEnd((e) => {
      const at = Date.now();
      const done = withAlertRun(e.runId, at, (run) => {
        if (e.status === 'succeeded' || e.status === 'escalated') diagnosed(e.runbookId, at)(run);
        if (e.status === 'succeeded' && e.mode === 'execute' && run.startsAt !== null) {
          alertRecovery.observe({ runbook: e.runbookId }, Math.max(0, at - run.startsAt) / 1000);
        }
      });
      // Suspended or ended: the next execution (after an approval, on any replica) starts afresh.
      void done.finally(() => alertRuns.forget(e.runId));
    }),
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

  const names = [
    runs,
    runDuration,
    stepDuration,
    lockContention,
    approvalsPending,
    alertDiagnosis,
    alertRecovery,
    budgetRemaining,
  ].map((m) => (m as unknown as { name: string }).name);
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

/** What the alert metrics know of a run being executed in this process. */
interface AlertRun {
  /** The alert's `startsAt` (ms), or `null` when the run was not started by an alert. */
  readonly startsAt: number | null;
  /** Whether its diagnosis was observed (here, or by an earlier execution of the run). */
  diagnosed: boolean;
}

/** Runs not heard of for this long are forgotten; a later event loads them again from the store. */
const ALERT_RUN_IDLE_MS = 15 * 60_000;

/**
 * The runs this process executes, each read from the store once per execution: its context (is it an
 * alert run, since when), and whether an earlier execution already got past the diagnosis.
 */
class AlertRuns {
  /** `seenAt`: the run's latest event, to forget runs handed over (they send no end event). */
  readonly #runs = new Map<string, { run: Promise<AlertRun>; seenAt: number }>();
  constructor(readonly engine: Engine) {}

  /** Notes an event of the run, loading it on its first event of this execution. */
  touch(runId: string, at: number): void {
    void this.get(runId, at).catch(() => {});
  }

  get(runId: string, at: number): Promise<AlertRun> {
    const known = this.#runs.get(runId);
    if (known) {
      known.seenAt = at;
      return known.run;
    }
    for (const [id, entry] of this.#runs) if (at - entry.seenAt > ALERT_RUN_IDLE_MS) this.#runs.delete(id);
    const run = this.#load(runId, at);
    this.#runs.set(runId, { run, seenAt: at });
    run.catch(() => this.#runs.delete(runId));
    return run;
  }

  forget(runId: string): void {
    this.#runs.delete(runId);
  }

  async #load(runId: string, firstSeenAt: number): Promise<AlertRun> {
    const store = this.engine.store;
    const record = await store.getRun(runId);
    const startsAt = alertStart(record?.context ?? null);
    if (startsAt === null || !record) return { startsAt: null, diagnosed: true };
    // A first execution has nothing before it. A later one (after an approval or a hand-over) is past the
    // diagnosis if an earlier one asked for an approval or got to an act or approve step.
    if (record.attempts <= 1) return { startsAt, diagnosed: false };
    const [steps, approvals] = await Promise.all([store.getSteps(runId), store.listApprovals(runId)]);
    const diagnosed =
      approvals.length > 0 ||
      steps.some((s) => (s.kind === 'act' || s.kind === 'approve') && s.startedAt.getTime() < firstSeenAt);
    return { startsAt, diagnosed };
  }
}

/** The `startsAt` (ms) of the alert that started a run, from its stored context; `null` for other runs. */
function alertStart(context: Json | null): number | null {
  if (typeof context !== 'object' || context === null || Array.isArray(context)) return null;
  if (context.source !== 'alertmanager') return null;
  const alert = context.alert;
  if (typeof alert !== 'object' || alert === null || Array.isArray(alert)) return null;
  const startsAt = typeof alert.startsAt === 'string' ? Date.parse(alert.startsAt) : Number.NaN;
  return Number.isFinite(startsAt) ? startsAt : null;
}

/** Rules as shown: one per action and prefix (a later duplicate never matches, the first one wins). */
function distinctRules(rules: readonly ActiveBudgetRule[]): ActiveBudgetRule[] {
  const seen = new Set<string>();
  return rules.filter((rule) => {
    const key = `${rule.action}\u0000${rule.resourcePrefix ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function budgetLabels(rule: ActiveBudgetRule): { action: string; resource_prefix: string } {
  return { action: rule.action, resource_prefix: rule.resourcePrefix ?? '' };
}

/**
 * For each rule, `max` minus the most-used resource's spend in the rule's window (never below 0): the same
 * count `beginAction` compares with `max` (spends after now − window), per resource the rule governs.
 */
async function budgetsRemaining(engine: Engine, rules: readonly ActiveBudgetRule[]): Promise<number[]> {
  const now = Date.now();
  return Promise.all(
    rules.map(async (rule, i) => {
      const rows = await engine.store.driver.query<{ resource: string; n: number | string }>(
        `SELECT resource, count(*)::int AS n FROM budget_spend
          WHERE action = $1 AND spent_at > $2 AND left(resource, length($3)) = $3
          GROUP BY resource`,
        [rule.action, new Date(now - rule.perMs).toISOString(), rule.resourcePrefix ?? ''],
      );
      const earlier = rules.slice(0, i).filter((r) => r.action === rule.action);
      const governed = rows.filter(
        (row) => !earlier.some((r) => row.resource.startsWith(r.resourcePrefix ?? '')),
      );
      const used = Math.max(0, ...governed.map((row) => Number(row.n)));
      return Math.max(0, rule.max - used);
    }),
  );
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
