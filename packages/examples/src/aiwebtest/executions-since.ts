/**
 * What runbooks 3 and 9 share to judge their recovery: a query on the application database, repeated until
 * the test executions taken after the recovery answer the question or the wait is over, and checks whose
 * findings are re-worded to name the cause.
 */
import {
  type Check,
  defineCheck,
  type Finding,
  isReplayableCheck,
  type Json,
  type ReplayableCheck,
} from '@aiwebtest/runbooks';
import type { AiWebTest } from './environment';

/** A parameterized SQL query on the application database (rows as the driver returns them). */
export type SqlQuery = (
  sql: string,
  params: unknown[],
  signal: AbortSignal,
) => Promise<{ rows: Record<string, unknown>[] }>;

/** The platform's database as a {@link SqlQuery}: the step's signal cancels the statement. */
export function sqlQueryOf(platform: AiWebTest): SqlQuery {
  return (sql, params, signal) => platform.db.db.query(sql, params, { signal });
}

/**
 * A check whose finding is re-worded (to name the cause) without changing what it reads. A replayable check
 * stays replayable: its observation is the same, judged and then re-worded.
 */
export function reworded<T, O>(
  check: ReplayableCheck<T, O>,
  rewrite: (f: Finding<T>) => Finding<T>,
): ReplayableCheck<T, O>;
export function reworded<T>(check: Check<T>, rewrite: (f: Finding<T>) => Finding<T>): Check<T>;
export function reworded<T>(check: Check<T>, rewrite: (f: Finding<T>) => Finding<T>): Check<T> {
  const { kind, description } = check;
  const about = description === undefined ? { kind } : { kind, description };
  if (isReplayableCheck(check)) {
    return defineCheck({
      ...about,
      read: (ctx) => check.read(ctx),
      judge: (seen: Json) => rewrite(check.judge(seen)),
    });
  }
  return defineCheck<T>({ ...about, run: async (ctx) => rewrite(await check.run(ctx)) });
}

/** Waits `ms`; the step's signal ends the wait with its reason. */
export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/** One look at the executions taken since `since` (ISO time), `waitedMs` after the first. */
export interface ExecutionsLook {
  since: string;
  rows: Record<string, unknown>[];
  waitedMs: number;
}

/**
 * Runs `sql` with `[since]` (the moment the check starts, as an ISO time) once a second until `done` holds for
 * a look, or `timeoutMs` has passed; returns the last look. The step's signal stops the wait.
 */
export async function lookUntil(
  query: SqlQuery,
  signal: AbortSignal,
  options: { sql: string; timeoutMs: number; done(look: ExecutionsLook): boolean },
): Promise<ExecutionsLook> {
  const started = Date.now();
  const since = new Date(started).toISOString();
  for (;;) {
    const { rows } = await query(options.sql, [since], signal);
    const look = { since, rows, waitedMs: Date.now() - started };
    if (options.done(look) || look.waitedMs >= options.timeoutMs) return look;
    await sleep(Math.min(1000, options.timeoutMs - look.waitedMs), signal);
  }
}

/**
 * Runs `sql` with `[since]` (the moment the check starts, as an ISO time) once a second until `judge` returns
 * a finding, or `timeoutMs` has passed: then the finding of `timedOut` on the last look. The step's signal
 * stops the wait.
 */
export async function pollExecutionsSince<T>(
  query: SqlQuery,
  signal: AbortSignal,
  options: {
    sql: string;
    timeoutMs: number;
    judge(look: ExecutionsLook): Finding<T> | undefined;
    timedOut(look: ExecutionsLook): Finding<T>;
  },
): Promise<Finding<T>> {
  let judged: Finding<T> | undefined;
  const look = await lookUntil(query, signal, {
    sql: options.sql,
    timeoutMs: options.timeoutMs,
    done: (l) => {
      judged = options.judge(l);
      return judged !== undefined;
    },
  });
  return judged ?? options.timedOut(look);
}
