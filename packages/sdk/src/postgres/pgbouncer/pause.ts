import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import { type Action, defineAction } from '../../core/step';
import {
  ADMIN_DB,
  adminCommand,
  isPgBouncerError,
  type PauseState,
  type PgBouncerConsole,
  PgBouncerDatabaseName,
  PgBouncerError,
  parsePool,
} from './console';
import { listSome, plural } from './wording';

/** Options of {@link pause}. */
export const PauseOptions = z.object({
  /** The database to pause (`PAUSE <db>`). @default every database (`PAUSE`) */
  database: PgBouncerDatabaseName.optional(),
  /**
   * How long the apply waits for transactions in flight to release their server connections. Past it the
   * pause is withdrawn (`RESUME`), so traffic flows again, and the step fails. @default "10s"
   */
  timeout: Duration.default('10s'),
});
export type PauseOptions = z.output<typeof PauseOptions>;
export type PauseOptionsInput = z.input<typeof PauseOptions>;

/** What a pause plan fixes. */
export type PauseParams = {
  /** `null` for every database. */
  database: string | null;
  timeoutMs: number;
};

/** What the apply of {@link pause} returns. */
export type PauseApplied = {
  /** How long `PAUSE` took to return: the wait for transactions in flight. */
  waitedMs: number;
};

const PAUSE_KIND = 'pgbouncer.pause';

/**
 * PgBouncer's `PAUSE [db]`: new transactions of the database (or of every database) wait in PgBouncer until
 * `RESUME`; clients stay connected. PgBouncer first waits for transactions in flight to release their server
 * connections, then closes its server connections to the database. Use it around a PostgreSQL restart or
 * switchover so that clients queue instead of failing.
 *
 * - **plan** checks the database against `SHOW DATABASES` (an unknown name is refused before any command)
 *   and reads whether it is already paused; the change is `paused: false → true` (none when already paused,
 *   also by a global `PAUSE`). The summary says what pauses and how many transactions it will wait for.
 * - **apply** sends `PAUSE "<db>"` (or `PAUSE`) and waits at most `timeout` for it to return. On timeout or
 *   cancellation it sends `RESUME` to withdraw the half-done pause and fails with `PGBOUNCER_PAUSE_TIMEOUT`.
 * - **verify**: `SHOW DATABASES` shows `paused = 1` for the database; for a global pause, the console's
 *   global state (see {@link PgBouncerConsole.pauseState}). `unknown` when PgBouncer cannot tell.
 * - **revert** sends `RESUME` for the same scope (nothing when it is no longer paused).
 *
 * Risk `high`: it stops the traffic of the database until someone resumes it. Not destructive: queued
 * transactions run after the resume (unless clients time out meanwhile).
 */
export function pause(
  bouncer: PgBouncerConsole,
  options: PauseOptionsInput = {},
): Action<PauseParams, PauseApplied> {
  const o = parseOptions(PAUSE_KIND, PauseOptions, options);
  const database = o.database ?? null;
  const target = bouncer.ref(database);
  const what = database ? `database ${database}` : 'every database';
  return defineAction<PauseParams, PauseApplied>({
    kind: PAUSE_KIND,
    target,
    risk: 'high',
    destructive: false,
    description: `Pause ${what} on PgBouncer ${bouncer.name} (PAUSE): new transactions wait until resume`,

    async plan(ctx) {
      const signal = ctx.signal;
      if (database) await bouncer.requireDatabase(database, { signal });
      const state = await bouncer.pauseState({ signal });
      const params = { database, timeoutMs: toMillis(o.timeout) };
      const already = isPaused(state, database);
      if (already) {
        return {
          summary:
            database && state.global === true
              ? `PgBouncer ${bouncer.name} is paused globally: ${what} is already paused`
              : `${capitalize(what)} is already paused on PgBouncer ${bouncer.name}`,
          changes: [],
          params,
        };
      }
      const inFlight = (await bouncer.show('POOLS', { signal }))
        .map(parsePool)
        .filter((p) => p.database !== ADMIN_DB && (!database || p.database === database))
        .reduce((sum, p) => sum + p.svActive, 0);
      return {
        summary: `Pause ${what} on PgBouncer ${bouncer.name}: new transactions wait until resume; waits up to ${formatMillis(params.timeoutMs)} for ${plural(inFlight, 'transaction')} in flight`,
        changes: [{ target, field: 'paused', before: already === null ? null : false, after: true }],
        params,
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const started = Date.now();
      try {
        await bouncer.command(adminCommand('PAUSE', p.database), {
          signal: ctx.signal,
          timeoutMs: p.timeoutMs,
        });
      } catch (e) {
        const timedOut = isPgBouncerError(e) && e.code === 'PGBOUNCER_TIMEOUT';
        if (!timedOut && !ctx.signal.aborted) throw e;
        // PgBouncer is paused already and waits for transactions: withdraw it, so traffic flows again.
        await withdraw(bouncer, p.database, ctx);
        if (ctx.signal.aborted) throw ctx.signal.reason;
        throw new PgBouncerError(
          'PGBOUNCER_PAUSE_TIMEOUT',
          `PAUSE of ${what} on PgBouncer ${bouncer.display} did not finish within ${formatMillis(p.timeoutMs)}: transactions in flight still held server connections. The pause was withdrawn (RESUME) and traffic flows again. Retry when long transactions have finished, or raise \`timeout\`.`,
          { retriable: true, details: { database: p.database, timeoutMs: p.timeoutMs } },
        );
      }
      const waitedMs = Date.now() - started;
      ctx.log(`paused ${what} on PgBouncer ${bouncer.name} after ${formatMillis(waitedMs)}`);
      return { waitedMs };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const state = await bouncer.pauseState({ signal: ctx.signal });
      const paused = isPaused(state, p.database);
      const data = { database: p.database, paused, global: state.global };
      if (paused === null) {
        return finding(
          'unknown',
          `PgBouncer ${bouncer.name} cannot say whether it is paused globally (needs an admin user)`,
          data,
        );
      }
      return paused
        ? finding('ok', `${capitalize(what)} is paused on PgBouncer ${bouncer.name}`, data)
        : finding(
            'fail',
            `${capitalize(what)} is not paused on PgBouncer ${bouncer.name}: someone resumed it, or PgBouncer restarted`,
            data,
          );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      const resumed = await resumeIfPaused(bouncer, p.database, ctx.signal);
      ctx.log(
        resumed
          ? `resumed ${what} on PgBouncer ${bouncer.name}`
          : `${what} was no longer paused on PgBouncer ${bouncer.name}`,
      );
    },
  });
}

/** Options of {@link resume}. */
export const ResumeOptions = z.object({
  /** The database to resume (`RESUME <db>`). @default everything paused: the global pause and every paused database */
  database: PgBouncerDatabaseName.optional(),
});
export type ResumeOptions = z.output<typeof ResumeOptions>;
export type ResumeOptionsInput = z.input<typeof ResumeOptions>;

/** What a resume plan fixes. */
export type ResumeParams = {
  database: string | null;
  /** Send a global `RESUME`. */
  global: boolean;
  /** Databases to `RESUME "<db>"`. */
  databases: string[];
};

const RESUME_KIND = 'pgbouncer.resume';

/**
 * PgBouncer's `RESUME [db]`: transactions waiting in PgBouncer run again.
 *
 * - **plan** reads what is paused. With `database`, the change is `paused: true → false` for it (none when it
 *   is not paused); when PgBouncer is paused globally instead, the plan refuses with
 *   `PGBOUNCER_PAUSED_GLOBALLY` (resuming the database alone would not let its traffic through). Without
 *   `database` it resumes everything paused: the global pause and every database paused on its own, one change
 *   each.
 * - **apply** sends those `RESUME`s; one that finds its target no longer paused is fine.
 * - **verify**: none of the planned targets is paused any more.
 * - No revert: pausing traffic again is never an automatic reaction.
 *
 * Risk `low`: it lets traffic through again. Not destructive.
 */
export function resume(
  bouncer: PgBouncerConsole,
  options: ResumeOptionsInput = {},
): Action<ResumeParams, null> {
  const o = parseOptions(RESUME_KIND, ResumeOptions, options);
  const database = o.database ?? null;
  const target = bouncer.ref(database);
  const what = database ? `database ${database}` : 'everything paused';
  return defineAction<ResumeParams, null>({
    kind: RESUME_KIND,
    target,
    risk: 'low',
    destructive: false,
    description: `Resume ${what} on PgBouncer ${bouncer.name} (RESUME)`,

    async plan(ctx) {
      const signal = ctx.signal;
      if (database) {
        const db = await bouncer.requireDatabase(database, { signal });
        if (!db.paused) {
          const state = await bouncer.pauseState({ signal });
          if (state.global === true) {
            throw new PgBouncerError(
              'PGBOUNCER_PAUSED_GLOBALLY',
              `Database ${database} is not paused on its own: PgBouncer ${bouncer.display} is paused globally (PAUSE without a database). Resume without \`database\` to lift the global pause.`,
              { retriable: false, details: { database } },
            );
          }
          return {
            summary: `Database ${database} is not paused on PgBouncer ${bouncer.name}`,
            changes: [],
            params: { database, global: false, databases: [] },
          };
        }
        return {
          summary: `Resume database ${database} on PgBouncer ${bouncer.name}: its waiting transactions run`,
          changes: [{ target, field: 'paused', before: true, after: false }],
          params: { database, global: false, databases: [database] },
        };
      }
      const state = await bouncer.pauseState({ signal });
      const pausedDbs = state.databases.filter((d) => d.paused).map((d) => d.name);
      const changes: Change[] = [];
      if (state.global !== false) {
        changes.push({ target: bouncer.ref(), field: 'paused', before: state.global, after: false });
      }
      for (const name of pausedDbs) {
        changes.push({ target: bouncer.ref(name), field: 'paused', before: true, after: false });
      }
      const parts = [
        ...(state.global === true ? ['the global pause'] : []),
        ...pausedDbs.map((n) => `database ${n}`),
      ];
      return {
        summary:
          changes.length === 0
            ? `Nothing is paused on PgBouncer ${bouncer.name}`
            : `Resume ${parts.length ? listSome(parts, 5) : 'the global pause (if any)'} on PgBouncer ${bouncer.name}`,
        changes,
        params: { database: null, global: state.global !== false, databases: pausedDbs },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      if (p.global) await resumeIfPaused(bouncer, null, ctx.signal);
      for (const name of p.databases) await resumeIfPaused(bouncer, name, ctx.signal);
      ctx.log(`resumed ${what} on PgBouncer ${bouncer.name}`);
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const state = await bouncer.pauseState({ signal: ctx.signal });
      const still = [
        ...(p.global && state.global === true ? ['the global pause'] : []),
        ...state.databases.filter((d) => d.paused && p.databases.includes(d.name)).map((d) => d.name),
      ];
      const data = { database: p.database, stillPaused: still, global: state.global };
      return still.length === 0
        ? finding('ok', `Resumed ${what} on PgBouncer ${bouncer.name}: nothing of it is paused`, data)
        : finding('fail', `Still paused on PgBouncer ${bouncer.name}: ${listSome(still)}`, data);
    },
  });
}

/** Whether the scope is paused: a database by itself or by a global pause; `null` when PgBouncer cannot tell. */
function isPaused(state: PauseState, database: string | null): boolean | null {
  if (database === null) return state.global;
  if (state.databases.find((d) => d.name === database)?.paused) return true;
  return state.global;
}

/** `RESUME [db]`; false when it was not paused (PgBouncer answers "not paused"). */
async function resumeIfPaused(
  bouncer: PgBouncerConsole,
  database: string | null,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    await bouncer.command(adminCommand('RESUME', database), signal ? { signal } : {});
    return true;
  } catch (e) {
    if (isPgBouncerError(e) && e.code === 'PGBOUNCER_ERROR' && /not paused/i.test(e.message)) return false;
    throw e;
  }
}

async function withdraw(
  bouncer: PgBouncerConsole,
  database: string | null,
  ctx: { log(message: string): void },
): Promise<void> {
  try {
    await resumeIfPaused(bouncer, database); // not bound by the step's signal: this must happen
    ctx.log(`withdrew the unfinished PAUSE of ${database ?? 'every database'} (RESUME)`);
  } catch (e) {
    throw new PgBouncerError(
      'PGBOUNCER_PAUSE_TIMEOUT',
      `PAUSE of ${database ?? 'every database'} on PgBouncer ${bouncer.display} did not finish, and withdrawing it (RESUME) failed: ${e instanceof Error ? e.message : String(e)} Traffic may still be paused: run the resume action or RESUME on the console now.`,
      { retriable: false, cause: e },
    );
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
