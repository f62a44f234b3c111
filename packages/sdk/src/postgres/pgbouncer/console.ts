import pg from 'pg';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { InputValidationError, isRunbookError, RunbookError } from '../../core/errors';
import { type Finding, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type ResourceRef, resourceRef } from '../../core/resource';

/** How to reach one PgBouncer's admin console, and the bounds every check and action respects. */
export const PgBouncerOptions = z.object({
  /**
   * The admin console: `postgres://user[:password]@host:port/pgbouncer`. The user must be in PgBouncer's
   * `admin_users` for actions (`stats_users` is enough for checks). The password never appears in messages.
   */
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^/]*\/pgbouncer(\?.*)?$/, 'expected postgres://user@host:port/pgbouncer'),
  /**
   * The name in resource references (`pgbouncer:<name>/database/<db>`), which locks and budgets are keyed by.
   * @default "<host>:<port>" from the URL
   */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.:-]*$/i, 'expected letters, digits, "_", ".", ":" or "-"')
    .optional(),
  /** Bound on opening a console connection. @default "5s" */
  connectTimeout: Duration.default('5s'),
  /** Bound on every `SHOW` and every command except `PAUSE`, which has its own timeout. @default "10s" */
  commandTimeout: Duration.default('10s'),
});
export type PgBouncerOptions = z.output<typeof PgBouncerOptions>;
export type PgBouncerOptionsInput = z.input<typeof PgBouncerOptions>;

/**
 * A database name as PgBouncer's `[databases]` section declares it. The admin console has no parameters, so
 * names are interpolated, quoted; only letters, digits, `_`, `.` and `-` are accepted, never a quote.
 */
export const PgBouncerDatabaseName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9_.-]+$/, 'expected a PgBouncer database name (letters, digits, "_", "." or "-")')
  .refine((name) => name !== ADMIN_DB, 'the admin console database "pgbouncer" cannot be the target');

/** The admin console's own (virtual) database. */
export const ADMIN_DB = 'pgbouncer';

/** What `SHOW` may read. `FDS` is left out on purpose: it prints the password of every connection. */
export type ShowSubject =
  | 'POOLS'
  | 'DATABASES'
  | 'STATS'
  | 'CLIENTS'
  | 'SERVERS'
  | 'CONFIG'
  | 'LISTS'
  | 'VERSION'
  | 'STATE';

/** A row as the console returns it: every value text or a number. */
export type ConsoleRow = Record<string, unknown>;

/** Per call: the step's signal, and a bound replacing `commandTimeout`. */
export interface ConsoleCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** One row of `SHOW DATABASES`. */
export type PgBouncerDatabase = {
  name: string;
  host: string | null;
  port: number | null;
  /** The PostgreSQL database it connects to. */
  database: string;
  /** Server connections per (database, user) pool: the database's `pool_size` or `default_pool_size`. */
  poolSize: number;
  reservePool: number;
  /** The database's own `pool_mode`, or `null` for the global one. */
  poolMode: string | null;
  /** `max_db_connections`; 0 for no limit. */
  maxConnections: number;
  currentConnections: number;
  /** Paused by `PAUSE <db>` (a global `PAUSE` does not show here). */
  paused: boolean;
  disabled: boolean;
};

/** One row of `SHOW POOLS`: a (database, user) pool. */
export type PgBouncerPool = {
  database: string;
  user: string;
  /** Client connections linked to a server or idle (not waiting). */
  clActive: number;
  /** Client connections that sent a query and wait for a server connection. */
  clWaiting: number;
  /** Server connections linked to a client: in use. */
  svActive: number;
  /** Server connections unused and ready. */
  svIdle: number;
  /** Server connections idle longer than `server_check_delay`, to be checked before reuse. */
  svUsed: number;
  svTested: number;
  svLogin: number;
  /** How long the oldest waiting client has waited, in milliseconds (`maxwait` + `maxwait_us`). */
  maxWaitMs: number;
  poolMode: string;
};

/** One row of `SHOW CLIENTS` or `SHOW SERVERS`. */
export type PgBouncerSocket = {
  type: string;
  user: string;
  database: string;
  state: string;
  addr: string;
  port: number;
  localAddr: string;
  localPort: number;
  /** ISO time; `null` when PgBouncer printed none. */
  connectTime: string | null;
  requestTime: string | null;
  /** How long it has waited (clients), in milliseconds. */
  waitMs: number;
  closeNeeded: boolean;
  /** PgBouncer's internal address of this socket: only used to join clients to servers, never shown. */
  ptr: string;
  /** `ptr` of the linked socket (a client's server, a server's client); empty when none. */
  link: string;
  /** Servers: the PostgreSQL backend pid. Clients: the peer's pid over a Unix socket, else 0. */
  remotePid: number;
  tls: string;
  applicationName: string;
};

/** One row of `SHOW STATS` (times in microseconds, as PgBouncer reports them). */
export type PgBouncerStatsRow = {
  database: string;
  totalXactCount: number;
  totalQueryCount: number;
  totalReceived: number;
  totalSent: number;
  totalXactTimeUs: number;
  totalQueryTimeUs: number;
  totalWaitTimeUs: number;
  avgXactCount: number;
  avgQueryCount: number;
  avgRecv: number;
  avgSent: number;
  avgXactTimeUs: number;
  avgQueryTimeUs: number;
  avgWaitTimeUs: number;
  /** Server assignments per second in the last period, where PgBouncer reports it; `null` on 1.18. */
  avgServerAssignmentCount: number | null;
};

/** Whether traffic is paused: globally (`PAUSE`) and per database (`PAUSE <db>`). */
export type PauseState = {
  /** `null` when PgBouncer cannot tell (no admin rights for the probe, an unknown answer). */
  global: boolean | null;
  databases: PgBouncerDatabase[];
};

/**
 * PgBouncer's admin console. Every call opens its own short connection (the console speaks the simple query
 * protocol only: no parameters, no prepared statements), so a blocking `PAUSE` never holds up a `SHOW`.
 * Create it once with {@link connectPgBouncer}; checks and actions take it as their first argument.
 */
export class PgBouncerConsole {
  /** The name in resource references. */
  readonly name: string;
  /** `user@host:port/pgbouncer`, for messages (never the password). */
  readonly display: string;
  readonly options: PgBouncerOptions;

  constructor(options: PgBouncerOptions) {
    this.options = options;
    const url = new URL(options.url);
    const host = url.hostname || 'localhost';
    const port = url.port || '6432';
    this.name = options.name ?? `${host}:${port}`;
    this.display = `${decodeURIComponent(url.username) || 'pgbouncer'}@${host}:${port}/${ADMIN_DB}`;
  }

  /** A resource reference under this PgBouncer: `pgbouncer:<name>` or `pgbouncer:<name>/database/<db>`. */
  ref(database?: string | null): ResourceRef {
    return database
      ? resourceRef('pgbouncer', this.name, 'database', database)
      : resourceRef('pgbouncer', this.name);
  }

  /** `SHOW <subject>`: its rows as the console returned them. */
  async show(subject: ShowSubject, options: ConsoleCallOptions = {}): Promise<ConsoleRow[]> {
    return this.#session(`SHOW ${subject}`, options, async (run) => run(`SHOW ${subject}`));
  }

  /**
   * Runs several `SHOW`s on one connection, in order. `selfPort` is the console's own client port, so that
   * `SHOW CLIENTS` readers can leave this connection out.
   */
  async showMany<S extends ShowSubject>(
    subjects: readonly S[],
    options: ConsoleCallOptions = {},
  ): Promise<{ rows: Record<S, ConsoleRow[]>; selfPort: number | null }> {
    return this.#session(`SHOW ${subjects.join(', ')}`, options, async (run, selfPort) => {
      const rows = {} as Record<S, ConsoleRow[]>;
      for (const subject of subjects) rows[subject] = await run(`SHOW ${subject}`);
      return { rows, selfPort };
    });
  }

  /**
   * Runs one admin command (`PAUSE "app"`, `RESUME`, `RECONNECT`) and returns its command tag. Callers build
   * the text with {@link adminCommand}, which validates and quotes the database name.
   */
  async command(text: string, options: ConsoleCallOptions = {}): Promise<string> {
    return this.#session(text, options, async (_run, _self, client) => {
      const result = await client.query(text);
      return result.command ?? text.split(/\s+/)[0]?.toUpperCase() ?? '';
    });
  }

  /** `SHOW DATABASES`, parsed, without the admin console's own database. */
  async databases(options: ConsoleCallOptions = {}): Promise<PgBouncerDatabase[]> {
    const { rows } = await this.showMany(['DATABASES', 'CONFIG'], options);
    const defaultPoolSize = configValue(rows.CONFIG, 'default_pool_size') ?? 20;
    return rows.DATABASES.map((r) => parseDatabase(r, defaultPoolSize)).filter((d) => d.name !== ADMIN_DB);
  }

  /**
   * The database named, from `SHOW DATABASES`. Throws a {@link PgBouncerError} `PGBOUNCER_UNKNOWN_DATABASE`
   * (not retriable) when PgBouncer has no such database: an admin command on an unknown name would make
   * PgBouncer register it when `[databases]` has a `*` entry.
   */
  async requireDatabase(name: string, options: ConsoleCallOptions = {}): Promise<PgBouncerDatabase> {
    const all = await this.databases(options);
    const found = all.find((d) => d.name === name);
    if (!found) {
      throw new PgBouncerError(
        'PGBOUNCER_UNKNOWN_DATABASE',
        `PgBouncer ${this.display} has no database "${name}" (SHOW DATABASES lists ${all.map((d) => d.name).join(', ') || 'none'}). Use a name from its [databases] section; nothing was changed.`,
        { retriable: false, details: { database: name } },
      );
    }
    return found;
  }

  /**
   * Whether traffic is paused. Per database from `SHOW DATABASES`. Globally from `SHOW STATE` where PgBouncer
   * has it (newer versions); older ones (1.18) show a global `PAUSE` nowhere, so the console is asked to
   * `PAUSE pgbouncer`, which can never succeed and changes nothing: PgBouncer answers "already
   * suspended/paused" when paused and "cannot pause admin db" otherwise (and logs the refusal).
   */
  async pauseState(options: ConsoleCallOptions = {}): Promise<PauseState> {
    const databases = await this.databases(options);
    return { global: await this.#globalPause(options), databases };
  }

  async #globalPause(options: ConsoleCallOptions): Promise<boolean | null> {
    try {
      const rows = await this.show('STATE', options);
      const first = rows[0] ?? {};
      const value =
        'paused' in first ? first.paused : rows.find((r) => String(r.key).toLowerCase() === 'paused')?.value;
      if (value !== undefined) return /^(yes|on|true|1)$/i.test(String(value));
    } catch (e) {
      if (!isPgBouncerError(e) || e.code !== 'PGBOUNCER_ERROR') throw e;
    }
    try {
      await this.command(`PAUSE ${ADMIN_DB}`, options);
      return null; // cannot happen: the admin database cannot be paused
    } catch (e) {
      if (!isPgBouncerError(e) || e.code !== 'PGBOUNCER_ERROR') throw e;
      if (/already suspended\/paused/i.test(e.message)) return true;
      if (/cannot pause admin db/i.test(e.message)) return false;
      return null;
    }
  }

  async #session<T>(
    what: string,
    options: ConsoleCallOptions,
    work: (
      run: (sql: string) => Promise<ConsoleRow[]>,
      selfPort: number | null,
      client: pg.Client,
    ) => Promise<T>,
  ): Promise<T> {
    const { signal } = options;
    signal?.throwIfAborted();
    const timeoutMs = options.timeoutMs ?? toMillis(this.options.commandTimeout);
    const client = new pg.Client({
      connectionString: this.options.url,
      connectionTimeoutMillis: toMillis(this.options.connectTimeout),
      // No other startup parameters: PgBouncer refuses the ones it does not know.
      application_name: 'aiwebtest-runbooks',
    });
    client.on('error', () => {});
    const timer = AbortSignal.timeout(timeoutMs);
    const stop = signal ? AbortSignal.any([signal, timer]) : timer;
    let onStop = () => {};
    const stopped = new Promise<never>((_, reject) => {
      onStop = () => {
        // Closing the connection is the only way to stop a console command (it has no cancel).
        void client.end().catch(() => {});
        reject(stop.reason);
      };
      stop.addEventListener('abort', onStop, { once: true });
    });
    stopped.catch(() => {});
    try {
      await Promise.race([client.connect(), stopped]);
      const selfPort =
        (client as unknown as { connection?: { stream?: { localPort?: number } } }).connection?.stream
          ?.localPort ?? null;
      const run = async (sql: string) => (await client.query(sql)).rows as ConsoleRow[];
      return await Promise.race([work(run, selfPort, client), stopped]);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (timer.aborted) {
        throw new PgBouncerError(
          'PGBOUNCER_TIMEOUT',
          `PgBouncer ${this.display}: ${what} did not finish within ${formatMillis(timeoutMs)}. Check that PgBouncer is responsive, or raise the timeout.`,
          { retriable: true, details: { timeoutMs } },
        );
      }
      throw toPgBouncerError(e, this.display, what);
    } finally {
      stop.removeEventListener('abort', onStop);
      await client.end().catch(() => {});
    }
  }
}

/** Validates the options (an {@link InputValidationError} names each bad field); connects lazily, per call. */
export function connectPgBouncer(options: PgBouncerOptionsInput): PgBouncerConsole {
  return new PgBouncerConsole(parseOptions('pgbouncer', PgBouncerOptions, options));
}

/** The finding of a check asked about a database PgBouncer does not have: its clients are refused. */
export function unknownDatabase<T>(bouncer: PgBouncerConsole, database: string, data: T): Finding<T> {
  return finding(
    'fail',
    `PgBouncer ${bouncer.name} has no database ${database} (not in SHOW DATABASES): its clients are refused`,
    data,
  );
}

/**
 * An admin command with an optional database argument, quoted: `PAUSE`, `PAUSE "app"`. The name is checked
 * again here (letters, digits, `_`, `.`, `-`), so no text from outside ever reaches the console unchecked.
 */
export function adminCommand(verb: 'PAUSE' | 'RESUME' | 'RECONNECT', database: string | null): string {
  if (database === null) return verb;
  const checked = PgBouncerDatabaseName.safeParse(database);
  if (!checked.success) {
    throw new InputValidationError('PgBouncer database name', [
      { path: 'database', message: checked.error.issues[0]?.message ?? 'invalid' },
    ]);
  }
  return `${verb} "${checked.data}"`;
}

/**
 * A PgBouncer failure: `PGBOUNCER_CONNECTION` (unreachable, login refused mid-way; retriable),
 * `PGBOUNCER_TIMEOUT` (retriable), `PGBOUNCER_ERROR` (the console refused the command: not retriable),
 * `PGBOUNCER_UNKNOWN_DATABASE`, `PGBOUNCER_PAUSE_TIMEOUT`, `PGBOUNCER_PAUSED_GLOBALLY`.
 */
export class PgBouncerError extends RunbookError {}

/** True when `e` is a {@link PgBouncerError} (by code, so it works across copies of the package). */
export function isPgBouncerError(e: unknown): e is PgBouncerError {
  return isRunbookError(e) && e.code.startsWith('PGBOUNCER_');
}

function toPgBouncerError(e: unknown, display: string, what: string): RunbookError {
  if (isRunbookError(e)) return e;
  const message = scrubPasswords(e instanceof Error ? e.message : String(e));
  // An ErrorResponse from the console (it reports every refusal as SQLSTATE 08P01): the command was refused.
  if (e instanceof pg.DatabaseError && e.severity !== 'FATAL') {
    return new PgBouncerError('PGBOUNCER_ERROR', `PgBouncer ${display} refused ${what}: ${message}.`, {
      cause: e,
      retriable: false,
    });
  }
  return new PgBouncerError(
    'PGBOUNCER_CONNECTION',
    `PgBouncer admin console ${display} failed (${what}): ${message}. Check that PgBouncer is running and that the user is in admin_users or stats_users.`,
    { cause: e, retriable: true },
  );
}

function scrubPasswords(text: string): string {
  return text.replace(/(\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[REDACTED]@');
}

/** A number from a console value (`int8` columns arrive as text). */
export function num(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

function text(value: unknown): string {
  return value === null || value === undefined ? '' : String(value);
}

/** `2026-03-01 10:00:00 UTC` (PgBouncer's format) as ISO time, or `null`. */
export function consoleTime(value: unknown): string | null {
  const s = text(value).trim();
  if (!s) return null;
  const utc = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.\d+)? (UTC|GMT)$/.exec(s);
  const ms = utc ? Date.parse(`${utc[1]}T${utc[2]}Z`) : Date.parse(s);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** A setting from `SHOW CONFIG` rows, as a number (or `null` when absent). */
export function configValue(rows: ConsoleRow[], key: string): number | null {
  const row = rows.find((r) => r.key === key);
  return row === undefined ? null : num(row.value);
}

export function parseDatabase(r: ConsoleRow, defaultPoolSize: number): PgBouncerDatabase {
  const poolSize = num(r.pool_size);
  return {
    name: text(r.name),
    host: text(r.host) || null,
    port: r.port === null || r.port === undefined || r.port === '' ? null : num(r.port),
    database: text(r.database),
    poolSize: poolSize >= 0 ? poolSize : defaultPoolSize,
    reservePool: Math.max(0, num(r.reserve_pool)),
    poolMode: text(r.pool_mode) || null,
    maxConnections: num(r.max_connections),
    currentConnections: num(r.current_connections),
    paused: num(r.paused) !== 0,
    disabled: num(r.disabled) !== 0,
  };
}

export function parsePool(r: ConsoleRow): PgBouncerPool {
  return {
    database: text(r.database),
    user: text(r.user),
    clActive: num(r.cl_active),
    clWaiting: num(r.cl_waiting),
    svActive: num(r.sv_active),
    svIdle: num(r.sv_idle),
    svUsed: num(r.sv_used),
    svTested: num(r.sv_tested),
    svLogin: num(r.sv_login),
    maxWaitMs: num(r.maxwait) * 1000 + Math.floor(num(r.maxwait_us) / 1000),
    poolMode: text(r.pool_mode),
  };
}

export function parseSocket(r: ConsoleRow): PgBouncerSocket {
  return {
    type: text(r.type),
    user: text(r.user),
    database: text(r.database),
    state: text(r.state),
    addr: text(r.addr),
    port: num(r.port),
    localAddr: text(r.local_addr),
    localPort: num(r.local_port),
    connectTime: consoleTime(r.connect_time),
    requestTime: consoleTime(r.request_time),
    waitMs: num(r.wait) * 1000 + Math.floor(num(r.wait_us) / 1000),
    closeNeeded: num(r.close_needed) !== 0,
    ptr: text(r.ptr),
    link: text(r.link),
    remotePid: num(r.remote_pid),
    tls: text(r.tls),
    applicationName: text(r.application_name),
  };
}

export function parseStats(r: ConsoleRow): PgBouncerStatsRow {
  return {
    database: text(r.database),
    totalXactCount: num(r.total_xact_count),
    totalQueryCount: num(r.total_query_count),
    totalReceived: num(r.total_received),
    totalSent: num(r.total_sent),
    totalXactTimeUs: num(r.total_xact_time),
    totalQueryTimeUs: num(r.total_query_time),
    totalWaitTimeUs: num(r.total_wait_time),
    avgXactCount: num(r.avg_xact_count),
    avgQueryCount: num(r.avg_query_count),
    avgRecv: num(r.avg_recv),
    avgSent: num(r.avg_sent),
    avgXactTimeUs: num(r.avg_xact_time),
    avgQueryTimeUs: num(r.avg_query_time),
    avgWaitTimeUs: num(r.avg_wait_time),
    avgServerAssignmentCount:
      r.avg_server_assignment_count === undefined ? null : num(r.avg_server_assignment_count),
  };
}
