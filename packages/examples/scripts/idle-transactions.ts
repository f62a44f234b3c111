/**
 * A runbook with primitives of its own: sessions of an application role left idle inside a transaction.
 *
 * Such a session holds its row locks (writers queue behind it) and its snapshot (VACUUM cannot clean up
 * behind it) until it ends; the usual cause is a request that died between `BEGIN` and `COMMIT` in a pool.
 * The runbook finds them, makes PostgreSQL end the next ones by itself (`idle_in_transaction_session_timeout`
 * for the role), and, once a second person approves, terminates the ones stuck now.
 *
 * It is written the way the authoring guide (AUTHORING.md of `@aiwebtest/runbooks`) teaches:
 * - {@link idleTransactions} is a **replayable check**: `read` returns what it saw as plain JSON, `judge` turns
 *   that into a finding against thresholds given as options, with no I/O. The engine stores the observation,
 *   so `runbook replay <fixture> --input maxSeconds=30` judges a past incident again with a new threshold.
 * - {@link setIdleInTransactionTimeout} is an **action**: `plan` reads the setting and says exactly what
 *   changes (before → after), `apply` makes that change and nothing else, `verify` reads it back, `revert`
 *   restores what was there; its risk, `destructive: false` and a budget are declared, not implied.
 * - the destructive part reuses the SDK's `terminateBackends`, which the default policy sends for approval.
 *
 * ```sh
 * DATABASE_URL=postgres://runbooks@db:5432/aiwebtest \
 *   runbook plan idle-transactions --runbooks ./scripts/idle-transactions.ts --input role=aiwebtest_app
 * ```
 *
 * Node loads this file as it is (type stripping): it imports packages only and keeps to erasable TypeScript.
 */
import {
  type Action,
  Duration,
  defineAction,
  defineCheck,
  defineRunbook,
  type Evidence,
  finding,
  formatMillis,
  NonRetriableError,
  parseOptions,
  type ReplayableCheck,
  type StepContext,
  toMillis,
} from '@aiwebtest/runbooks';
import {
  connectPostgres,
  type PostgresDatabase,
  quoteIdent,
  terminateBackends,
} from '@aiwebtest/runbooks/postgres';
import { z } from 'zod';

/** A PostgreSQL role or database name: any text of 1–63 bytes without NUL; always quoted when used in SQL. */
export const PgName = z
  .string()
  .min(1, 'expected a name')
  .refine((name) => Buffer.byteLength(name) <= 63 && !name.includes('\0'), {
    error: 'expected a PostgreSQL name: at most 63 bytes, no NUL character',
  });

// ---------------------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------------------

/** Seconds idle inside a transaction after which a session is stuck, when `maxSeconds` is not given. */
export const DEFAULT_MAX_SECONDS = 300;
/** Stuck sessions tolerated, when `maxSessions` is not given. */
export const DEFAULT_MAX_SESSIONS = 0;

/** Options of {@link idleTransactions}: the thresholds `judge` applies. */
export const IdleTransactionsOptions = z.object({
  /** Only this role's sessions. @default every role */
  role: PgName.optional(),
  /** A session idle in its transaction at least this many seconds is stuck. @default 300 ({@link DEFAULT_MAX_SECONDS}) */
  maxSeconds: z.number({ error: 'expected a number of seconds' }).positive().default(DEFAULT_MAX_SECONDS),
  /**
   * How many stuck sessions are tolerated (a `warn`); more is a `fail`. A stuck session that blocks others is
   * a `fail` whatever this says. @default 0 ({@link DEFAULT_MAX_SESSIONS})
   */
  maxSessions: z.number({ error: 'expected a whole number' }).int().min(0).default(DEFAULT_MAX_SESSIONS),
});
/** What {@link idleTransactions} takes. */
export type IdleTransactionsOptionsInput = z.input<typeof IdleTransactionsOptions>;

/**
 * A session idle inside a transaction, as `read` saw it: what the verdict, the termination (by pid) and the
 * on-caller need. Observations are stored and fixtures committed, so neither its last statement (whose
 * literals, numbers included, are application data) nor its client address is kept.
 */
export interface IdleSession {
  pid: number;
  /** Its role: which application's pool leaks (a role name, as the runbook's input gives it). */
  user: string | null;
  application: string;
  /** `idle in transaction` or `idle in transaction (aborted)`. */
  state: string;
  /** Seconds since it went idle (its last state change), to 0.1 s. */
  idleSeconds: number;
  /** Seconds since its transaction began, to 0.1 s. */
  transactionSeconds: number | null;
  /** Sessions waiting for a lock it holds. */
  blocking: number;
}

/** What `read` returns and the engine stores with the finding: everything `judge` needs, nothing more. */
export interface IdleTransactionsObservation {
  database: string;
  role: string | null;
  /** The role's `idle_in_transaction_session_timeout` for this database (or all databases); `null` when unset. */
  roleTimeout: string | null;
  /** Longest idle first, at most {@link MAX_SESSIONS}. */
  sessions: IdleSession[];
}

/** What the finding carries for later steps. */
export interface IdleTransactionsData {
  database: string;
  role: string | null;
  roleTimeout: string | null;
  /** Sessions idle at least `maxSeconds`, longest first: what the runbook terminates. */
  stuck: IdleSession[];
  /** Sessions idle in a transaction, stuck or not. */
  sessions: number;
  maxSeconds: number;
  maxSessions: number;
}

/** Sessions read at most; more would make the observation (and a committed fixture) large for no decision. */
export const MAX_SESSIONS = 200;
const SETTING = 'idle_in_transaction_session_timeout';

/**
 * Sessions idle in a transaction in the database the check connects to (of one role, with `role`).
 *
 * - `fail` when more than `maxSessions` have been idle `maxSeconds` or longer, or when one of those blocks
 *   another session.
 * - `warn` when some have, but no more than `maxSessions` and none blocks.
 * - `ok` otherwise (younger idle transactions are listed).
 *
 * Replayable: the observation is the sessions with their idle times, so a replay with another `maxSeconds`
 * or `maxSessions` decides again on the same sessions.
 */
export function idleTransactions(
  db: PostgresDatabase,
  options: IdleTransactionsOptionsInput = {},
): ReplayableCheck<IdleTransactionsData, IdleTransactionsObservation> {
  const o = parseOptions('example.pg.idle-transactions', IdleTransactionsOptions, options);
  const role = o.role ?? null;
  return defineCheck({
    kind: 'example.pg.idle-transactions',
    description: `Sessions${role ? ` of ${role}` : ''} idle in a transaction for ${o.maxSeconds}s or more on ${db.display}`,
    read: (ctx) => readIdleTransactions(db, role, ctx),
    judge: (observation) => judgeIdleTransactions(observation, o.maxSeconds, o.maxSessions),
  });
}

async function readIdleTransactions(
  db: PostgresDatabase,
  role: string | null,
  ctx: StepContext,
): Promise<IdleTransactionsObservation> {
  const q = { signal: ctx.signal };
  // Parameters are bound, never spliced in: the role name comes from input.
  const { rows: about } = await db.query<{ database: string; role_timeout: string | null }>(
    `SELECT current_database() AS database,
            (SELECT substr(c, length($2) + 1)
               FROM pg_catalog.pg_db_role_setting s
               JOIN pg_catalog.pg_roles r ON r.oid = s.setrole,
                    unnest(s.setconfig) AS c
              WHERE r.rolname = $1 AND starts_with(c, $2)
                AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
              ORDER BY s.setdatabase DESC
              LIMIT 1) AS role_timeout`,
    [role, `${SETTING}=`],
    q,
  );
  const { rows } = await db.query<{
    pid: number;
    user: string | null;
    application: string;
    state: string;
    idle_seconds: number;
    transaction_seconds: number | null;
    blocking: number;
  }>(
    `WITH waiting AS (
       SELECT unnest(pg_catalog.pg_blocking_pids(w.pid)) AS blocker
         FROM pg_catalog.pg_stat_activity w
        WHERE w.wait_event_type = 'Lock'
     )
     SELECT a.pid, a.usename AS "user", a.application_name AS application, a.state,
            extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS idle_seconds,
            extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_seconds,
            (SELECT count(*) FROM waiting WHERE waiting.blocker = a.pid)::int AS blocking
       FROM pg_catalog.pg_stat_activity a
      WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')
        AND a.datname = current_database()
        AND a.pid <> pg_backend_pid()
        AND ($1::text IS NULL OR a.usename = $1)
      ORDER BY a.state_change, a.pid
      LIMIT ${MAX_SESSIONS}`,
    [role],
    q,
  );
  const tenth = (seconds: number) => Math.round(seconds * 10) / 10;
  return {
    database: about[0]?.database ?? db.name,
    role,
    roleTimeout: about[0]?.role_timeout ?? null,
    sessions: rows.map((r) => ({
      pid: r.pid,
      user: r.user,
      application: r.application,
      state: r.state,
      idleSeconds: tenth(r.idle_seconds),
      transactionSeconds: r.transaction_seconds === null ? null : tenth(r.transaction_seconds),
      blocking: r.blocking,
    })),
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const seconds = (s: number) => formatMillis(Math.round(s * 1000));

/** The verdict on an observation. Pure: a replay calls it on a recorded observation and must get today's answer. */
function judgeIdleTransactions(
  observation: IdleTransactionsObservation,
  maxSeconds: number,
  maxSessions: number,
) {
  const { database, role, roleTimeout, sessions } = observation;
  const stuck = sessions.filter((s) => s.idleSeconds >= maxSeconds);
  const blocking = stuck.filter((s) => s.blocking > 0);
  const data: IdleTransactionsData = {
    database,
    role,
    roleTimeout,
    stuck,
    sessions: sessions.length,
    maxSeconds,
    maxSessions,
  };
  const whose = role ? ` of ${role}` : '';
  const evidence: Evidence[] = sessions.length
    ? [
        {
          kind: 'table',
          title: `Sessions${whose} idle in transaction in ${database}`,
          columns: ['PID', 'USER', 'APPLICATION', 'STATE', 'IDLE', 'XACT AGE', 'BLOCKING', 'STUCK'],
          rows: sessions.map((s) => [
            s.pid,
            s.user,
            s.application,
            s.state,
            seconds(s.idleSeconds),
            s.transactionSeconds === null ? null : seconds(s.transactionSeconds),
            s.blocking,
            s.idleSeconds >= maxSeconds,
          ]),
        },
      ]
    : [];
  if (stuck.length === 0) {
    const summary = sessions.length
      ? `${plural(sessions.length, 'session')}${whose} idle in transaction in ${database}, none for ${seconds(maxSeconds)} or more (longest ${seconds(sessions[0]?.idleSeconds ?? 0)})`
      : `No session${whose} idle in transaction in ${database}`;
    return finding('ok', summary, data, evidence);
  }
  const named = stuck
    .slice(0, 3)
    .map((s) => `pid ${s.pid} (${s.application || s.user || 'unknown'}) idle ${seconds(s.idleSeconds)}`)
    .join(', ');
  const more = stuck.length > 3 ? ` and ${stuck.length - 3} more` : '';
  const timeout = role
    ? `; role ${role} has ${roleTimeout ? `${SETTING} = ${roleTimeout}` : `no ${SETTING}`}`
    : '';
  const blocked = blocking.reduce((n, s) => n + s.blocking, 0);
  const blockingText = blocked ? `, blocking ${plural(blocked, 'session')}` : '';
  const head = `${plural(stuck.length, 'session')}${whose} idle in transaction for ${seconds(maxSeconds)} or more in ${database}`;
  if (stuck.length > maxSessions || blocking.length > 0) {
    const limit = stuck.length > maxSessions ? ` (${maxSessions} tolerated)` : '';
    return finding('fail', `${head}${limit}${blockingText}: ${named}${more}${timeout}`, data, evidence);
  }
  return finding(
    'warn',
    `${head}, within the ${maxSessions} tolerated: ${named}${more}${timeout}`,
    data,
    evidence,
  );
}

// ---------------------------------------------------------------------------------------------------------
// The action
// ---------------------------------------------------------------------------------------------------------

// The setting is an int4 of milliseconds.
const MAX_TIMEOUT_MS = 2_147_483_647;

/** Options of {@link setIdleInTransactionTimeout}. */
export const SetIdleInTransactionTimeoutOptions = z.object({
  /** The role whose new sessions get the timeout (`ALTER ROLE … SET`). */
  role: PgName,
  /** Only the role's sessions in this database (`ALTER ROLE … IN DATABASE …`). @default every database */
  database: PgName.optional(),
  /** The timeout: idle longer than this inside a transaction, and PostgreSQL ends the session. `0` turns it off. */
  timeout: Duration.refine(
    (d) => {
      try {
        return toMillis(d) <= MAX_TIMEOUT_MS;
      } catch {
        return true; // not a duration at all: Duration has said so already
      }
    },
    { error: `at most ${MAX_TIMEOUT_MS} ms (the setting is an int4 of milliseconds)` },
  ),
});
/** What {@link setIdleInTransactionTimeout} takes. */
export type SetIdleInTransactionTimeoutOptionsInput = z.input<typeof SetIdleInTransactionTimeoutOptions>;

/** What a plan fixes, decided when planning so that the approved plan is exactly what is applied. */
export interface SetIdleInTransactionTimeoutParams {
  role: string;
  database: string | null;
  /** The setting before, as stored (`"10min"`), `null` when unset: what revert restores. */
  previous: string | null;
  /** The value written, `"<n>ms"`. */
  value: string;
}

/**
 * Sets `idle_in_transaction_session_timeout` for a role's sessions (in one database, with `database`):
 * PostgreSQL then ends any of them that stays idle inside a transaction longer than `timeout`, rolling the
 * transaction back. New sessions get it; open ones keep their setting (pools pick it up as they reconnect).
 *
 * - **plan** checks that the role and the database exist and reads the stored setting from
 *   `pg_db_role_setting`: `idle_in_transaction_session_timeout: "<before>" → "<n>ms"` (`null` when unset);
 *   no change when both mean the same time.
 * - **apply** runs `ALTER ROLE … [IN DATABASE …] SET …`; **verify** reads it back.
 * - **revert** restores the previous value, or `RESET`s when there was none, but only while the setting is
 *   still the one the apply wrote: a value someone set since is theirs, and revert refuses.
 *
 * Risk `medium`: a batch job that legitimately idles inside a transaction would now be cut off. Not
 * destructive: nothing is lost now, and it reverts. Budget: 3 changes of one role's setting an hour.
 */
export function setIdleInTransactionTimeout(
  db: PostgresDatabase,
  options: SetIdleInTransactionTimeoutOptionsInput,
): Action<SetIdleInTransactionTimeoutParams, null> {
  const o = parseOptions(
    'example.pg.set-idle-in-transaction-timeout',
    SetIdleInTransactionTimeoutOptions,
    options,
  );
  const ms = toMillis(o.timeout);
  const value = `${ms}ms`;
  const role = o.role;
  const database = o.database ?? null;
  const label = `role ${role}${database ? ` in database ${database}` : ''}`;
  const effect =
    ms === 0
      ? 'its new sessions may idle in a transaction for ever (0 turns the timeout off)'
      : `its new sessions idle in a transaction longer than ${formatMillis(ms)} are ended`;
  // Names may hold any character; the resource path encodes them so that `/` and spaces cannot split it.
  const target = db.ref(
    'role',
    encodeURIComponent(role),
    ...(database ? ['database', encodeURIComponent(database)] : []),
    'setting',
    SETTING,
  );

  return defineAction<SetIdleInTransactionTimeoutParams, null>({
    kind: 'example.pg.set-idle-in-transaction-timeout',
    target,
    risk: 'medium',
    destructive: false,
    budget: { max: 3, per: '1h' },
    description: `Set ${SETTING} of ${label} to ${value}`,

    async plan(ctx) {
      const previous = await readSetting(db, role, database, ctx);
      const same = previous !== null && settingMillis(previous) === ms;
      return {
        summary: same
          ? `${SETTING} of ${label} is already ${previous}`
          : `Set ${SETTING} of ${label} from ${previous ?? 'unset'} to ${value}: ${effect}; open sessions keep their setting`,
        changes: same ? [] : [{ target, field: SETTING, before: previous, after: value }],
        params: { role, database, previous, value },
      };
    },

    async apply(ctx, plan) {
      await writeSetting(db, plan.params, plan.params.value, ctx);
      ctx.log(`${SETTING} of ${label} set to ${plan.params.value} (was ${plan.params.previous ?? 'unset'})`);
      return null;
    },

    async verify(ctx, applied) {
      const now = await readSetting(db, role, database, ctx);
      const want = applied.plan.params.value;
      return now !== null && settingMillis(now) === settingMillis(want)
        ? finding('ok', `${SETTING} of ${label} is ${now}`, { value: now })
        : finding('fail', `${SETTING} of ${label} is ${now ?? 'unset'}, not ${want}`, { value: now });
    },

    async revert(ctx, applied) {
      const { previous, value: written } = applied.plan.params;
      // Restoring over someone's later change would undo their fix, not ours.
      const now = await readSetting(db, role, database, ctx);
      if (now === null || settingMillis(now) !== settingMillis(written)) {
        throw new NonRetriableError(
          `${SETTING} of ${label} is now ${now ?? 'unset'}, not the ${written} this action set: someone changed it since. Not restoring ${previous ?? 'unset'} over it; decide by hand which value it should have.`,
          { code: 'PG_SETTING_CHANGED', details: { current: now, applied: written, previous } },
        );
      }
      await writeSetting(db, applied.plan.params, previous, ctx);
      ctx.log(`${SETTING} of ${label} restored to ${previous ?? 'unset'}`);
    },
  });
}

/** The stored setting of the role (in the database), `null` when unset; refuses an unknown role or database. */
async function readSetting(
  db: PostgresDatabase,
  role: string,
  database: string | null,
  ctx: StepContext,
): Promise<string | null> {
  const { rows } = await db.query<{ role_exists: boolean; database_exists: boolean; value: string | null }>(
    `SELECT r.oid IS NOT NULL AS role_exists, d.oid IS NOT NULL AS database_exists,
            (SELECT substr(c, length($3) + 1)
               FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c
              WHERE s.setrole = r.oid AND s.setdatabase = coalesce(d.oid, 0) AND starts_with(c, $3)) AS value
       FROM (SELECT 1) AS one
       LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $1
       LEFT JOIN pg_catalog.pg_database d ON d.datname = $2`,
    [role, database, `${SETTING}=`],
    { signal: ctx.signal },
  );
  const row = rows[0];
  if (!row?.role_exists) {
    throw new NonRetriableError(
      `Role ${JSON.stringify(role)} does not exist (role names are case-sensitive).`,
      {
        code: 'PG_NOT_FOUND',
      },
    );
  }
  if (database !== null && !row.database_exists) {
    throw new NonRetriableError(`Database ${JSON.stringify(database)} does not exist.`, {
      code: 'PG_NOT_FOUND',
    });
  }
  return row.value;
}

async function writeSetting(
  db: PostgresDatabase,
  params: SetIdleInTransactionTimeoutParams,
  value: string | null,
  ctx: StepContext,
): Promise<void> {
  // ALTER ROLE takes no bind parameters: names are quoted as identifiers, the value as a literal
  // (standard_conforming_strings, on since PostgreSQL 9.1, makes doubling the quote enough).
  const subject = `ROLE ${quoteIdent(params.role)}${params.database ? ` IN DATABASE ${quoteIdent(params.database)}` : ''}`;
  const change = value === null ? `RESET ${SETTING}` : `SET ${SETTING} = '${value.replaceAll("'", "''")}'`;
  await db.query(`ALTER ${subject} ${change}`, [], { signal: ctx.signal });
}

const UNIT_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Milliseconds of a stored setting (`"60000"`, `"60s"`, `"1min"`); `NaN` for what PostgreSQL would not store. */
export function settingMillis(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(text);
  if (!match) return Number.NaN;
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? Number.NaN));
}

// ---------------------------------------------------------------------------------------------------------
// The runbook
// ---------------------------------------------------------------------------------------------------------

/**
 * Input of the `idle-transactions` runbook. Thresholds are input, so a replay can try others
 * (`--input maxSeconds=30`). Their defaults live in the code, not in the schema: the engine records the
 * validated input, so a schema default would be recorded as if given, and a replay after the default changed
 * in code would still judge with the old one.
 */
export const IdleTransactionsInput = z.object({
  /** The application role whose sessions leak transactions (and whose timeout is set). */
  role: PgName,
  /** Idle this many seconds inside a transaction, and a session is stuck. @default 300 ({@link DEFAULT_MAX_SECONDS}) */
  maxSeconds: z.number({ error: 'expected a number of seconds' }).positive().optional(),
  /** Stuck sessions tolerated before the runbook acts. @default 0 ({@link DEFAULT_MAX_SESSIONS}) */
  maxSessions: z.number({ error: 'expected a whole number' }).int().min(0).optional(),
  /** The `idle_in_transaction_session_timeout` to give the role. @default `maxSeconds` */
  timeout: Duration.optional(),
  /** Also terminate the sessions stuck now (destructive: their transactions roll back; needs approval). @default true */
  terminate: z.boolean().optional(),
});
/** What the `idle-transactions` runbook takes. */
export type IdleTransactionsInput = z.input<typeof IdleTransactionsInput>;

let fromEnv: { url: string; db: PostgresDatabase } | undefined;

/**
 * The database of `DATABASE_URL`, one pool per process. Called when a run starts, so that `runbook list` and
 * `runbook describe` need no database; a replay calls it too but never queries (nothing connects until then).
 */
export function connectFromEnv(): PostgresDatabase {
  const url = process.env.DATABASE_URL?.trim();
  if (!url)
    throw new Error(
      'DATABASE_URL is not set: set it to the database to watch, postgres://user@host:5432/db.',
    );
  if (fromEnv?.url !== url) {
    void fromEnv?.db.close();
    fromEnv = { url, db: connectPostgres({ url, applicationName: 'idle-transactions-runbook' }) };
  }
  return fromEnv.db;
}

/** What an act step did, in the outcome's words: `set-timeout applied: Set …`. */
function didWhat(name: string, result: { status: string; plan?: { summary: string } }, mode: string): string {
  if (result.plan) return `${name} ${result.status}: ${result.plan.summary}`;
  // Skipped: diagnose mode, or a replay reaching a step its recording does not have.
  return `${name} ${result.status}${mode === 'diagnose' ? ' (diagnose mode)' : ''}`;
}

/**
 * The `idle-transactions` runbook: `idle-transactions` (the check); when it fails, `set-timeout` (the role's
 * `idle_in_transaction_session_timeout`, no approval under the default policy) and, with `terminate`,
 * `terminate-stuck` (`pg_terminate_backend` of exactly the stuck sessions, approved by a second person).
 * `connect` is a parameter so that a test can hand it a database.
 */
export function idleTransactionsRunbook(connect: () => PostgresDatabase = connectFromEnv) {
  return defineRunbook({
    id: 'idle-transactions',
    title: 'Sessions idle in transaction',
    description:
      'Finds sessions of an application role left idle inside a transaction (they hold locks and hold back VACUUM), sets the role’s idle_in_transaction_session_timeout so that PostgreSQL ends the next ones, and terminates the stuck ones after approval.',
    severity: 'P2',
    input: IdleTransactionsInput,
    tags: ['component: database', 'example'],
    async run({ input, step, mode }) {
      const db = connect();
      const { role } = input;
      const maxSeconds = input.maxSeconds ?? DEFAULT_MAX_SECONDS;
      const maxSessions = input.maxSessions ?? DEFAULT_MAX_SESSIONS;
      const idle = await step.check(
        'idle-transactions',
        idleTransactions(db, { role, maxSeconds, maxSessions }),
      );
      if (idle.status === 'ok') return step.done(idle.summary);
      if (idle.status === 'warn') return step.done(`${idle.summary}; tolerated, nothing changed`);

      const timeout = input.timeout ?? Math.round(maxSeconds * 1000);
      const prevent = await step.act(
        'set-timeout',
        setIdleInTransactionTimeout(db, { role, database: idle.data.database, timeout }),
        { onGiveUp: step.escalate(`could not set ${SETTING} of ${role}: page the DBA`) },
      );
      const done = [didWhat('set-timeout', prevent, mode)];
      if (input.terminate ?? true) {
        const pids = idle.data.stuck.map((s) => s.pid);
        const ended = await step.act(
          'terminate-stuck',
          terminateBackends(db, {
            // Exactly the sessions judged stuck, and only while they still are: the SDK checks each again in
            // the statement that signals it.
            filter: {
              pids,
              user: role,
              state: ['idle in transaction', 'idle in transaction (aborted)'],
              minDuration: Math.round(maxSeconds * 1000),
            },
            max: Math.min(MAX_SESSIONS, pids.length),
          }),
          {
            onGiveUp: step.escalate(`stuck sessions of ${role} survived pg_terminate_backend: page the DBA`),
          },
        );
        done.push(didWhat('terminate-stuck', ended, mode));
      }
      return step.done(`${idle.summary}. ${done.join('; ')}`);
    },
  });
}

/** What `runbook … --runbooks ./scripts/idle-transactions.ts` loads: the runbook on `DATABASE_URL`. */
export default idleTransactionsRunbook();
