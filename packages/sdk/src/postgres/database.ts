import pg from 'pg';
import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { type InputValidationError, isRunbookError, RunbookError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import { type ResourceRef, resourceRef } from '../core/resource';

/** How to reach one PostgreSQL database, and the bounds every check and action respects. */
export const PostgresOptions = z.object({
  /** A connection URL, `postgres://user:password@host:port/database`. The password never appears in messages. */
  url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// connection URL'),
  /**
   * The name in resource references (`postgres:<name>/…`), which locks and budgets are keyed by.
   * @default the database name from the URL
   */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"')
    .optional(),
  /** Bound on opening a connection. @default "5s" */
  connectTimeout: Duration.default('5s'),
  /** Server-side bound on every statement of checks and planning (`statement_timeout`). @default "30s" */
  statementTimeout: Duration.default('30s'),
  /**
   * Bound on waiting for a lock in checks and planning (`lock_timeout`): a table the incident holds locked
   * fails the statement quickly, with an error that says so, instead of stalling the diagnosis. @default "5s"
   */
  lockTimeout: Duration.default('5s'),
  /** Pooled connections for checks and ordinary statements. @default 4 */
  poolSize: z.number().int().min(1).max(100).default(4),
  /** `application_name` of our sessions; actions never touch sessions with it. @default "aiwebtest-runbooks" */
  applicationName: z.string().min(1).max(63).default('aiwebtest-runbooks'),
});
export type PostgresOptions = z.output<typeof PostgresOptions>;
export type PostgresOptionsInput = z.input<typeof PostgresOptions>;

/** A row as `pg` returns it. */
export type Row = Record<string, unknown>;

/** What a query is bound by: the step's signal (aborting cancels the statement on the server). */
export interface QueryOptions {
  signal?: AbortSignal;
  /** Overrides the database's `statementTimeout` for this statement; `0` for none (maintenance). */
  statementTimeoutMs?: number;
}

/**
 * One PostgreSQL database: a small pool for checks and ordinary statements, and dedicated connections for
 * maintenance statements that cannot run inside a transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
 * Create it once with {@link connectPostgres}; checks and actions take it as their first argument.
 */
export class PostgresDatabase {
  /** The name in resource references. */
  readonly name: string;
  /** `user@host:port/database`, for messages (never the password). */
  readonly display: string;
  readonly options: PostgresOptions;
  readonly #pool: pg.Pool;

  constructor(options: PostgresOptions) {
    this.options = options;
    const url = new URL(options.url);
    const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
    this.name = options.name ?? database;
    this.display = `${decodeURIComponent(url.username) || 'postgres'}@${url.hostname}:${url.port || '5432'}/${database}`;
    this.#pool = new pg.Pool({ ...this.#clientConfig(), max: options.poolSize });
    // An idle pooled connection that dies (a server restart, a terminated backend) must not crash the process.
    this.#pool.on('error', () => {});
  }

  /**
   * Runs one statement on a pooled connection, bounded by `statement_timeout` and the signal (an abort
   * cancels the statement on the server). Errors become {@link PostgresError}s carrying the SQLSTATE.
   * Parameters are always bound, never interpolated.
   */
  async query<R extends Row = Row>(
    sql: string,
    params: unknown[] = [],
    options: QueryOptions = {},
  ): Promise<pg.QueryResult<R>> {
    options.signal?.throwIfAborted();
    const client = await this.#connect(this.#pool.connect(), options.signal);
    let broken: Error | undefined;
    try {
      // The bounds are set per transaction (SET LOCAL), not per session or at connect: behind PgBouncer in
      // transaction pooling a session setting would leak to other clients' statements, and PgBouncer
      // refuses startup parameters it cannot track. A transaction keeps one server connection throughout.
      await client.query('BEGIN');
      await this.#bound(client);
      const result = await this.#run<R>(client, sql, params, options, 'transaction');
      await client.query('COMMIT');
      return result;
    } catch (e) {
      if (isRunbookError(e) && e.code === 'PG_CONNECTION') broken = e;
      // After an abort the socket may be gone: the connection is discarded below, not rolled back.
      if (!broken && !options.signal?.aborted) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
      }
      throw e;
    } finally {
      // After an abort the backend is not reused: a late cancel could hit the next query on it.
      client.release(broken ?? options.signal?.aborted);
    }
  }

  /**
   * Runs `work` on a connection of its own, outside the pool and outside any transaction: for maintenance
   * statements PostgreSQL refuses inside a transaction block, and long ones that must not hold a pooled
   * connection. The connection is closed afterwards.
   */
  async dedicated<T>(
    work: (session: Session) => Promise<T>,
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    options.signal?.throwIfAborted();
    const client = new pg.Client(this.#clientConfig());
    client.on('error', () => {});
    await this.#connect(
      client.connect().then(() => client),
      options.signal,
    );
    try {
      // No session setting here: through PgBouncer in transaction pooling it would stay on a server
      // connection other clients share. Maintenance statements set what they need and reset it.
      return await work(this.#session(client, 'session'));
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Runs `work` in one transaction on a pooled connection; rolls back when it throws. */
  async transaction<T>(
    work: (session: Session) => Promise<T>,
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    options.signal?.throwIfAborted();
    const client = await this.#connect(this.#pool.connect(), options.signal);
    const session = this.#session(client, 'transaction');
    let broken: Error | undefined;
    try {
      await session.query('BEGIN', [], options);
      await this.#bound(client);
      const result = await work(session);
      await session.query('COMMIT', [], options);
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw e;
    } finally {
      client.release(broken ?? options.signal?.aborted);
    }
  }

  /** Closes the pool. */
  async close(): Promise<void> {
    await this.#pool.end().catch(() => {});
  }

  /** A resource reference under this database: `postgres:<name>/<path…>`. */
  ref(...path: string[]): ResourceRef {
    return resourceRef('postgres', this.name, ...path);
  }

  #clientConfig(): pg.ClientConfig {
    return {
      connectionString: this.options.url,
      connectionTimeoutMillis: toMillis(this.options.connectTimeout),
      application_name: this.options.applicationName,
    };
  }

  /** Sets the statement and lock bounds for the rest of the current transaction. */
  async #bound(client: pg.ClientBase): Promise<void> {
    await client.query(
      `SET LOCAL statement_timeout = ${Math.max(0, Math.floor(toMillis(this.options.statementTimeout)))}`,
    );
    await client.query(
      `SET LOCAL lock_timeout = ${Math.max(0, Math.floor(toMillis(this.options.lockTimeout)))}`,
    );
  }

  #session(client: pg.ClientBase, scope: 'transaction' | 'session'): Session {
    return {
      query: <R extends Row = Row>(sql: string, params: unknown[] = [], options: QueryOptions = {}) =>
        this.#run<R>(client, sql, params, options, scope),
      pid: (client as unknown as { processID?: number }).processID ?? null,
    };
  }

  /**
   * Waits for a connection; when the step was aborted meanwhile, gives the connection back (or closes it)
   * before throwing, so that a cancelled step never leaks a pool slot or a dedicated connection.
   */
  async #connect<C extends pg.PoolClient | pg.Client>(
    connecting: Promise<C>,
    signal: AbortSignal | undefined,
  ): Promise<C> {
    const giveBack = (client: C) => {
      if ('release' in client) client.release();
      else void client.end().catch(() => {});
    };
    let client: C;
    try {
      // An abort ends the wait for a pool slot or a new connection too (pg's own wait is `connectTimeout`).
      client = await (signal ? unlessAborted(connecting, signal) : connecting);
    } catch (e) {
      if (signal?.aborted) {
        connecting.then(giveBack, () => {});
        throw signal.reason;
      }
      throw toPostgresError(e, `connect to ${this.display}`);
    }
    if (signal?.aborted) {
      giveBack(client);
      throw signal.reason;
    }
    return client;
  }

  async #run<R extends Row>(
    client: pg.ClientBase,
    sql: string,
    params: unknown[],
    options: QueryOptions,
    scope: 'transaction' | 'session',
  ): Promise<pg.QueryResult<R>> {
    const signal = options.signal;
    // In a transaction an override is a SET LOCAL and ends with it; on a dedicated session it is reset after.
    const override =
      options.statementTimeoutMs === undefined
        ? undefined
        : Math.max(0, Math.floor(options.statementTimeoutMs));
    // A step cancelled before this statement must not start it (the abort listener below never fires then).
    signal?.throwIfAborted();
    let stop = () => {};
    // pg has no AbortSignal support: an abort asks the server to cancel the running statement, and when
    // that cannot reach it (no free connection slot, a dead network) the socket is closed after a grace
    // period, so an abort always ends the wait.
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        const pid = (client as unknown as { processID?: number }).processID;
        if (pid !== undefined) void this.#cancel(pid);
        timer = setTimeout(() => {
          destroySocket(client);
          reject(signal.reason);
        }, ABORT_GRACE_MS);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stop = () => {
        signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
      };
    });
    aborted.catch(() => {}); // settled by the race below, or never observed
    try {
      if (override !== undefined) {
        await client.query(`SET ${scope === 'transaction' ? 'LOCAL ' : ''}statement_timeout = ${override}`);
      }
      return await Promise.race([client.query<R>(sql, params), aborted]);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw toPostgresError(e, firstWords(sql));
    } finally {
      stop();
      if (override !== undefined && scope === 'session' && !signal?.aborted) {
        await client.query('RESET statement_timeout').catch(() => {});
      }
    }
  }

  async #cancel(pid: number): Promise<void> {
    const client = new pg.Client(this.#clientConfig());
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT pg_cancel_backend($1)', [pid]);
    } catch {
      // Best effort: the statement_timeout still bounds it.
    } finally {
      await client.end().catch(() => {});
    }
  }
}

/** How long an aborted statement may take to end after the server was asked to cancel it. */
const ABORT_GRACE_MS = 2_000;

/** `work`, or the signal's reason if it aborts first; the abort listener is removed either way. */
async function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Closes a connection's socket: its pending query fails at once. */
function destroySocket(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** A connection handed to {@link PostgresDatabase.dedicated} or {@link PostgresDatabase.transaction} work. */
export interface Session {
  query<R extends Row = Row>(
    sql: string,
    params?: unknown[],
    options?: QueryOptions,
  ): Promise<pg.QueryResult<R>>;
  /** The backend pid of this connection (actions never cancel or terminate it). */
  pid: number | null;
}

/** Validates the options (an {@link InputValidationError} names each bad field) and opens a pool lazily. */
export function connectPostgres(options: PostgresOptionsInput): PostgresDatabase {
  return new PostgresDatabase(parseOptions('postgres', PostgresOptions, options));
}

/**
 * A PostgreSQL failure. `code` is `PG_ERROR` with the SQLSTATE in `sqlstate` (`57014` cancelled, `42P01`
 * undefined table…), or `PG_CONNECTION` when no connection could be made or it broke. Connection failures,
 * serialization failures, deadlocks, cancellations and "too many connections" are retriable.
 */
export class PostgresError extends RunbookError {
  readonly sqlstate: string | null;
  constructor(code: 'PG_ERROR' | 'PG_CONNECTION', message: string, sqlstate: string | null, cause: unknown) {
    super(code, message, {
      cause,
      details: { sqlstate },
      retriable: code === 'PG_CONNECTION' || (sqlstate !== null && RETRIABLE.test(sqlstate)),
    });
    this.sqlstate = sqlstate;
  }
}

/** True when `e` is a {@link PostgresError}. */
export function isPostgresError(e: unknown): e is PostgresError {
  return isRunbookError(e) && (e.code === 'PG_ERROR' || e.code === 'PG_CONNECTION');
}

// 08 connection exceptions (but 08P01, a protocol violation such as a wrong parameter count, is a bug that
// retrying repeats), 40001 serialization, 40P01 deadlock, 53300 too many connections, 55P03 lock not
// available (lock_timeout), 57014 query cancelled (statement timeout), 57P0x server shutting down.
const RETRIABLE = /^(08(?!P01)...|40001|40P01|53300|55P03|57014|57P0.)$/;

/** Turns what `pg` threw into a {@link PostgresError}; the message never carries a password. */
export function toPostgresError(e: unknown, what: string): RunbookError {
  if (isRunbookError(e)) return e;
  const err = e as { code?: unknown; message?: string };
  const sqlstate = typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : null;
  const message = scrubPasswords(err?.message ?? String(e));
  if (sqlstate === null || (sqlstate.startsWith('08') && sqlstate !== '08P01')) {
    return new PostgresError('PG_CONNECTION', `PostgreSQL ${what} failed: ${message}`, sqlstate, e);
  }
  return new PostgresError(
    'PG_ERROR',
    `PostgreSQL ${what} failed: ${message} (SQLSTATE ${sqlstate})`,
    sqlstate,
    e,
  );
}

function scrubPasswords(text: string): string {
  return text.replace(/(\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[REDACTED]@');
}

function firstWords(sql: string): string {
  const words = sql.trim().split(/\s+/).slice(0, 4).join(' ');
  return words.length > 40 ? `${words.slice(0, 40)}…` : words;
}

/** Quotes an identifier (a table, index, role or database name) for SQL; never interpolate one unquoted. */
export function quoteIdent(name: string): string {
  return pg.escapeIdentifier(name);
}

/** Quotes a schema-qualified name given as `schema.name` or `name`. */
export function quoteQualified(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? quoteIdent(name) : `${quoteIdent(name.slice(0, dot))}.${quoteIdent(name.slice(dot + 1))}`;
}
