/**
 * Runbook 13 of the operations manual, "Complete System Failure" (alert `SystemDown`, `system_health == 0`):
 * all services are down. Diagnosis reads the cluster (API, nodes, every pod, rollout history, events), the
 * database server and Redis, and the last record monitoring kept of the data before the incident. Recovery
 * follows the manual's order: PostgreSQL restored to that point in time from the base backup and the WAL
 * archive, PgBouncer pointed at it, Redis restored from its RDB snapshot, every service redeployed in order
 * and awaited, health verified, a smoke test, the data compared with the pre-incident counts, and the
 * status page told the platform is back.
 */
import { randomBytes } from 'node:crypto';
import { chown, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  type Check,
  Duration,
  defineAction,
  defineCheck,
  defineRunbook,
  type Evidence,
  type Finding,
  finding,
  formatMillis,
  isReplayableCheck,
  type Json,
  NonRetriableError,
  onAlert,
  type ReplayableCheck,
  resourceRef,
  toMillis,
} from '@aiwebtest/runbooks';
import {
  adminCommand,
  basebackupDriver,
  type PgBouncerConsole,
  pitrRestore,
} from '@aiwebtest/runbooks/postgres';
import { restoreRdb } from '@aiwebtest/runbooks/redis';
import pg from 'pg';
import { z } from 'zod';
import {
  type AiWebTestEnvironment,
  connectionOf,
  type PackRunbookOptions,
  PlatformNamespace,
} from './environment';
import { backendHealth, sampleRequest } from './platform-checks';
import { connectionProbe } from './postgres-connection-loss';

/** The tables of the manual's data-integrity step, as monitoring records them (`aiwebtest_table_rows{table}`). */
export const INTEGRITY_TABLES = ['users', 'test_cases', 'test_executions'] as const;

/** Input of `system-failure`. */
export const SystemFailureInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /**
   * Restore PostgreSQL to the last record monitoring kept at or before this time (ISO 8601 with a zone).
   * @default the last record there is (taken before the database was lost)
   */
  restoreTo: z.iso
    .datetime({ offset: true, message: 'expected an ISO 8601 time with a zone, e.g. 2026-01-31T02:00:00Z' })
    .optional(),
  /** How long the redeployed workloads may take to be ready (`kubectl wait --timeout=300s`). @default "300s" */
  readyTimeout: Duration.default('300s'),
  /** Bound on the PostgreSQL restore (copying the backup, replaying WAL). @default "30m" */
  restoreTimeout: Duration.default('30m'),
  /** How long the health checks keep trying while the redeployed services come up. @default "60s" */
  verifyWithin: Duration.default('60s'),
  /** The smoke test's requirements text. @default "Test user login" */
  smokeTest: z.string().min(1).max(2000).default('Test user login'),
});
export type SystemFailureInput = z.input<typeof SystemFailureInput>;

// ---------------------------------------------------------------------------------------------------------
// PgBouncer's [databases] entry: where the application's database server is, and how it is moved.

/** A database server's address, as a PgBouncer `[databases]` entry names it. */
export interface DatabaseAddress {
  host: string;
  port: number;
}

/** The line of `[databases]` that defines `database` (index into the lines), or -1. */
function entryLine(lines: string[], database: string): number {
  let inDatabases = false;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inDatabases = line.toLowerCase() === '[databases]';
      continue;
    }
    if (!inDatabases || line.startsWith(';') || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0 && line.slice(0, eq).trim() === database) return i;
  }
  return -1;
}

/** Where PgBouncer's ini sends `database` (`host=… port=…`; port 5432 when unset), or `null` without an entry. */
export function pgbouncerDatabaseAddress(ini: string, database: string): DatabaseAddress | null {
  const lines = ini.split('\n');
  const i = entryLine(lines, database);
  if (i < 0) return null;
  const value = (lines[i] as string).slice((lines[i] as string).indexOf('=') + 1);
  const pairs = Object.fromEntries(
    value
      .trim()
      .split(/\s+/)
      .map((pair) => pair.split('=', 2) as [string, string | undefined]),
  );
  return { host: pairs.host ?? '127.0.0.1', port: Number(pairs.port ?? 5432) };
}

/** The ini with `database`'s entry sent to `to` (its other settings kept). */
export function withDatabaseAddress(ini: string, database: string, to: DatabaseAddress): string {
  const lines = ini.split('\n');
  const i = entryLine(lines, database);
  if (i < 0) throw new Error(`PgBouncer's [databases] has no entry for ${database}`);
  const line = lines[i] as string;
  const eq = line.indexOf('=');
  const settings = line
    .slice(eq + 1)
    .trim()
    .split(/\s+/)
    .filter((pair) => !/^(host|port)=/.test(pair));
  lines[i] =
    `${line.slice(0, eq).trimEnd()} = ${[`host=${to.host}`, `port=${to.port}`, ...settings].join(' ')}`;
  return lines.join('\n');
}

const HOST = z.string().regex(/^[A-Za-z0-9.:-]+$/, 'expected a host name or IP address');

/** Parameters of {@link pointPgBouncer}'s plan. */
export type PointPgBouncerParams = {
  ini: string;
  database: string;
  before: DatabaseAddress;
  after: DatabaseAddress;
};

/**
 * Points PgBouncer's `[databases]` entry of `database` at another server: the ini is rewritten (atomically,
 * owner and mode kept, only `host=`/`port=` of that entry changed), then the admin console's `RELOAD` makes
 * PgBouncer read it and `RECONNECT "<db>"` replaces the server connections still open to the old server.
 * Apply refuses (`STALE_PLAN`) when the entry no longer reads the plan's `before`; verify reads `SHOW DATABASES`;
 * revert writes the old address back the same way, refusing (`STALE_REVERT`) when the entry no longer reads
 * the plan's `after`. Risk `high`: every client of the database follows.
 */
export function pointPgBouncer(options: {
  ini: string;
  database: string;
  to: DatabaseAddress;
  console: PgBouncerConsole;
}) {
  const to = {
    host: HOST.parse(options.to.host),
    port: z.number().int().min(1).max(65_535).parse(options.to.port),
  };
  const target = resourceRef('pgbouncer', options.database, 'server');
  const shown = (a: DatabaseAddress | null) => (a ? `${a.host}:${a.port}` : '(no entry)');
  const sameAddress = (a: DatabaseAddress | null, b: DatabaseAddress) =>
    a?.host === b.host && a?.port === b.port;
  /**
   * Rewrites the entry to `address` only while it still reads `expected` (or already `address`, after a crash
   * between the write and its record): an entry someone else changed since is theirs, not ours to overwrite.
   */
  const rewrite = async (
    ini: string,
    expected: DatabaseAddress,
    address: DatabaseAddress,
    signal: AbortSignal,
    stale: { code: 'STALE_PLAN' | 'STALE_REVERT'; what: string },
  ) => {
    const text = await readFile(ini, 'utf8');
    const now = pgbouncerDatabaseAddress(text, options.database);
    if (!sameAddress(now, expected) && !sameAddress(now, address)) {
      throw new NonRetriableError(
        `${ini} sends ${options.database} to ${shown(now)} now, not ${shown(expected)} as ${stale.what}: someone else changed it. Look at PgBouncer's [databases] before changing it again.`,
        { code: stale.code },
      );
    }
    const info = await stat(ini);
    const temporary = `${ini}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temporary, withDatabaseAddress(text, options.database, address), {
      mode: info.mode & 0o777,
    });
    await chown(temporary, info.uid, info.gid).catch(() => {});
    await rename(temporary, ini);
    await options.console.command('RELOAD', { signal });
    await options.console.command(adminCommand('RECONNECT', options.database), { signal });
  };
  return defineAction<PointPgBouncerParams, { at: string }>({
    kind: 'aiwebtest.pgbouncer-point',
    target,
    risk: 'high',
    destructive: false,
    description: `Point PgBouncer's ${options.database} at ${to.host}:${to.port} (ini + RELOAD + RECONNECT)`,
    async plan() {
      const before = pgbouncerDatabaseAddress(await readFile(options.ini, 'utf8'), options.database);
      if (!before) throw new Error(`${options.ini} has no [databases] entry for ${options.database}`);
      const same = before.host === to.host && before.port === to.port;
      return {
        summary: same
          ? `PgBouncer already sends ${options.database} to ${to.host}:${to.port}: RELOAD and RECONNECT only`
          : `point PgBouncer's ${options.database} from ${before.host}:${before.port} to ${to.host}:${to.port}, then RELOAD and RECONNECT`,
        changes: [
          {
            target,
            field: 'host:port',
            before: `${before.host}:${before.port}`,
            after: `${to.host}:${to.port}`,
          },
        ],
        params: { ini: options.ini, database: options.database, before, after: to },
      };
    },
    async apply(ctx, plan) {
      await rewrite(plan.params.ini, plan.params.before, plan.params.after, ctx.signal, {
        code: 'STALE_PLAN',
        what: 'planned',
      });
      ctx.log(
        `PgBouncer reloaded: ${plan.params.database} → ${plan.params.after.host}:${plan.params.after.port}`,
      );
      return { at: new Date().toISOString() };
    },
    async verify(ctx, applied) {
      const { after, database } = applied.plan.params;
      const db = await options.console.requireDatabase(database, { signal: ctx.signal });
      const ok = db.host === after.host && db.port === after.port;
      return finding(
        ok ? 'ok' : 'fail',
        ok
          ? `PgBouncer sends ${database} to ${after.host}:${after.port} (SHOW DATABASES)`
          : `PgBouncer still sends ${database} to ${db.host}:${db.port}, not ${after.host}:${after.port}`,
        { host: db.host, port: db.port },
      );
    },
    async revert(ctx, applied) {
      const { ini, before, after } = applied.plan.params;
      await rewrite(ini, after, before, ctx.signal, { code: 'STALE_REVERT', what: 'the apply left it' });
    },
  });
}

// ---------------------------------------------------------------------------------------------------------
// The record monitoring kept: counts and the database time they were counted at.

/** What {@link preIncidentRecord} read from Prometheus. */
export interface PreIncidentRecordData {
  /** `aiwebtest_table_rows{table}` of the record. */
  counts: Record<string, number>;
  /** The database time of the count, microseconds since the epoch; `null` without a record. */
  recordedAtMicros: number | null;
  /** The same as ISO 8601 with microseconds (a recovery target). */
  recordedAt: string | null;
  error: string | null;
}

const Vector = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(
      z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) }),
    ),
  }),
});

/** Microseconds since the epoch as ISO 8601 with all six fraction digits (`2026-01-31T02:00:00.123456Z`). */
export function microsToIso(micros: number): string {
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = String(micros - seconds * 1_000_000).padStart(6, '0');
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
}

async function instantQuery(url: string, query: string, at: Date | undefined, signal: AbortSignal) {
  const u = new URL('/api/v1/query', url);
  u.searchParams.set('query', query);
  if (at) u.searchParams.set('time', String(at.getTime() / 1000));
  const response = await fetch(u, { signal, headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`Prometheus answered ${response.status} ${response.statusText}`);
  return Vector.parse(await response.json()).data.result;
}

/**
 * The manual's "compare with pre-incident counts from monitoring": the last `aiwebtest_table_rows` record
 * Prometheus kept at or before `at` (`last_over_time(…[6h])`, so a stale series still counts), and the
 * database time it was counted at. `fail` without a record: nothing says where to restore to.
 */
export function preIncidentRecord(options: {
  prometheusUrl: string | undefined;
  at?: Date;
}): Check<PreIncidentRecordData> {
  const at = options.at;
  return defineCheck<PreIncidentRecordData>({
    kind: 'aiwebtest.pre-incident-record',
    description: `the last record of ${INTEGRITY_TABLES.join(', ')} in Prometheus${at ? ` at or before ${at.toISOString()}` : ''}`,
    async run(ctx) {
      const empty = { counts: {}, recordedAtMicros: null, recordedAt: null };
      if (!options.prometheusUrl) {
        return finding(
          'fail',
          'no Prometheus configured (PROMETHEUS_URL): no pre-incident record to restore to',
          {
            ...empty,
            error: 'no Prometheus URL',
          },
        );
      }
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]);
      try {
        const [time] = await instantQuery(
          options.prometheusUrl,
          'last_over_time(aiwebtest_table_rows_timestamp_seconds[6h])',
          at,
          signal,
        );
        const rows = await instantQuery(
          options.prometheusUrl,
          'last_over_time(aiwebtest_table_rows[6h])',
          at,
          signal,
        );
        const counts = Object.fromEntries(rows.map((r) => [r.metric.table ?? '?', Number(r.value[1])]));
        const missing = INTEGRITY_TABLES.filter((t) => counts[t] === undefined);
        if (!time || missing.length > 0) {
          return finding(
            'fail',
            `Prometheus has no record of ${missing.length ? missing.join(', ') : 'the count time'} in the 6 h before ${at?.toISOString() ?? 'now'}`,
            { ...empty, counts, error: 'no record' },
          );
        }
        // Seconds to the microsecond (the count's statement_timestamp): exact once rounded to whole µs.
        const micros = Math.round(Number(time.value[1]) * 1e6);
        const recordedAt = microsToIso(micros);
        const evidence: Evidence[] = [
          {
            kind: 'table',
            title: `aiwebtest_table_rows recorded at ${recordedAt}`,
            columns: ['table', 'rows'],
            rows: INTEGRITY_TABLES.map((t) => [t, counts[t] ?? null]),
          },
        ];
        return finding(
          'ok',
          `last record before the incident: ${INTEGRITY_TABLES.map((t) => `${t} ${counts[t]}`).join(', ')} at ${recordedAt}`,
          { counts, recordedAtMicros: micros, recordedAt, error: null },
          evidence,
        );
      } catch (e) {
        ctx.signal.throwIfAborted();
        const error = e instanceof Error ? e.message : String(e);
        return finding('fail', `Prometheus could not be asked for the pre-incident record: ${error}`, {
          ...empty,
          error,
        });
      }
    },
  });
}

// ---------------------------------------------------------------------------------------------------------
// Counting, probing, waiting.

/** What {@link tableCounts} found. */
export interface TableCountsData {
  counts: Record<string, number | null>;
  expected: Record<string, number>;
  error: string | null;
}

/** What {@link tableCounts} read: the row counts, or why counting failed (with the counts made until then). */
export interface TableCountsObservation {
  counts: Record<string, number | null>;
  error: string | null;
}

/**
 * `SELECT COUNT(*)` of each integrity table on a new connection to `url`, compared with the recorded counts:
 * `exact` (a restore to the record's time must have exactly them) or `at-least` (after recovery, no table may
 * have fewer rows than before the incident: rows since are new work). Replayable
 * ({@link TableCountsObservation}): a replay compares the counts with `expected` and `compare` as they are now.
 */
export function tableCounts(options: {
  url: string;
  where: string;
  expected: Record<string, number>;
  compare: 'exact' | 'at-least';
}): ReplayableCheck<TableCountsData, TableCountsObservation> {
  return defineCheck({
    kind: 'aiwebtest.table-counts',
    description: `SELECT COUNT(*) FROM ${INTEGRITY_TABLES.join(', ')} on ${options.where}`,
    async read(ctx): Promise<TableCountsObservation> {
      const client = new pg.Client({
        connectionString: options.url,
        connectionTimeoutMillis: 5_000,
        query_timeout: 30_000,
        application_name: 'aiwebtest-runbooks',
      });
      client.on('error', () => {});
      const counts: Record<string, number | null> = {};
      try {
        await client.connect();
        for (const table of INTEGRITY_TABLES) {
          // Identifiers from a fixed list, never from input.
          const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
          counts[table] = Number(rows[0]?.n ?? Number.NaN);
        }
      } catch (e) {
        ctx.signal.throwIfAborted();
        return { counts, error: (e as Error).message };
      } finally {
        await client.end().catch(() => {});
      }
      return { counts, error: null };
    },
    judge({ counts, error }): Finding<TableCountsData> {
      if (error !== null) {
        return finding('fail', `counting on ${options.where} failed: ${error}`, {
          counts,
          expected: options.expected,
          error,
        });
      }
      const rows = INTEGRITY_TABLES.map((t) => {
        const actual = counts[t] ?? null;
        const want = options.expected[t];
        const ok =
          want === undefined || actual === null
            ? false
            : options.compare === 'exact'
              ? actual === want
              : actual >= want;
        return { table: t, actual, want, ok };
      });
      const bad = rows.filter((r) => !r.ok);
      const relation = options.compare === 'exact' ? '=' : '≥';
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `row counts on ${options.where} vs the pre-incident record`,
          columns: ['table', 'pre-incident', 'now', 'ok'],
          rows: rows.map((r) => [r.table, r.want ?? null, r.actual, r.ok]),
        },
      ];
      const line = rows.map((r) => `${r.table} ${r.actual} (${relation} ${r.want})`).join(', ');
      return bad.length === 0
        ? finding(
            'ok',
            `counts on ${options.where} match the pre-incident record: ${line}`,
            { counts, expected: options.expected, error: null },
            evidence,
          )
        : finding(
            'fail',
            `counts on ${options.where} differ from the pre-incident record: ${bad.map((r) => `${r.table} ${r.actual}, expected ${relation} ${r.want}`).join('; ')}`,
            { counts, expected: options.expected, error: null },
            evidence,
          );
    },
  });
}

/** The manual's `SELECT COUNT(*) FROM users` through PgBouncer: `ok` when it answers with users. */
function usersCount(url: string): Check<{ users: number | null; error: string | null }> {
  return defineCheck<{ users: number | null; error: string | null }>({
    kind: 'aiwebtest.users-count',
    description: 'SELECT COUNT(*) FROM users through PgBouncer',
    async run(ctx) {
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: 3_000,
        query_timeout: 10_000,
        application_name: 'aiwebtest-runbooks',
      });
      client.on('error', () => {});
      try {
        await client.connect();
        const { rows } = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM users');
        const users = Number(rows[0]?.n ?? 0);
        return finding(users > 0 ? 'ok' : 'fail', `SELECT COUNT(*) FROM users answers ${users}`, {
          users,
          error: null,
        });
      } catch (e) {
        ctx.signal.throwIfAborted();
        const error = (e as Error).message;
        return finding('fail', `SELECT COUNT(*) FROM users fails: ${error}`, { users: null, error });
      } finally {
        await client.end().catch(() => {});
      }
    },
  });
}

/** A check re-run until it is `ok` or `withinMs` passed; the last finding counts. */
function eventually<T>(inner: Check<T>, withinMs: number, pollMs = 500): Check<T> {
  return defineCheck<T>({
    kind: inner.kind,
    description: `${inner.description ?? inner.kind} (retried for ${formatMillis(withinMs)})`,
    async run(ctx) {
      const deadline = Date.now() + withinMs;
      for (;;) {
        const result = await inner.run(ctx);
        if (result.status === 'ok' || Date.now() >= deadline) return result;
        await new Promise((r) => setTimeout(r, pollMs));
        ctx.signal.throwIfAborted();
      }
    },
  });
}

/** What {@link tolerant} read: the inner check's observation, or the error it threw. */
export type TolerantObservation<O> = { seen: O; error: null } | { seen: null; error: string };

/**
 * A diagnosis check whose error (a workload that no longer exists: 404) is its finding, not the run's end.
 * A replayable check stays replayable: the error, or the inner observation, is what it records.
 */
export function tolerant<T, O>(
  inner: ReplayableCheck<T, O>,
): ReplayableCheck<T | null, TolerantObservation<O>>;
export function tolerant<T>(inner: Check<T>): Check<T | null>;
export function tolerant<T>(inner: Check<T>): Check<T | null> {
  const about = { kind: inner.kind, description: inner.description ?? inner.kind };
  const failed = (e: unknown) => `could not be read: ${(e as Error).message.split('\n')[0]}`;
  if (isReplayableCheck(inner)) {
    return defineCheck({
      ...about,
      async read(ctx): Promise<TolerantObservation<Json>> {
        try {
          return { seen: await inner.read(ctx), error: null };
        } catch (e) {
          ctx.signal.throwIfAborted();
          return { seen: null, error: failed(e) };
        }
      },
      judge(o: TolerantObservation<Json>): Finding<T | null> {
        if (o.error !== null) return finding('fail', o.error, null);
        try {
          return inner.judge(o.seen);
        } catch (e) {
          return finding('fail', failed(e), null); // as a throwing run() was, before the split
        }
      },
    });
  }
  return defineCheck<T | null>({
    ...about,
    async run(ctx) {
      try {
        return await inner.run(ctx);
      } catch (e) {
        ctx.signal.throwIfAborted();
        return finding('fail', failed(e), null);
      }
    },
  });
}

/** A free TCP port on 127.0.0.1 for a restored server. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The platform's manifests: every `.json` file of the directory in name order (`List`s are flattened). */
export async function loadManifests(
  dir: string,
): Promise<{ files: string[]; manifests: Record<string, unknown>[] }> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  const manifests: Record<string, unknown>[] = [];
  for (const file of files) {
    const doc = JSON.parse(await readFile(join(dir, file), 'utf8')) as { kind?: string; items?: unknown[] };
    const items = doc.kind === 'List' && Array.isArray(doc.items) ? doc.items : [doc];
    manifests.push(...(items as Record<string, unknown>[]));
  }
  return { files, manifests };
}

/** The disaster-recovery fields a recovery needs, or the names of those missing. */
function recoveryEnvironment(env: AiWebTestEnvironment) {
  const fields = {
    manifestsDir: env.manifestsDir,
    postgresBackupDir: env.postgresBackupDir,
    postgresWalArchiveDir: env.postgresWalArchiveDir,
    postgresRestoreDir: env.postgresRestoreDir,
    pgbouncerConfig: env.pgbouncerConfig,
    redisSnapshot: env.redisSnapshot,
  };
  const missing = Object.entries(fields)
    .filter(([, v]) => !v)
    .map(([k]) => k);
  return missing.length
    ? { missing }
    : { missing: [], fields: fields as Record<keyof typeof fields, string> };
}

/**
 * Runbook 13, complete system failure. Diagnosis: `cluster-info`, `nodes`, `pods` (every pod of the
 * namespace), `rollout-history` (backend), `events`, `database-server` (the server PgBouncer names, directly),
 * `database-connection` (through PgBouncer), `redis`, `pre-incident-record` (Prometheus). Recovery, when the
 * platform is down: `restore-postgres` (PITR to the record's time; approval), `restored-counts` (exactly the
 * recorded counts, before anyone writes), `point-pgbouncer`, `restore-redis` (RDB; approval), `redeploy` (the
 * manifests in the manual's order, awaited; approval), `pods-ready`, `backend-health`, `users-count`,
 * `smoke-test`, `data-integrity`, then the status page (`statuspage`).
 */
export function createSystemFailureRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'system-failure',
    title: 'Complete system failure (disaster recovery)',
    description:
      'All services down: restores PostgreSQL to the last pre-incident record (PITR), points PgBouncer at it, restores Redis from its RDB snapshot, redeploys every service in order, verifies health, runs a smoke test, compares the data with the pre-incident counts and updates the status page.',
    severity: 'P0',
    input: SystemFailureInput,
    triggers: [onAlert({ alertname: 'SystemDown' })],
    tags: ['component: platform', 'runbook: 13', 'disaster-recovery'],
    async run({ input, step, mode, runId }) {
      const platform = connect();
      const { k8s, env } = platform;
      const namespace = input.namespace;
      const database = decodeURIComponent(new URL(env.databaseUrl).pathname.replace(/^\//, ''));

      // Diagnosis 1-2: the cluster, every pod, recent changes.
      const cluster = await step.check('cluster-info', tolerant(k8s.clusterHealth()));
      await step.check('nodes', tolerant(k8s.nodeStatus()));
      const pods = await step.check('pods', tolerant(k8s.podStatus({ namespace, selector: 'app' })));
      await step.check('rollout-history', tolerant(k8s.rolloutHistory({ namespace, name: 'backend' })));
      await step.check('events', tolerant(k8s.events({ namespace, since: '1h' })));

      // Diagnosis 3: the data stores.
      const dr = recoveryEnvironment(env);
      const ini = env.pgbouncerConfig;
      const address = ini ? pgbouncerDatabaseAddress(await readFile(ini, 'utf8'), database) : null;
      const server = address
        ? await step.check(
            'database-server',
            connectionProbe({
              databaseUrl: `postgres://postgres@${address.host}:${address.port}/${encodeURIComponent(database)}`,
              statement: 'SELECT 1',
              timeoutMs: 3_000,
            }),
          )
        : null;
      const connection = await step.check(
        'database-connection',
        connectionProbe({ databaseUrl: env.databaseUrl, statement: 'SELECT 1', timeoutMs: 3_000 }),
      );
      const redisPing = await step.check('redis', tolerant(platform.redis.ping()));
      const record = await step.check(
        'pre-incident-record',
        preIncidentRecord({
          prometheusUrl: env.prometheusUrl,
          ...(input.restoreTo ? { at: new Date(input.restoreTo) } : {}),
        }),
      );

      const databaseLost = (server ?? connection).status === 'fail';
      const podsDown = pods.status === 'fail';
      if (!databaseLost && !podsDown) {
        return step.done(
          `not a complete failure: the database answers (${connection.summary}) and pods run (${pods.summary}); follow the alert of the failing part instead`,
        );
      }
      if (cluster.status === 'fail') {
        return step.escalate(
          `the Kubernetes API does not answer (${cluster.summary}): restore the cluster first (managed Kubernetes: contact the cloud provider's support)`,
        );
      }
      if (dr.missing.length > 0 || !dr.fields) {
        return step.escalate(
          `no disaster-recovery setup to restore from (missing ${dr.missing.join(', ')}): restore by hand from the backups`,
        );
      }
      const f = dr.fields;
      const recorded = record.data;
      if (databaseLost && (record.status !== 'ok' || !recorded.recordedAt)) {
        return step.escalate(
          `the database is lost and ${record.summary}: choose a restore point by hand (restoreTo) from the backups and WAL archive`,
        );
      }
      const cause =
        [
          databaseLost ? `database server down (${(server ?? connection).summary})` : '',
          podsDown ? `pods: ${pods.summary}` : '',
        ]
          .filter(Boolean)
          .join('; ') || 'platform down';

      // Recovery step 2: PostgreSQL to the point monitoring last recorded, in a new data directory on its own
      // port, checked (exact counts) before PgBouncer is pointed at it.
      let restoredNote = 'not needed (database answers)';
      if (databaseLost && recorded.recordedAt && recorded.recordedAtMicros !== null) {
        // A port of its own, not the lost server's: the platform's clients (and PgBouncer) reach the restored
        // server only once its counts are checked and PgBouncer is pointed at it.
        const port = await freePort();
        const restore = await step.act(
          'restore-postgres',
          pitrRestore({
            driver: basebackupDriver({ backupDir: f.postgresBackupDir, archiveDir: f.postgresWalArchiveDir }),
            target: { time: recorded.recordedAt },
            dataDir: join(f.postgresRestoreDir, `restored-${recorded.recordedAtMicros}`),
            port,
            database,
            name: database,
            verify: { tables: INTEGRITY_TABLES.map((name) => ({ name })) },
            startTimeout: input.restoreTimeout,
            promoteTimeout: input.restoreTimeout,
            prepareTimeout: input.restoreTimeout,
            progressInterval: '2s',
          }),
          {
            onGiveUp: step.escalate(
              'the PITR restore failed: restore by hand from the base backup and the WAL archive',
            ),
          },
        );
        if (restore.status === 'applied') {
          const restoredPort = restore.plan.params.port;
          const exact = await step.check(
            'restored-counts',
            tableCounts({
              url: `postgres://postgres@127.0.0.1:${restoredPort}/${encodeURIComponent(database)}`,
              where: `the restored server (127.0.0.1:${restoredPort})`,
              expected: recorded.counts,
              compare: 'exact',
            }),
          );
          if (exact.status !== 'ok') {
            return step.escalate(
              `the restored database does not match the pre-incident record (${exact.summary}): the restored server on 127.0.0.1:${restoredPort} is left running, PgBouncer still points at the old one; decide by hand`,
            );
          }
          await step.act(
            'point-pgbouncer',
            pointPgBouncer({
              ini: f.pgbouncerConfig,
              database,
              to: { host: '127.0.0.1', port: restoredPort },
              console: platform.pgbouncer.console,
            }),
            {
              onGiveUp: step.escalate(
                'PgBouncer could not be pointed at the restored server: edit its [databases] entry by hand',
              ),
            },
          );
          restoredNote = `restored to ${recorded.recordedAt} on 127.0.0.1:${restoredPort}`;
        } else {
          restoredNote = restore.status;
        }
      }

      // Step 3: Redis from its RDB snapshot (with the database restored, or when Redis is gone or empty).
      const dbsize = await platform.redis.client.dbsize().catch(() => null);
      let redisNote = 'not needed';
      if (databaseLost || redisPing.status === 'fail' || dbsize === 0) {
        const redis = await step.act(
          'restore-redis',
          restoreRdb(platform.redis.instance, { snapshot: f.redisSnapshot }),
          {
            onGiveUp: step.escalate('Redis could not be restored from its snapshot: restore it by hand'),
          },
        );
        redisNote = redis.status === 'applied' ? (redis.verification?.summary ?? 'restored') : redis.status;
      }

      // Steps 4-5: every service, in the manual's order, and wait for all of it to be ready.
      const { files, manifests } = await loadManifests(f.manifestsDir);
      const redeploy = await step.act(
        'redeploy',
        k8s.applyManifests({ manifests: manifests as never, order: 'given', timeout: input.readyTimeout }),
        {
          onGiveUp: step.escalate(
            `the redeploy (${files.join(', ')}) did not become ready: check the failing workloads' events`,
          ),
        },
      );

      if (mode !== 'execute') {
        return step.done(
          `${cause}. ${mode === 'plan' ? 'Would' : 'Plan or execute this runbook to'} restore PostgreSQL to ${recorded.recordedAt ?? 'its last record'}, point PgBouncer at it, restore Redis from ${f.redisSnapshot}, redeploy ${files.join(', ')} and verify`,
        );
      }

      // Step 6 and the verification steps.
      const verifyMs = toMillis(input.verifyWithin);
      const ready = await step.check(
        'pods-ready',
        eventually(k8s.podStatus({ namespace, selector: 'app' }), verifyMs),
      );
      const health = await step.check('backend-health', eventually(backendHealth(env.backendUrl), verifyMs));
      const users = await step.check('users-count', eventually(usersCount(env.databaseUrl), verifyMs));
      const smoke = await step.check(
        'smoke-test',
        eventually(
          sampleRequest({ backendUrl: env.backendUrl, agent: 'generation_agent', prompt: input.smokeTest }),
          verifyMs,
        ),
      );
      const integrity =
        recorded.recordedAt !== null
          ? await step.check(
              'data-integrity',
              tableCounts({
                url: env.databaseUrl,
                where: 'the database through PgBouncer',
                expected: recorded.counts,
                compare: 'at-least',
              }),
            )
          : null;
      const failed = [ready, health, users, smoke, integrity].filter(
        (x): x is NonNullable<typeof x> => x !== null && x.status === 'fail',
      );
      if (failed.length > 0) {
        return step.escalate(`recovery incomplete: ${failed.map((x) => x.summary).join('; ')}`);
      }
      await step.notify('status-back-online', {
        channel: 'statuspage',
        severity: 'P0',
        message: `All AI-Web-Test services are back online after a complete outage. Data restored to ${recorded.recordedAt ?? 'the last backup'}; work submitted after that point may need to be repeated. (run ${runId})`,
      });
      return step.done(
        `${cause}. Recovered: PostgreSQL ${restoredNote}; Redis ${redisNote}; redeploy ${redeploy.status}; ${ready.summary}; ${health.summary}; ${smoke.summary}; ${integrity?.summary ?? 'no pre-incident record to compare'}`,
      );
    },
  });
}

/** `system-failure` on the environment of `connectFromEnvironment` (env vars or the lab's lab.json). */
export const systemFailure = createSystemFailureRunbook();
