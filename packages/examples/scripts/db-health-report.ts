/**
 * A scheduled PostgreSQL health report, for cron or a systemd timer: the SDK's PostgreSQL checks run
 * directly — `check.run(ctx)` with a step context built here, no engine, no run store — and their findings
 * are printed as a table (or JSON), with an exit code a scheduler can act on.
 *
 * ```sh
 * DATABASE_URL=postgres://monitor@db:5432/aiwebtest node scripts/db-health-report.ts
 * node scripts/db-health-report.ts --database-url postgres://monitor@db:5432/aiwebtest --json
 * ```
 *
 * Exit codes: 0 no check reached `--fail-on` (default `fail`), 1 one did (or could not run), 2 bad usage.
 *
 * Node runs this file as it is (type stripping): it imports packages only and keeps to erasable TypeScript.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Check,
  createRedactor,
  Duration,
  type Evidence,
  type FindingStatus,
  formatMillis,
  type Json,
  parseOptions,
  type StepContext,
  toMillis,
} from '@aiwebtest/runbooks';
import {
  type ActiveQueriesData,
  type ArchiverStatusData,
  activeQueries,
  archiverStatus,
  type ConnectionUsageData,
  type ConnectivityData,
  connectionUsage,
  connectivity,
  connectPostgres,
  type DatabaseSizesData,
  databaseSizes,
  type IdleInTransactionData,
  type InvalidIndexesData,
  idleInTransaction,
  invalidIndexes,
  type PostgresDatabase,
  Size,
  type SlowQueriesData,
  slowQueries,
  type TableSizesData,
  tableSizes,
  toBytes,
  type UnusedIndexesData,
  unusedIndexes,
} from '@aiwebtest/runbooks/postgres';
import { z } from 'zod';

/** The checks of the report, in the order they run and are printed. */
export const REPORT_CHECKS = [
  'connectivity',
  'connections',
  'active-queries',
  'idle-in-transaction',
  'slow-queries',
  'database-sizes',
  'table-bloat',
  'unused-indexes',
  'invalid-indexes',
  'wal-archiving',
] as const;
/** The name of one check of the report. */
export type ReportCheckName = (typeof REPORT_CHECKS)[number];

/** How a row of the report ended: a finding's status, `error` (the check threw) or `skipped`. */
export type ReportStatus = FindingStatus | 'error' | 'skipped';

// ok < unknown < warn < fail, as the SDK's worstStatus orders them; a check that could not run counts as a
// fail (a health report that silently lost a check is not healthy), one skipped because the database is
// unreachable counts as nothing (connectivity already failed).
const RANK: Record<ReportStatus, number> = { skipped: 0, ok: 0, unknown: 1, warn: 2, fail: 3, error: 3 };

const Share = (what: string) =>
  z.coerce
    .number({ error: `expected a number between 0 and 1 (the share of ${what}), e.g. 0.8` })
    .min(0, `expected a number between 0 and 1 (the share of ${what}), e.g. 0.8`)
    .max(1, `expected a number between 0 and 1 (the share of ${what}), e.g. 0.8`);

/**
 * A `postgres://` URL. Messages never repeat the value: it may hold a password. The check happens here, not
 * in the SDK, so that the report can refuse it with exit code 2 before it opens anything.
 */
const DatabaseUrl = z.string({ error: 'is required: pass --database-url or set DATABASE_URL' }).refine(
  (url) => {
    try {
      const parsed = new URL(url);
      return /^postgres(ql)?:$/.test(parsed.protocol) && parsed.hostname !== '';
    } catch {
      return false;
    }
  },
  { error: 'expected a connection URL like postgres://user@host:5432/database (the value is not shown)' },
);

/** Options of {@link runHealthReport}; the command line maps onto them one to one (see `--help`). */
export const HealthReportOptions = z
  .object({
    /** The database to report on, `postgres://user:password@host:port/database`. */
    databaseUrl: DatabaseUrl,
    /** Which checks to run. @default every one of {@link REPORT_CHECKS} */
    checks: z
      .array(
        z.enum(REPORT_CHECKS, {
          error: (issue) => `unknown check "${String(issue.input)}": use ${REPORT_CHECKS.join(', ')}`,
        }),
      )
      .min(1, 'name at least one check')
      .default([...REPORT_CHECKS]),
    /** Share of connection slots in use that is a `warn`. @default 0.8 (the manual's alert) */
    connectionsWarn: Share('connection slots in use').default(0.8),
    /** Share of connection slots in use that is a `fail`. @default 0.95 */
    connectionsFail: Share('connection slots in use').default(0.95),
    /** A query running this long is a `fail`; one running a minute (or this, if shorter) a `warn`. @default "5m" */
    longQuery: Duration.default('5m'),
    /** A session idle in a transaction this long is a `fail`. @default "5m" */
    idleTransaction: Duration.default('5m'),
    /** A statement whose mean time (`pg_stat_statements`) is this long is a `fail`. @default "1s" */
    slowQuery: Duration.default('1s'),
    /** A database larger than this is a `warn`. @default none (sizes are only reported) */
    maxDatabaseSize: Size.optional(),
    /** WAL archiving off is a `fail` instead of `unknown` (a database you must be able to restore). @default false */
    requireArchiving: z.boolean().default(false),
    /** Connecting plus `SELECT 1` taking this long is a `warn`. @default "200ms" */
    slowConnect: Duration.default('200ms'),
    /** Time limit of each check (its step signal, and the statement timeout). @default "30s" */
    timeout: Duration.default('30s'),
    /** The exit code is 1 when a check is at least this bad. @default "fail" */
    failOn: z.enum(['fail', 'warn', 'unknown'], { error: 'expected fail, warn or unknown' }).default('fail'),
  })
  .refine((o) => o.connectionsWarn <= o.connectionsFail, {
    error: 'must not be above --connections-fail',
    path: ['connectionsWarn'],
  });
/** Parsed {@link HealthReportOptions}. */
export type HealthReportOptions = z.output<typeof HealthReportOptions>;
/** What {@link runHealthReport} takes. */
export type HealthReportOptionsInput = z.input<typeof HealthReportOptions>;

/** One row of the report. */
export interface HealthReportRow {
  check: ReportCheckName;
  /** The SDK check's kind, e.g. `pg.connection-usage`. */
  kind: string;
  status: ReportStatus;
  summary: string;
  /** The one number to look at, e.g. `14/17 (82%)`; empty when the check did not run. */
  figure: string;
  durationMs: number;
  /** The finding's typed data (JSON); `null` when the check did not run. */
  data: Json;
  evidence: Evidence[];
  /** What the check logged. */
  logs: string[];
}

/** The whole report. */
export interface HealthReport {
  /** `user@host:port/database`: never the password. */
  database: string;
  startedAt: string;
  durationMs: number;
  /** The worst status of all rows. */
  status: ReportStatus;
  /** What the process exits with: 1 when a row reached `failOn`, else 0. */
  exitCode: 0 | 1;
  failOn: HealthReportOptions['failOn'];
  checks: HealthReportRow[];
}

interface ReportCheck<T> {
  build(db: PostgresDatabase, o: HealthReportOptions): Check<T>;
  figure(data: T): string;
}

const MINUTE = 60_000;

function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

const percent = (share: number) => `${Math.round(share * 100)}%`;

// Each check with the SDK's options as the report's thresholds set them, and the figure its row shows.
const CHECKS: Record<ReportCheckName, ReportCheck<Json>> = {
  connectivity: defineRow<ConnectivityData>({
    build: (db, o) => connectivity(db, { timeout: o.timeout, slowAfter: o.slowConnect }),
    figure: (d) => (d.latencyMs === null ? 'unreachable' : `${d.latencyMs} ms`),
  }),
  connections: defineRow<ConnectionUsageData>({
    build: (db, o) => connectionUsage(db, { warnAt: o.connectionsWarn, failAt: o.connectionsFail }),
    figure: (d) => `${d.used}/${d.available} (${percent(d.ratio)})`,
  }),
  'active-queries': defineRow<ActiveQueriesData>({
    build: (db, o) =>
      activeQueries(db, {
        failAfter: o.longQuery,
        minDuration: Math.min(MINUTE, toMillis(o.longQuery)),
      }),
    figure: (d) => `${d.longRunning} long, ${d.blocked} blocked`,
  }),
  'idle-in-transaction': defineRow<IdleInTransactionData>({
    build: (db, o) => idleInTransaction(db, { olderThan: o.idleTransaction }),
    figure: (d) => `${d.old} of ${d.sessions.length} ≥ ${formatMillis(d.olderThanMs)}`,
  }),
  'slow-queries': defineRow<SlowQueriesData>({
    build: (db, o) =>
      slowQueries(db, {
        failMeanTime: o.slowQuery,
        minMeanTime: Math.min(100, toMillis(o.slowQuery)),
      }),
    figure: (d) => (d.available ? `${d.slow} slow` : 'n/a'),
  }),
  'database-sizes': defineRow<DatabaseSizesData>({
    build: (db, o) =>
      databaseSizes(db, o.maxDatabaseSize === undefined ? {} : { warnAbove: toBytes(o.maxDatabaseSize) }),
    figure: (d) => `${formatBytes(d.totalBytes)} in ${d.databases.length}`,
  }),
  'table-bloat': defineRow<TableSizesData>({
    build: (db) => tableSizes(db, { limit: 10 }),
    figure: (d) => `${d.bloated.length} to vacuum`,
  }),
  'unused-indexes': defineRow<UnusedIndexesData>({
    build: (db) => unusedIndexes(db),
    figure: (d) => `${d.count} (${formatBytes(d.totalBytes)})`,
  }),
  'invalid-indexes': defineRow<InvalidIndexesData>({
    build: (db) => invalidIndexes(db),
    figure: (d) => `${d.leftovers} invalid`,
  }),
  'wal-archiving': defineRow<ArchiverStatusData>({
    build: (db, o) => archiverStatus(db, { required: o.requireArchiving }),
    figure: (d) =>
      d.archiveMode === 'off'
        ? 'off'
        : d.pending === null
          ? `${d.failedCount} failed`
          : `${d.pending} waiting`,
  }),
};

/**
 * Erases a row's data type so that the rows fit one table. Sound because a row's `figure` only ever gets the
 * data of the check its own `build` made.
 */
function defineRow<T>(row: ReportCheck<T>): ReportCheck<Json> {
  return row as unknown as ReportCheck<Json>;
}

/**
 * Runs the report's checks against one database, one after the other (a struggling server gets one
 * statement at a time), and returns the report. Each check gets a step context of its own whose signal
 * aborts after `timeout`. When `connectivity` runs and cannot connect, the other checks are skipped rather
 * than each waiting for its own connect timeout. Throws an `InputValidationError` naming the field for bad
 * options; never throws for what it finds.
 */
export async function runHealthReport(input: HealthReportOptionsInput): Promise<HealthReport> {
  const o = parseOptions('db-health-report', HealthReportOptions, input);
  const timeoutMs = toMillis(o.timeout);
  const db = connectPostgres({
    url: o.databaseUrl,
    // Named in pg_stat_activity, so that a DBA sees who is asking.
    applicationName: 'db-health-report',
    statementTimeout: o.timeout,
    poolSize: 2,
  });
  const startedAt = new Date();
  const runId = `db-health-${startedAt.toISOString()}`;
  const rows: HealthReportRow[] = [];
  try {
    let unreachable = false;
    for (const name of REPORT_CHECKS.filter((c) => o.checks.includes(c))) {
      const spec = CHECKS[name];
      if (unreachable) {
        rows.push(skippedRow(name, 'not run: the database is unreachable (see connectivity)'));
        continue;
      }
      const row = await runRow(name, spec.build(db, o), spec.figure, { runId, timeoutMs });
      rows.push(row);
      if (name === 'connectivity' && (row.data as ConnectivityData | null)?.reachable === false) {
        unreachable = true;
      }
    }
  } finally {
    await db.close();
  }
  const status = rows.reduce<ReportStatus>(
    (worst, r) => (RANK[r.status] > RANK[worst] ? r.status : worst),
    'ok',
  );
  const failing = rows.some((r) => RANK[r.status] >= RANK[o.failOn]);
  const report: HealthReport = {
    database: db.display,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    status,
    exitCode: failing ? 1 : 0,
    failOn: o.failOn,
    checks: rows,
  };
  // The SDK keeps the password out of its messages; this makes sure nothing else carries it either.
  const password = decodeURIComponent(new URL(o.databaseUrl).password);
  return createRedactor(password ? [password] : []).redact(report);
}

async function runRow(
  name: ReportCheckName,
  check: Check<Json>,
  figure: (data: Json) => string,
  run: { runId: string; timeoutMs: number },
): Promise<HealthReportRow> {
  const logs: string[] = [];
  // What the engine would hand the check; `diagnose` because a report only reads.
  const ctx: StepContext = {
    runId: run.runId,
    runbookId: 'db-health-report',
    step: name,
    mode: 'diagnose',
    attempt: 1,
    actor: 'db-health-report',
    signal: AbortSignal.timeout(run.timeoutMs),
    log: (message) => logs.push(message),
  };
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const f = await check.run(ctx);
    return {
      check: name,
      kind: check.kind,
      status: f.status,
      summary: f.summary,
      figure: figure(f.data),
      durationMs: elapsed(),
      data: f.data,
      evidence: f.evidence,
      logs,
    };
  } catch (e) {
    const reason = ctx.signal.aborted ? `no answer within ${formatMillis(run.timeoutMs)}` : errorText(e);
    return {
      check: name,
      kind: check.kind,
      status: 'error',
      summary: `could not run: ${reason}`,
      figure: '',
      durationMs: elapsed(),
      data: null,
      evidence: [],
      logs,
    };
  }
}

function skippedRow(name: ReportCheckName, summary: string): HealthReportRow {
  return {
    check: name,
    kind: '',
    status: 'skipped',
    summary,
    figure: '',
    durationMs: 0,
    data: null,
    evidence: [],
    logs: [],
  };
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** The report as people read it: a header, one line per check (summary last, so it may run long), a verdict. */
export function formatHealthReport(report: HealthReport): string {
  const header = ['CHECK', 'STATUS', 'KEY FIGURE', 'SUMMARY'];
  const rows = report.checks.map((r) => [r.check, r.status, r.figure || '-', r.summary]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const counts = (['fail', 'error', 'warn', 'unknown', 'ok', 'skipped'] as const)
    .map((s) => [s, report.checks.filter((r) => r.status === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`);
  return [
    `PostgreSQL health of ${report.database} at ${report.startedAt}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    `${report.exitCode === 0 ? 'OK' : 'FAILING'}: ${counts.join(', ')} in ${report.durationMs} ms (exit ${report.exitCode}; --fail-on ${report.failOn})`,
  ].join('\n');
}

/** Where {@link main} writes, and the environment it reads (`DATABASE_URL`). */
export interface ReportIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
}

const USAGE = `Usage: node scripts/db-health-report.ts [options]

A PostgreSQL health report for cron or a systemd timer: runs the SDK's PostgreSQL checks and prints a table.
Exit code 0 when no check reached --fail-on, 1 when one did (or could not run), 2 for bad usage.

Options:
  --database-url <url>          postgres://user:password@host:port/database (default: $DATABASE_URL);
                                the password is never printed
  --checks <a,b,...>            only these checks (default: all): ${REPORT_CHECKS.join(', ')}
  --connections-warn <share>    connection slots in use that warn (default 0.8)
  --connections-fail <share>    connection slots in use that fail (default 0.95)
  --long-query <duration>       a query running this long fails (default 5m)
  --idle-transaction <duration> a session idle in a transaction this long fails (default 5m)
  --slow-query <duration>       a statement with this mean time fails, pg_stat_statements (default 1s)
  --max-database-size <size>    a larger database warns, e.g. 20GB (default: not judged)
  --require-archiving           WAL archiving off fails (default: unknown)
  --slow-connect <duration>     connect + SELECT 1 this slow warns (default 200ms)
  --timeout <duration>          time limit of each check (default 30s)
  --fail-on <fail|warn|unknown> exit 1 when a check is this bad or worse (default fail)
  --json                        the whole report as JSON (findings' data and evidence included)
  -h, --help                    this text

Durations: 500ms, 30s, 5m, 1h. Sizes: 512kB, 1MB, 20GB.`;

const FLAGS = {
  'database-url': { type: 'string' },
  checks: { type: 'string' },
  'connections-warn': { type: 'string' },
  'connections-fail': { type: 'string' },
  'long-query': { type: 'string' },
  'idle-transaction': { type: 'string' },
  'slow-query': { type: 'string' },
  'max-database-size': { type: 'string' },
  'require-archiving': { type: 'boolean' },
  'slow-connect': { type: 'string' },
  timeout: { type: 'string' },
  'fail-on': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const readFlags = (argv: readonly string[]) =>
  parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: false }).values;

// Option field → its flag, for messages that name what the user typed.
const FLAG_OF: Record<string, string> = {
  databaseUrl: '--database-url',
  checks: '--checks',
  connectionsWarn: '--connections-warn',
  connectionsFail: '--connections-fail',
  longQuery: '--long-query',
  idleTransaction: '--idle-transaction',
  slowQuery: '--slow-query',
  maxDatabaseSize: '--max-database-size',
  slowConnect: '--slow-connect',
  timeout: '--timeout',
  failOn: '--fail-on',
};

/**
 * The command: parses `argv` (without `node` and the script), runs the report, writes the table or JSON to
 * `io.stdout`, and returns the exit code (0, 1, or 2 with the problem on `io.stderr`).
 */
export async function main(argv: readonly string[], io: ReportIo): Promise<number> {
  let flags: ReturnType<typeof readFlags>;
  try {
    flags = readFlags(argv);
  } catch (e) {
    return usageError(io, [errorText(e)]);
  }
  if (flags.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  const parsed = HealthReportOptions.safeParse({
    // An empty DATABASE_URL is as good as none (a unit file's `Environment=DATABASE_URL=`).
    databaseUrl: flags['database-url'] ?? (io.env.DATABASE_URL || undefined),
    checks: flags.checks?.split(',').map((c) => c.trim()),
    connectionsWarn: flags['connections-warn'],
    connectionsFail: flags['connections-fail'],
    longQuery: flags['long-query'],
    idleTransaction: flags['idle-transaction'],
    slowQuery: flags['slow-query'],
    maxDatabaseSize: flags['max-database-size'],
    requireArchiving: flags['require-archiving'],
    slowConnect: flags['slow-connect'],
    timeout: flags.timeout,
    failOn: flags['fail-on'],
  });
  if (!parsed.success) {
    return usageError(
      io,
      parsed.error.issues.map((issue) => {
        const field = String(issue.path[0] ?? '');
        const flag = field === 'databaseUrl' ? '--database-url (or DATABASE_URL)' : (FLAG_OF[field] ?? field);
        return `${flag}: ${issue.message}`;
      }),
    );
  }
  const report = await runHealthReport(parsed.data);
  io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatHealthReport(report)}\n`);
  return report.exitCode;
}

function usageError(io: ReportIo, problems: string[]): number {
  io.stderr(`db-health-report: ${problems.join('; ')}\nRun with --help for the options.\n`);
  return 2;
}

/** True when Node runs this file itself (`node scripts/db-health-report.ts`), not when a test imports it. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
  });
}
