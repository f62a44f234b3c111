import { type RedisOptions as IORedisOptions, Redis } from 'ioredis';
import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { InputValidationError, isRunbookError, RunbookError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import { type ResourceRef, resourceRef } from '../core/resource';

const NAME = z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"');

/** TLS settings beyond "on": a CA bundle (PEM), the server name to verify, and whether to verify at all. */
export const RedisTlsOptions = z.object({
  /** PEM CA certificates to trust instead of Node's defaults. @default Node's CA store */
  ca: z.string().min(1).optional(),
  /** The name the server certificate must carry (SNI). @default the host */
  servername: z.string().min(1).optional(),
  /** Refuse a certificate that does not verify. Turn off only for a lab. @default true */
  rejectUnauthorized: z.boolean().default(true),
});
export type RedisTlsOptions = z.output<typeof RedisTlsOptions>;

/** How to reach one Redis server, and the bounds every check and action respects. */
export const RedisOptions = z
  .object({
    /**
     * `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. The password never appears in
     * messages. The fields below, when given too, override the URL's parts.
     */
    url: z
      .string()
      .regex(/^rediss?:\/\/[^\s]+$/, 'expected a redis:// or rediss:// URL')
      .refine((url) => URL.canParse(url), 'not a parsable URL')
      .refine((url) => !URL.canParse(url) || /^\/?\d*$/.test(new URL(url).pathname), {
        message: 'the path must be a database index such as /0',
      })
      .optional(),
    /** The server's host name or address (instead of a URL). */
    host: z.string().min(1).optional(),
    /** @default 6379, or the URL's */
    port: z.number().int().min(1).max(65_535).optional(),
    /** The database index checks and actions work on. @default 0, or the URL's path */
    db: z.number().int().min(0).optional(),
    /** ACL user name (Redis 6+). @default the URL's, or none (the `default` user) */
    username: z.string().min(1).optional(),
    /** The password; never shown in messages, findings or resource references. @default the URL's, or none */
    password: z.string().min(1).optional(),
    /** TLS: `true`, or settings. @default `true` for `rediss://`, off otherwise */
    tls: z.union([z.boolean(), RedisTlsOptions]).optional(),
    /** Bound on opening a connection. @default "5s" */
    connectTimeout: Duration.default('5s'),
    /** Bound on any one command's reply; a command without one fails with a retriable `REDIS_CONNECTION`. @default "10s" */
    commandTimeout: Duration.default('10s'),
    /**
     * The name in resource references (`redis:<name>/…`), which locks and budgets are keyed by.
     * @default the host name
     */
    name: NAME.optional(),
    /** `CLIENT SETNAME` of our connections, so `CLIENT LIST` shows who they are. @default "aiwebtest-runbooks" */
    connectionName: z
      .string()
      .regex(/^[!-~]+$/, 'expected printable characters without spaces')
      .default('aiwebtest-runbooks'),
  })
  .refine((o) => o.url !== undefined || o.host !== undefined, {
    message: 'give a url, or a host',
    path: ['url'],
  });
export type RedisOptions = z.output<typeof RedisOptions>;
export type RedisOptionsInput = z.input<typeof RedisOptions>;

/** Options of {@link redisFrom}. */
export const RedisFromOptions = z.object({
  /** The name in resource references (`redis:<name>/…`). @default the client's host name */
  name: NAME.optional(),
});
export type RedisFromOptionsInput = z.input<typeof RedisFromOptions>;

/** Where a connection goes, as {@link RedisInstance} describes it (never with the password). */
interface Endpoint {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  tls: boolean;
}

/**
 * One Redis server (and database index): the ioredis `client` checks and actions send their commands on, a
 * `ref()` for resource references, and `close()`. Make it with {@link connectRedis} (it owns its client) or
 * {@link redisFrom} (a service's client, which `close()` leaves open).
 */
export class RedisInstance {
  /** The name in resource references. */
  readonly name: string;
  /** `[user@]host:port/db`, for messages (never the password). */
  readonly display: string;
  /** The database index this instance's client works on. */
  readonly db: number;
  /** The server's host name or address, as configured. */
  readonly host: string;
  readonly port: number;
  /** The ioredis client. Commands sent on it directly bypass the error mapping of {@link RedisInstance.run}. */
  readonly client: Redis;
  readonly #owned: boolean;
  readonly #secrets: string[];
  /** The last connection error ioredis reported: its command errors ("Connection is closed.") say less. */
  #lastError: Error | undefined;

  /** @internal Use {@link connectRedis} or {@link redisFrom}. */
  constructor(client: Redis, endpoint: Endpoint, name: string | undefined, owned: boolean) {
    this.client = client;
    this.#owned = owned;
    this.db = endpoint.db;
    this.host = endpoint.host;
    this.port = endpoint.port;
    this.name = name ?? defaultName(endpoint.host);
    this.display = displayOf(endpoint);
    const password = client.options.password;
    this.#secrets = password ? [password] : [];
    // An unhandled 'error' event would be printed by ioredis on every reconnect attempt; keep it for messages.
    client.on('error', (e: Error) => {
      this.#lastError = e;
    });
  }

  /** A resource reference under this server: `redis:<name>/<path…>`. */
  ref(...path: string[]): ResourceRef {
    return resourceRef('redis', this.name, ...path);
  }

  /**
   * Runs `work` on the client. Errors become {@link RedisError}s naming `what` (never the password); when
   * `signal` aborts first, the call rejects with its reason (the command already sent still completes on the
   * server: Redis cannot cancel one).
   */
  async run<T>(what: string, work: (client: Redis) => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    try {
      const pending = work(this.client);
      return await (signal ? unlessAborted(pending, signal) : pending);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      // While the client is not connected, its last connection error says why ("Connection is closed." not).
      throw this.toError(e, what, this.client.status === 'ready' ? undefined : this.#lastError);
    }
  }

  /**
   * Runs `work` on a connection of its own (same server, credentials and TLS; database `db`), closed
   * afterwards: for a command on another database than the instance's, without `SELECT` on a shared client.
   * It never reconnects: a connection that breaks fails the work.
   */
  async dedicated<T>(
    what: string,
    db: number,
    work: (client: Redis) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    signal?.throwIfAborted();
    const { client, lastError } = this.open({ db });
    try {
      const pending = client.connect().then(() => work(client));
      return await (signal ? unlessAborted(pending, signal) : pending);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      // A server's error reply says what happened; a bare "Connection is closed." less than the connection error.
      throw this.toError((e as Error)?.name === 'ReplyError' ? e : (lastError() ?? e), what);
    } finally {
      client.disconnect();
    }
  }

  /**
   * A new, not yet connected client to the same server (call `connect()`), that never reconnects or queues
   * commands while disconnected: what a probe needs. `lastError()` is the last error it reported. The caller
   * disconnects it.
   */
  open(override: { db?: number; connectTimeoutMs?: number; readyCheck?: boolean } = {}): {
    client: Redis;
    lastError: () => Error | undefined;
  } {
    const client = this.client.duplicate({
      db: override.db ?? this.db,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      ...(override.connectTimeoutMs === undefined ? {} : { connectTimeout: override.connectTimeoutMs }),
      ...(override.readyCheck === undefined ? {} : { enableReadyCheck: override.readyCheck }),
    });
    let last: Error | undefined;
    client.on('error', (e: Error) => {
      last = e;
    });
    return { client, lastError: () => last };
  }

  /**
   * Turns what ioredis threw into a {@link RedisError} about `what` on this server: the password is scrubbed,
   * the cause kept as a cleaned copy (without the command's arguments), and `connectionError` (the connection's last error) added when it explains more.
   */
  toError(e: unknown, what: string, connectionError?: Error): RunbookError {
    if (isRunbookError(e)) return e;
    return toRedisError(e, `${what} on ${this.display}`, this.#secrets, connectionError);
  }

  /** What `JSON.stringify` shows: name and address, never the client (its options hold the password). */
  toJSON(): { name: string; display: string; db: number } {
    return { name: this.name, display: this.display, db: this.db };
  }

  /** What `console.log` and `util.inspect` show, for the same reason. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RedisInstance(${this.name}: ${this.display})`;
  }

  /** Closes the client if this instance opened it (`connectRedis`); a client given to `redisFrom` stays open. */
  async close(): Promise<void> {
    if (!this.#owned) return;
    if (this.client.status === 'ready') {
      // QUIT waits for pending replies; a server that stopped answering must not hold close() forever.
      const timer = setTimeout(() => this.client.disconnect(), 1_000);
      await this.client.quit().catch(() => {});
      clearTimeout(timer);
    }
    this.client.disconnect();
  }
}

/** Validates the options (an {@link InputValidationError} names each bad field); connects on the first command. */
export function connectRedis(options: RedisOptionsInput): RedisInstance {
  const o = parseOptions('redis', RedisOptions, options);
  const fromUrl = o.url ? parseRedisUrl(o.url) : {};
  const endpoint: Endpoint = {
    host: o.host ?? fromUrl.host ?? '127.0.0.1',
    port: o.port ?? fromUrl.port ?? 6379,
    db: o.db ?? fromUrl.db ?? 0,
    username: o.username ?? fromUrl.username,
    tls: o.tls !== undefined ? o.tls !== false : (fromUrl.tls ?? false),
  };
  const password = o.password ?? fromUrl.password;
  // `true` (or rediss://) verifies against Node's CAs with the host as server name; an object says more.
  const tls = !endpoint.tls ? undefined : typeof o.tls === 'object' ? o.tls : { rejectUnauthorized: true };
  const config: IORedisOptions = {
    host: endpoint.host,
    port: endpoint.port,
    db: endpoint.db,
    ...(endpoint.username ? { username: endpoint.username } : {}),
    ...(password ? { password } : {}),
    ...(tls === undefined ? {} : { tls: tlsOf(tls, endpoint.host) }),
    connectionName: o.connectionName,
    connectTimeout: toMillis(o.connectTimeout),
    commandTimeout: toMillis(o.commandTimeout),
    lazyConnect: true,
    // A command sent while the server is away fails after one reconnect attempt, instead of waiting in the
    // offline queue through twenty: a check reports the outage, the engine's retry decides what next.
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2_000),
  };
  return new RedisInstance(new Redis(config), endpoint, o.name, true);
}

/**
 * Wraps a client the service already has, so checks and actions share its connection. `close()` leaves it
 * open (its owner closes it). A client with a `keyPrefix` is refused (checks and actions use full key names). Its own options apply: a client that queues commands while disconnected makes
 * checks wait as long (the step's signal and timeout still end the wait).
 */
export function redisFrom(client: Redis, options: RedisFromOptionsInput = {}): RedisInstance {
  const o = parseOptions('redisFrom', RedisFromOptions, options);
  const c = client.options;
  if (c.keyPrefix) {
    // ioredis would prefix the full key names SCAN returns once more: clearCache would delete nothing, or
    // the wrong keys.
    throw new InputValidationError('client of redisFrom', [
      {
        path: 'keyPrefix',
        message: `the client prefixes every key with ${JSON.stringify(c.keyPrefix)}; checks and actions use full key names. Pass client.duplicate({ keyPrefix: '' })`,
      },
    ]);
  }
  const endpoint: Endpoint = {
    host: c.host ?? '127.0.0.1',
    port: c.port ?? 6379,
    db: c.db ?? 0,
    username: c.username,
    tls: c.tls !== undefined,
  };
  return new RedisInstance(client, endpoint, o.name, false);
}

function tlsOf(tls: RedisTlsOptions, host: string) {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    servername: tls.servername ?? host,
    ...(tls.ca ? { ca: tls.ca } : {}),
  };
}

/** The parts of a `redis://` URL. Percent-encoded user and password are decoded. */
function parseRedisUrl(url: string): Partial<Endpoint> & { password?: string } {
  const u = new URL(url);
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? undefined : Number(path);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    ...(host ? { host } : {}),
    ...(u.port ? { port: Number(u.port) } : {}),
    ...(db === undefined ? {} : { db }),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === 'rediss:',
  };
}

function displayOf(e: Endpoint): string {
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  return `${e.username ? `${e.username}@` : ''}${host}:${e.port}/${e.db}`;
}

/** A resource-reference name from a host: `redis.aiwebtest.svc` stays; other characters (`:` of IPv6) become `-`. */
function defaultName(host: string): string {
  const cleaned = host.replace(/[^a-z0-9_.-]/gi, '-').replace(/^[^a-z0-9]+/i, '');
  return cleaned || 'redis';
}

/** `work`, or the signal's reason if it aborts first; the abort listener is removed either way. */
export async function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // The work may settle after the abort won the race: its rejection is expected, not unhandled.
  work.catch(() => {});
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * A Redis failure. `code` is `REDIS_ERROR` for an error reply of the server (`replyCode` is its first word:
 * `WRONGTYPE`, `NOAUTH`, `OOM`, `LOADING`, …) or `REDIS_CONNECTION` when there was no reply (refused,
 * closed, timed out). Connection failures and the replies `LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`,
 * `CLUSTERDOWN` and `READONLY` are retriable.
 */
export class RedisError extends RunbookError {
  /** The first word of the server's error reply (`WRONGTYPE`, `ERR`, …), `null` for connection failures. */
  readonly replyCode: string | null;
  constructor(
    code: 'REDIS_ERROR' | 'REDIS_CONNECTION',
    message: string,
    replyCode: string | null,
    cause: unknown,
  ) {
    super(code, message, {
      cause,
      details: { replyCode },
      retriable: code === 'REDIS_CONNECTION' || (replyCode !== null && RETRIABLE_REPLIES.has(replyCode)),
    });
    this.replyCode = replyCode;
  }
}

/** True when `e` is a {@link RedisError}. */
export function isRedisError(e: unknown): e is RedisError {
  return isRunbookError(e) && (e.code === 'REDIS_ERROR' || e.code === 'REDIS_CONNECTION');
}

const RETRIABLE_REPLIES = new Set(['LOADING', 'BUSY', 'TRYAGAIN', 'MASTERDOWN', 'CLUSTERDOWN', 'READONLY']);

/**
 * Turns what ioredis threw into a {@link RedisError} about `what`. `secrets` (the password) are scrubbed from
 * the message; the `cause` is a cleaned copy of `e` (name, message, stack, socket fields, the command's name:
 * never its arguments, which for a failed login hold the password); `lastError` (the client's last connection error) explains a bare "Connection is closed.".
 */
export function toRedisError(
  e: unknown,
  what: string,
  secrets: readonly string[] = [],
  lastError?: Error,
): RedisError {
  const err = e as { name?: unknown; message?: unknown } | null;
  const message = scrub(typeof err?.message === 'string' ? err.message : String(e), secrets);
  const cause = cleanCause(e, secrets);
  if (err?.name === 'ReplyError') {
    const replyCode = /^([A-Z][A-Z_-]*)\b/.exec(message)?.[1] ?? 'ERR';
    return new RedisError('REDIS_ERROR', `Redis ${what} failed: ${message}`, replyCode, cause);
  }
  const why =
    lastError && lastError !== e && !message.includes(lastError.message)
      ? `${message} (${scrub(lastError.message, secrets)})`
      : message;
  return new RedisError('REDIS_CONNECTION', `Redis ${what} failed: ${why}`, null, cause);
}

/**
 * What ioredis threw on `client`, safe to keep, log or hand to a listener: the copy {@link RedisError}s keep as
 * their `cause` (no command arguments, the client's password scrubbed). For code that talks to Redis without a
 * {@link RedisInstance} (breaker control, the request queue) and passes errors on.
 */
export function cleanRedisError(e: unknown, client: Redis): Error {
  const password = client.options.password;
  return cleanCause(e, password ? [password] : []);
}

/** Fields of a Node or ioredis error that say what failed and cannot hold a secret or a stored value. */
const CAUSE_FIELDS = ['code', 'errno', 'syscall', 'address', 'port'] as const;

/**
 * A copy of what ioredis threw, for `cause`: name, scrubbed message and stack, the socket fields and the
 * command's name. Never the original: ioredis attaches the command with its arguments, and a failed login's is
 * `HELLO 3 AUTH <user> <password>` (a `SET`'s holds the value), which `util.inspect` and loggers print.
 */
function cleanCause(e: unknown, secrets: readonly string[], depth = 0): Error {
  if (!(e instanceof Error)) return new Error(scrub(String(e), secrets));
  const copy = new Error(scrub(e.message, secrets)) as Error & Record<string, unknown>;
  copy.name = e.name;
  copy.stack = e.stack === undefined ? undefined : scrub(e.stack, secrets);
  const source = e as unknown as Record<string, unknown>;
  for (const field of CAUSE_FIELDS) {
    const value = source[field];
    if (typeof value === 'string' || typeof value === 'number') copy[field] = value;
  }
  const command = source.command as { name?: unknown } | undefined;
  if (typeof command?.name === 'string') copy.command = { name: command.name };
  // Node's connect to a name with several addresses fails with an AggregateError of one error per address.
  if (depth < 2 && Array.isArray(source.errors)) {
    copy.errors = source.errors.slice(0, 10).map((inner) => cleanCause(inner, secrets, depth + 1));
  }
  return copy;
}

function scrub(text: string, secrets: readonly string[]): string {
  let out = text.replace(/(\/\/[^:/@\s]*:)[^@\s]+@/g, '$1[REDACTED]@');
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('[REDACTED]');
  return out;
}
