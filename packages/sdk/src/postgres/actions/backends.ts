import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { type Finding, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { type Action, type Applied, defineAction, type StepContext } from '../../core/step';
import { queryText } from '../checks/wording';
import type { PostgresDatabase } from '../database';
import { Identifier, utcText } from './relations';

/** `pg_stat_activity.state`. */
export const BackendState = z.enum([
  'active',
  'idle',
  'idle in transaction',
  'idle in transaction (aborted)',
  'fastpath function call',
  'disabled',
]);
export type BackendState = z.infer<typeof BackendState>;

const oneOrMany = <T extends z.ZodType>(item: T) =>
  z.union([item, z.array(item).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

/** Which backends to signal. Every given condition must hold; at least one that narrows the set is required. */
export const BackendFilter = z
  .object({
    /**
     * How long the backend has been in its current state: for an `active` one, how long its query has run
     * (`now - query_start`); for an idle one, since `state_change`. @default any
     */
    minDuration: Duration.optional(),
    /** `pg_stat_activity.state` values. @default "active" */
    state: oneOrMany(BackendState).default(['active']),
    /** Role names (`usename`). @default any */
    user: oneOrMany(Identifier).optional(),
    /** `application_name` values. @default any (except ours, always) */
    application: oneOrMany(z.string()).optional(),
    /** Database names. @default the database the action is connected to */
    database: oneOrMany(Identifier).optional(),
    /** A POSIX regular expression the query text must match (PostgreSQL's case-sensitive `~`). @default any */
    queryPattern: z.string().min(1).optional(),
    /** Exactly these backend pids (and only if they meet the other conditions). @default any */
    pids: z.array(z.number().int().positive()).min(1).optional(),
  })
  .refine(
    (f) =>
      f.minDuration !== undefined ||
      f.user !== undefined ||
      f.application !== undefined ||
      f.queryPattern !== undefined ||
      f.pids !== undefined,
    {
      message:
        'give at least one of minDuration, user, application, queryPattern or pids: a filter on state or database alone would match every session',
    },
  );
export type BackendFilter = z.output<typeof BackendFilter>;

const BackendsOptionsBase = z.object({
  filter: BackendFilter,
  /** Also signal sessions of superuser roles. @default false */
  includeSuperusers: z.boolean().default(false),
  /** Also signal replication connections (walsenders, logical replication workers). @default false */
  includeReplication: z.boolean().default(false),
  /** Refuse to plan when more backends than this match (a filter that is too wide). @default 50 */
  max: z.number().int().min(1).max(1_000).default(50),
  /** How long verify waits for the signalled backends to end (terminate) or stop the query (cancel). @default "10s" */
  verifyTimeout: Duration.default('10s'),
});

/** Options of {@link terminateBackends}. */
export const TerminateBackendsOptions = BackendsOptionsBase;
export type TerminateBackendsOptions = z.output<typeof TerminateBackendsOptions>;
export type TerminateBackendsOptionsInput = z.input<typeof TerminateBackendsOptions>;

/** Options of {@link cancelBackends}: only `active` backends have a query to cancel. */
export const CancelBackendsOptions = BackendsOptionsBase.refine(
  (o) => o.filter.state.every((s) => s === 'active'),
  { message: 'only "active" backends run a query that can be cancelled', path: ['filter', 'state'] },
);
export type CancelBackendsOptions = z.output<typeof CancelBackendsOptions>;
export type CancelBackendsOptionsInput = z.input<typeof CancelBackendsOptions>;

/**
 * A backend as planned: its identity (pid, session start, query start, query hash) and what people read.
 * Only values that stay the same while the backend runs the same query: params are part of the plan hash,
 * which approvals bind to, so a growing duration here would make every plan a new one (it is in the summary).
 */
export type PlannedBackend = {
  pid: number;
  /** `backend_start`, UTC with microseconds: with the pid, the session's identity (pids are reused). */
  backendStart: string;
  /** `query_start`, UTC with microseconds; `null` when it never ran a query. */
  queryStart: string | null;
  /**
   * `xact_start`, UTC with microseconds; `null` outside a transaction. A statement that waited for a lock while
   * being parsed (the extended protocol most drivers use) gets a new `query_start` when it goes on, in the
   * same transaction: the same statement, still the planned one.
   */
  xactStart?: string | null;
  /** `md5(query)`: the full text is not kept (it may be long, or hold literals nobody should store). */
  queryMd5: string | null;
  user: string | null;
  application: string;
};

/** What a cancel/terminate plan fixes. */
export type BackendsParams = {
  operation: 'cancel' | 'terminate';
  backends: PlannedBackend[];
  verifyTimeoutMs: number;
};

/** What the apply returns: which planned backends were signalled, and which were left alone and why. */
export type BackendsApplied = {
  signalled: number[];
  skipped: { pid: number; reason: string }[];
  failed: { pid: number; reason: string }[];
};

/**
 * `pg_terminate_backend` on the backends that match a filter: their sessions end and open transactions roll
 * back. **Destructive** (the work is lost and cannot be undone), risk `high`: needs approval by default.
 *
 * See {@link cancelBackends} for the plan, apply and verify rules, which are the same; verify here waits
 * until each signalled backend (pid + `backend_start`) is gone from `pg_stat_activity` (a planned one the
 * apply skipped must only no longer run the planned query). No revert.
 */
export function terminateBackends(
  db: PostgresDatabase,
  options: TerminateBackendsOptionsInput,
): Action<BackendsParams, BackendsApplied> {
  const o = parseOptions('pg.terminate-backends', TerminateBackendsOptions, options);
  return signalBackends(db, 'terminate', o);
}

/**
 * `pg_cancel_backend` on the backends that match a filter: their running query fails with SQLSTATE 57014,
 * the session stays. Not destructive (the client can run the query again), risk `medium`.
 *
 * - **plan** lists the exact backends from `pg_stat_activity`, one change each (`backend <pid>`: a summary
 *   with user, application, client, state, session and query start, query with password literals redacted and
 *   cut to 200 characters → `"cancelled"`); the duration is in the summary only, not in `before` or params,
 *   because it grows and the engine compares `before` values and plan hashes to tell whether the world changed
 *   since approval. Never listed: our own sessions (the database options' `applicationName`, and the planning
 *   session's pid), replication connections and other non-client backends, superuser sessions (unless
 *   `includeSuperusers` / `includeReplication`). More than `max` matches refuse the plan.
 * - **apply** signals only planned backends, each only while it is still the same session (pid and
 *   `backend_start`) running the same query (`md5(query)`, and `query_start` or, for a statement that waited
 *   for a lock while being parsed and went on, the same `xact_start`), checked in the very statement
 *   that signals it. Others are skipped and the log says why (ended, pid reused, another query now).
 * - **verify** waits (at most `verifyTimeout`) until none of the planned queries is still running.
 * - **revert**: none; a cancelled query cannot be un-cancelled.
 */
export function cancelBackends(
  db: PostgresDatabase,
  options: CancelBackendsOptionsInput,
): Action<BackendsParams, BackendsApplied> {
  const o = parseOptions('pg.cancel-backends', CancelBackendsOptions, options);
  return signalBackends(db, 'cancel', o);
}

type BackendRow = {
  pid: number;
  user: string | null;
  application: string;
  database: string | null;
  client: string | null;
  state: string | null;
  backend_start: string;
  query_start: string | null;
  xact_start: string | null;
  query_md5: string | null;
  query: string | null;
  duration_ms: string;
};

/**
 * SQL: session `a` still runs the planned statement — the same text, started at the planned time or still
 * in the planned transaction. `$md5`, `$queryStart`, `$xactStart` are the parameter references to use.
 */
function samePlannedStatement(md5: string, queryStart: string, xactStart: string): string {
  return `md5(a.query) IS NOT DISTINCT FROM ${md5}
          AND (${utcText('a.query_start')} IS NOT DISTINCT FROM ${queryStart}
               OR (${xactStart} IS NOT NULL AND ${utcText('a.xact_start')} = ${xactStart}))`;
}

const QUERY_SHOWN = 200;
/**
 * How much query text is read to be scrubbed before it is cut to {@link QUERY_SHOWN}: a password literal that
 * starts before the cut is found whole (and one cut by this read is redacted to the end anyway).
 */
const QUERY_READ = 4096;
const REPLICATION_TYPES = ['walsender', 'logical replication worker'];

function signalBackends(
  db: PostgresDatabase,
  operation: 'cancel' | 'terminate',
  o: TerminateBackendsOptions,
): Action<BackendsParams, BackendsApplied> {
  const kind = `pg.${operation}-backends`;
  const done = operation === 'cancel' ? 'cancelled' : 'terminated';
  const signalFn = operation === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend';
  const target = db.ref('backends');
  const ours = db.options.applicationName;

  return defineAction<BackendsParams, BackendsApplied>({
    kind,
    target,
    risk: operation === 'cancel' ? 'medium' : 'high',
    destructive: operation === 'terminate',
    description:
      operation === 'cancel'
        ? `Cancel the running queries of matching backends of ${db.name} (pg_cancel_backend)`
        : `Terminate matching backends of ${db.name} (pg_terminate_backend): their transactions roll back`,

    async plan(ctx) {
      const f = o.filter;
      const { rows } = await db.query<BackendRow>(
        `SELECT a.pid, a.usename AS "user", a.application_name AS application, a.datname AS database,
                CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr) || ':' || a.client_port
                     WHEN a.client_port = -1 THEN 'local socket' END AS client,
                a.state,
                ${utcText('a.backend_start')} AS backend_start,
                ${utcText('a.query_start')} AS query_start,
                ${utcText('a.xact_start')} AS xact_start,
                md5(a.query) AS query_md5, left(a.query, ${QUERY_READ}) AS query,
                d.ms::int8::text AS duration_ms
           FROM pg_catalog.pg_stat_activity a
           LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
           CROSS JOIN LATERAL (SELECT extract(epoch FROM clock_timestamp() -
                 CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END) * 1000 AS ms) d
          WHERE a.pid <> pg_backend_pid()
            AND a.application_name IS DISTINCT FROM $1
            AND (a.backend_type = 'client backend' OR ($2 AND a.backend_type = ANY($3::text[])))
            AND ($4 OR NOT coalesce(r.rolsuper, false))
            AND a.state = ANY($5::text[])
            AND (a.datname = ANY(coalesce($6::text[], ARRAY[current_database()]::text[]))
                 OR ($2 AND a.backend_type = 'walsender' AND a.datname IS NULL))
            AND ($7::int8 IS NULL OR d.ms >= $7)
            AND ($8::text[] IS NULL OR a.usename = ANY($8))
            AND ($9::text[] IS NULL OR a.application_name = ANY($9))
            AND ($10::text IS NULL OR a.query ~ $10)
            AND ($11::int4[] IS NULL OR a.pid = ANY($11))
          ORDER BY d.ms DESC, a.pid
          LIMIT $12`,
        [
          ours,
          o.includeReplication,
          REPLICATION_TYPES,
          o.includeSuperusers,
          f.state,
          f.database ?? null,
          f.minDuration === undefined ? null : toMillis(f.minDuration),
          f.user ?? null,
          f.application ?? null,
          f.queryPattern ?? null,
          f.pids ?? null,
          o.max + 1,
        ],
        { signal: ctx.signal },
      );
      if (rows.length > o.max) {
        throw new NonRetriableError(
          `More than ${o.max} backends of ${db.name} match the filter: refusing to ${operation} them all. Narrow the filter (minDuration, user, application, queryPattern) or raise \`max\` if that many is really meant.`,
          { code: 'PG_TOO_MANY_BACKENDS', details: { max: o.max } },
        );
      }
      const backends: PlannedBackend[] = rows.map((r) => ({
        pid: r.pid,
        backendStart: r.backend_start,
        queryStart: r.query_start,
        xactStart: r.xact_start,
        queryMd5: r.query_md5,
        user: r.user,
        application: r.application,
      }));
      const verb = operation === 'cancel' ? 'Cancel the queries of' : 'Terminate';
      const summary =
        rows.length === 0
          ? `No backend of ${db.name} matches the filter: nothing to ${operation}`
          : `${verb} ${rows.length} backend${rows.length === 1 ? '' : 's'} of ${db.name}${
              operation === 'terminate' ? ' (their sessions end, open transactions roll back)' : ''
            }: ${rows
              .slice(0, 5)
              .map(
                (r) =>
                  `pid ${r.pid} (${r.user ?? '?'}${r.application ? `, ${r.application}` : ''}, ${r.state} ${formatMillis(Number(r.duration_ms))})`,
              )
              .join(', ')}${rows.length > 5 ? `, and ${rows.length - 5} more` : ''}`;
      return {
        summary,
        changes: rows.map((r) => ({
          target: db.ref('pid', String(r.pid)),
          field: `backend ${r.pid}`,
          before: {
            pid: r.pid,
            user: r.user,
            application: r.application,
            database: r.database,
            client: r.client,
            state: r.state,
            backendStart: r.backend_start,
            queryStart: r.query_start,
            // Scrubbed of password literals, then cut: the plan is sealed, shown to approvers and audited.
            query: queryText(r.query, QUERY_SHOWN),
          },
          after: done,
        })),
        params: { operation, backends, verifyTimeoutMs: toMillis(o.verifyTimeout) },
      };
    },

    async apply(ctx, plan) {
      const result: BackendsApplied = { signalled: [], skipped: [], failed: [] };
      for (const b of plan.params.backends) {
        ctx.signal.throwIfAborted();
        try {
          const { rows } = await db.query<{ signalled: boolean }>(
            `SELECT ${signalFn}(a.pid) AS signalled
               FROM pg_catalog.pg_stat_activity a
              WHERE a.pid = $1 AND a.pid <> pg_backend_pid() AND a.application_name IS DISTINCT FROM $2
                AND ${utcText('a.backend_start')} = $3
                AND ${samePlannedStatement('$5', '$4::text', '$6::text')}
                ${operation === 'cancel' ? "AND a.state = 'active'" : ''}`,
            [b.pid, ours, b.backendStart, b.queryStart, b.queryMd5, b.xactStart ?? null],
            { signal: ctx.signal },
          );
          const row = rows[0];
          if (!row) {
            const reason = await whyNotSame(db, b, operation, ctx.signal);
            result.skipped.push({ pid: b.pid, reason });
            ctx.log(`skipped pid ${b.pid}: ${reason}`);
          } else if (row.signalled) {
            result.signalled.push(b.pid);
            ctx.log(`${done} pid ${b.pid}`);
          } else {
            const reason = `PostgreSQL did not signal it (${signalFn} returned false: not permitted, or it just ended)`;
            result.failed.push({ pid: b.pid, reason });
            ctx.log(`could not ${operation} pid ${b.pid}: ${reason}`);
          }
        } catch (e) {
          if (ctx.signal.aborted) throw e;
          const reason = e instanceof Error ? e.message : String(e);
          result.failed.push({ pid: b.pid, reason });
          ctx.log(`could not ${operation} pid ${b.pid}: ${reason}`);
        }
      }
      return result;
    },

    async verify(ctx, applied) {
      return awaitSignalled(db, applied, ctx);
    },
  });
}

/** Why a planned backend was not signalled, for the log: it ended, its pid was reused, or it runs something else. */
async function whyNotSame(
  db: PostgresDatabase,
  b: PlannedBackend,
  operation: 'cancel' | 'terminate',
  signal: AbortSignal,
): Promise<string> {
  const { rows } = await db.query<{
    backend_start: string;
    same_statement: boolean;
    state: string | null;
  }>(
    `SELECT ${utcText('a.backend_start')} AS backend_start,
            (${samePlannedStatement('$2', '$3::text', '$4::text')}) AS same_statement, a.state
       FROM pg_catalog.pg_stat_activity a WHERE a.pid = $1`,
    [b.pid, b.queryMd5, b.queryStart, b.xactStart ?? null],
    { signal },
  );
  const now = rows[0];
  if (!now) return 'the backend has ended since the plan';
  if (now.backend_start !== b.backendStart)
    return 'the pid now belongs to another session (reused since the plan)';
  if (!now.same_statement) {
    return 'the session now runs another query than the planned one';
  }
  if (operation === 'cancel' && now.state !== 'active')
    return `the planned query has finished (now ${now.state})`;
  return 'it is no longer eligible (our own session?)';
}

/** Verify of both: polls until none of the planned backends (terminate) or queries (cancel) remains. */
async function awaitSignalled(
  db: PostgresDatabase,
  applied: Applied<BackendsParams, BackendsApplied>,
  ctx: StepContext,
): Promise<Finding<{ remaining: number[]; skipped: number[]; failed: { pid: number; reason: string }[] }>> {
  const p = applied.plan.params;
  const backends = p.backends;
  const skipped = applied.data?.skipped.map((s) => s.pid) ?? [];
  const failed = applied.data?.failed ?? [];
  const signalled = new Set(applied.data?.signalled ?? []);
  const failedPids = new Set(failed.map((f) => f.pid));
  const verb = p.operation === 'cancel' ? 'cancelled' : 'terminated';
  const deadline = Date.now() + p.verifyTimeoutMs;
  let remaining: number[] = [];
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    // Terminate: a signalled session must be gone. Otherwise (cancel, or a session the apply did not signal)
    // the planned query must no longer be running.
    const { rows } = await db.query<{ pid: number }>(
      `SELECT p.pid
         FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[])
              AS p(pid, backend_start, query_start, query_md5, must_be_gone, xact_start)
         JOIN pg_catalog.pg_stat_activity a ON a.pid = p.pid AND ${utcText('a.backend_start')} = p.backend_start
        WHERE p.must_be_gone
           OR (a.state = 'active' AND ${samePlannedStatement('p.query_md5', 'p.query_start', 'p.xact_start')})
        ORDER BY p.pid`,
      [
        backends.map((b) => b.pid),
        backends.map((b) => b.backendStart),
        backends.map((b) => b.queryStart),
        backends.map((b) => b.queryMd5),
        // A terminate that could not be signalled must still show as connected, not as done.
        backends.map((b) => p.operation === 'terminate' && (signalled.has(b.pid) || failedPids.has(b.pid))),
        backends.map((b) => b.xactStart ?? null),
      ],
      { signal: ctx.signal },
    );
    remaining = rows.map((r) => r.pid);
    const left = deadline - Date.now();
    if (remaining.length === 0 || left <= 0) break;
    await sleep(Math.min(delay, left), ctx.signal);
  }
  const data = { remaining, skipped, failed };
  const evidence = [
    {
      kind: 'table' as const,
      title: 'Planned backends',
      columns: ['pid', 'user', 'application', 'outcome'],
      rows: backends.map((b) => [
        b.pid,
        b.user,
        b.application,
        remaining.includes(b.pid)
          ? 'still there'
          : failedPids.has(b.pid)
            ? `not signalled: ${failed.find((f) => f.pid === b.pid)?.reason ?? ''}`
            : skipped.includes(b.pid)
              ? 'skipped (ended or changed before the apply)'
              : verb,
      ]),
    },
  ];
  if (remaining.length > 0) {
    const why = failed.length
      ? `; not signalled: ${failed.map((f) => `pid ${f.pid}: ${f.reason}`).join('; ')}`
      : '';
    return finding(
      'fail',
      `${remaining.length} of ${backends.length} planned backend${backends.length === 1 ? '' : 's'} still ${
        p.operation === 'cancel' ? 'running the planned query' : 'connected'
      } after ${formatMillis(p.verifyTimeoutMs)}: pid ${remaining.join(', ')}${why}`,
      data,
      evidence,
    );
  }
  const done = backends.length - skipped.length - failed.length;
  if (failed.length > 0) {
    // Not signalled, yet no longer running the planned statement (a cancel): it moved on by itself.
    return finding(
      'warn',
      `${done} backend${done === 1 ? '' : 's'} ${verb}; not signalled: ${failed.map((f) => `pid ${f.pid}: ${f.reason}`).join('; ')}; none runs the planned query any more`,
      data,
      evidence,
    );
  }
  return finding(
    'ok',
    `${done} backend${done === 1 ? '' : 's'} ${verb}${
      skipped.length ? `, ${skipped.length} skipped (ended or changed before the apply)` : ''
    }; none of the planned ${p.operation === 'cancel' ? 'queries is still running' : 'sessions remains'}`,
    data,
    evidence,
  );
}
