/**
 * The PostgreSQL check suite against a real throwaway cluster (pg_stat_statements loaded, WAL archived), the
 * way a diagnose run uses it: every check at once, in parallel, on one `PostgresDatabase` (default pool of
 * 4 connections). The cluster carries a little of everything the checks look for — tables with dead rows, an
 * unused index, a slow statement history, a long query and an idle-in-transaction session that blocks
 * another. Prints p50/p95/max latency per check and for the whole suite over ITERATIONS runs (after WARMUP).
 *
 *   npx tsx bench/postgres-checks.bench.ts        (BENCH_PG_ITERATIONS, BENCH_PG_POOL override)
 */
import pg from 'pg';
import type { Finding } from '../src/core/finding';
import type { Check, StepContext } from '../src/core/step';
import {
  activeQueries,
  archiverStatus,
  connectionUsage,
  connectivity,
  databaseSizes,
  idleInTransaction,
  invalidIndexes,
  slowQueries,
  sqlCheck,
  tableSizes,
  unusedIndexes,
} from '../src/postgres/checks';
import { connectPostgres } from '../src/postgres/database';
import { startTestCluster } from '../test/support/postgres-cluster';

const ITERATIONS = Number(process.env.BENCH_PG_ITERATIONS ?? 50);
const WARMUP = 3;
const POOL = Number(process.env.BENCH_PG_POOL ?? 4);

const cluster = await startTestCluster({ preload: ['pg_stat_statements'], archive: true });
const clients: pg.Client[] = [];
const open = async (application: string) => {
  const c = new pg.Client({ connectionString: cluster.url, application_name: application });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
};
const db = connectPostgres({ url: cluster.url, poolSize: POOL });

try {
  const admin = await open('bench-admin');
  await admin.query('CREATE EXTENSION pg_stat_statements');
  await admin.query(
    `CREATE TABLE test_executions (execution_id serial PRIMARY KEY, result text, started_at timestamptz, body text)
       WITH (autovacuum_enabled = false)`,
  );
  await admin.query(
    `INSERT INTO test_executions (result, started_at, body)
       SELECT CASE WHEN g % 100 = 1 THEN 'running' ELSE 'passed' END, now() - g * interval '1 second', md5(g::text)
         FROM generate_series(1, 50000) g`,
  );
  await admin.query('CREATE INDEX idx_executions_body ON test_executions (body)');
  await admin.query('DELETE FROM test_executions WHERE execution_id % 4 = 0');
  await admin.query('SELECT pg_stat_force_next_flush()');
  for (let i = 0; i < 3; i++) await admin.query('SELECT pg_sleep(0.12)');
  // A long query, and an idle transaction holding a row lock another session waits for.
  const slow = await open('bench-report');
  void slow.query('SELECT pg_sleep(600)').catch(() => {});
  const holder = await open('bench-holder');
  await holder.query('BEGIN');
  await holder.query("UPDATE test_executions SET result = 'error' WHERE execution_id = 1");
  const waiter = await open('bench-waiter');
  void waiter.query("UPDATE test_executions SET result = 'passed' WHERE execution_id = 1").catch(() => {});
  await new Promise((r) => setTimeout(r, 300));

  const checks: Record<string, Check<unknown>> = {
    connectivity: connectivity(db),
    connectionUsage: connectionUsage(db),
    activeQueries: activeQueries(db, { minDuration: '100ms' }),
    slowQueries: slowQueries(db),
    databaseSizes: databaseSizes(db),
    tableSizes: tableSizes(db),
    unusedIndexes: unusedIndexes(db),
    invalidIndexes: invalidIndexes(db),
    idleInTransaction: idleInTransaction(db, { olderThan: '100ms' }),
    archiverStatus: archiverStatus(db),
    sqlCheck: sqlCheck(db, {
      name: 'Test executions running > 10 minutes',
      sql: "SELECT execution_id FROM test_executions WHERE result = 'running' AND started_at < now() - $1::interval",
      params: ['10 minutes'],
      thresholds: { fail: 1 },
    }),
  };
  const ctx: StepContext = {
    runId: 'bench',
    runbookId: 'bench',
    step: 'diagnose',
    mode: 'diagnose',
    attempt: 1,
    actor: 'bench',
    signal: new AbortController().signal,
    log() {},
  };

  const times: Record<string, number[]> = Object.fromEntries(Object.keys(checks).map((k) => [k, []]));
  const suite: number[] = [];
  const last: Record<string, Finding<unknown>> = {};
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const t0 = performance.now();
    await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        const t = performance.now();
        last[name] = await check.run(ctx);
        if (i >= WARMUP) times[name]?.push(performance.now() - t);
      }),
    );
    if (i >= WARMUP) suite.push(performance.now() - t0);
  }

  const pct = (xs: number[], p: number) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
  };
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const rows = [
    ...Object.keys(checks).map((name) => [name, last[name]?.status ?? '?', times[name] ?? []] as const),
    ['suite (all in parallel)', '', suite] as const,
  ];
  console.log(
    `PostgreSQL ${(await admin.query('SHOW server_version')).rows[0].server_version}, ${Object.keys(checks).length} checks, ` +
      `pool ${POOL}, ${ITERATIONS} iterations after ${WARMUP} warm-up\n`,
  );
  const header = ['check', 'status', 'p50', 'p95', 'max'];
  const table = rows.map(([name, status, xs]) => [
    name,
    status,
    ms(pct(xs, 50)),
    ms(pct(xs, 95)),
    ms(Math.max(...xs)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => String(r[i]).length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of table) console.log(line(r));
  console.log('\nlast summaries:');
  for (const [name, f] of Object.entries(last)) console.log(`  ${name}: [${f.status}] ${f.summary}`);
} finally {
  for (const c of clients) await c.end().catch(() => {});
  await db.close();
  await cluster.destroy();
}
