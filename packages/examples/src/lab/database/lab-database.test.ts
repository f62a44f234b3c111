import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_URL,
  type SeededLabDatabase,
  startSeededLabDatabase,
} from '../../../test/support/lab-database';
import { prepareLabDatabase } from './lab-database';

/**
 * The manual's SQL, verbatim (runbooks 2, 3, 5, 8, 9 against the app database; runbook 4's `SELECT 1;` and
 * `SELECT NOW();`). Runbook 4's console queries run in pgbouncer.test.ts. Order matters: runbook 5's recovery
 * creates the created_at index the schema leaves out.
 */
const MANUAL_QUERIES: Array<[string, string]> = [
  [
    '2.4',
    "SELECT * FROM agent_decisions WHERE agent_id LIKE 'generation%' ORDER BY created_at DESC LIMIT 10;",
  ],
  [
    '3.1',
    "SELECT execution_id, started_at, NOW() - started_at AS duration FROM test_executions WHERE result = 'running' ORDER BY started_at;",
  ],
  [
    '3.r1',
    "UPDATE test_executions SET result = 'error', error_message = 'Execution timeout' WHERE result = 'running' AND started_at < NOW() - INTERVAL '10 minutes';",
  ],
  ['4.3', 'SELECT 1;'],
  ['4.r5', 'SELECT NOW();'],
  [
    '5.2',
    "SELECT pid, NOW() - query_start AS duration, query FROM pg_stat_activity WHERE state = 'active' AND query NOT LIKE '%pg_stat%' ORDER BY duration DESC;",
  ],
  [
    '5.3',
    'SELECT pg_database.datname, pg_size_pretty(pg_database_size(pg_database.datname)) FROM pg_database ORDER BY pg_database_size(pg_database.datname) DESC;',
  ],
  [
    '5.4',
    "SELECT schemaname, tablename, pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) AS total_size FROM pg_tables WHERE schemaname = 'public' ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC LIMIT 10;",
  ],
  [
    // The manual names the view's columns tablename/indexname; PostgreSQL calls them relname/indexrelname.
    '5.5',
    "SELECT schemaname, relname AS tablename, indexrelname AS indexname, idx_scan FROM pg_stat_user_indexes WHERE schemaname = 'public' AND idx_scan < 100 ORDER BY idx_scan;",
  ],
  [
    '5.r1',
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' AND NOW() - query_start > INTERVAL '5 minutes' AND query NOT LIKE '%pg_stat%';",
  ],
  ['5.r2', 'CREATE INDEX CONCURRENTLY idx_test_executions_created_at ON test_executions(created_at DESC);'],
  ['5.r3', 'VACUUM ANALYZE test_executions;'],
  ['5.r4', 'REFRESH MATERIALIZED VIEW CONCURRENTLY mv_project_stats;'],
  [
    '8.3',
    "SELECT agent_type, AVG(execution_time_ms), MAX(execution_time_ms) FROM agent_decisions WHERE created_at > NOW() - INTERVAL '10 minutes' GROUP BY agent_type;",
  ],
  [
    '9.1',
    'SELECT test_id, execution_time, browser FROM test_executions WHERE execution_time > 300 ORDER BY created_at DESC LIMIT 10;',
  ],
  [
    '9.4',
    'SELECT test_id, title, LENGTH(code) AS code_length FROM test_cases WHERE test_id IN (SELECT test_id FROM test_executions WHERE execution_time > 300 LIMIT 5);',
  ],
];

/** Runbooks 5 (diagnosis 1) and 8 (diagnosis 4): they need pg_stat_statements. */
const STATEMENTS_QUERIES = [
  'SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 10;',
  'SELECT query, mean_exec_time, calls FROM pg_stat_statements WHERE mean_exec_time > 1000 ORDER BY mean_exec_time DESC LIMIT 5;',
];

let seeded: SeededLabDatabase;
let dbName: string;
let url: string;
let db: pg.Client;

beforeAll(async () => {
  seeded = await startSeededLabDatabase();
  ({ url, db, database: dbName } = seeded);
});

afterAll(async () => {
  // The reset test replaces the fixture's session with its own: end that one before the database is dropped.
  await db?.end();
  await seeded?.close();
});

async function count(table: string): Promise<number> {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(table)}`);
  return rows[0].n;
}

describe('prepareLabDatabase', () => {
  it('seeds the data the lab and the manual expect', async () => {
    expect(await count('users')).toBe(8);
    expect(await count('projects')).toBe(4);
    expect(await count('test_cases')).toBe(60);
    expect(await count('test_executions')).toBe(600);
    const { rows: ex } = await db.query(
      `SELECT min(execution_time) AS lo, max(execution_time) AS hi, count(*) FILTER (WHERE result = 'running')::int AS running,
              array_agg(DISTINCT browser ORDER BY browser) AS browsers, min(started_at) > now() - interval '2 hours 1 minute' AS recent,
              max(finished_at) <= now() AS finished
         FROM test_executions`,
    );
    expect(ex[0]).toMatchObject({
      running: 0,
      browsers: ['chrome', 'firefox'],
      recent: true,
      finished: true,
    });
    expect(ex[0].lo).toBeGreaterThanOrEqual(30);
    expect(ex[0].hi).toBeLessThanOrEqual(110);
    const { rows: code } = await db.query(
      'SELECT min(length(code)) AS lo, max(length(code)) AS hi FROM test_cases',
    );
    expect(code[0].hi).toBeGreaterThan(code[0].lo * 5);
    const { rows: agents } = await db.query(
      `SELECT agent_type, min(confidence) AS lo, max(confidence) AS hi, min(execution_time_ms) AS ms
         FROM agent_decisions WHERE created_at > now() - interval '5 minutes' GROUP BY agent_type ORDER BY agent_type`,
    );
    expect(agents.map((a) => a.agent_type)).toEqual([
      'analysis',
      'evolution',
      'execution',
      'generation',
      'observation',
      'requirements',
    ]);
    for (const a of agents) {
      expect(a.lo).toBeGreaterThanOrEqual(0.85);
      expect(a.hi).toBeLessThanOrEqual(0.97);
      expect(a.ms).toBeGreaterThan(0);
    }
    expect(await count('audit_logs')).toBeGreaterThan(100);
    expect(await count('predictions')).toBeGreaterThan(100);
  });

  it('is idempotent: a second run changes nothing, and concurrent runs do not seed twice', async () => {
    await db.query(`INSERT INTO users (username, email) VALUES ('marker', 'marker@example.test')`);
    await Promise.all([
      prepareLabDatabase({ adminUrl: ADMIN_URL, database: dbName }),
      prepareLabDatabase({ adminUrl: ADMIN_URL, database: dbName }),
    ]);
    expect(await count('users')).toBe(9);
    expect(await count('test_executions')).toBe(600);
  });

  it('leaves test_executions without an index on created_at, and mv_project_stats with a unique one', async () => {
    const { rows } = await db.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ('test_executions', 'mv_project_stats')`,
    );
    expect(rows.filter((r) => /test_executions.*created_at/.test(r.indexdef))).toEqual([]);
    expect(rows.some((r) => /UNIQUE INDEX .* ON public\.mv_project_stats/.test(r.indexdef))).toBe(true);
  });

  it('seeds the same rows every time, in under 2 seconds (reset drops and rebuilds)', async () => {
    const fingerprint = async () => {
      const { rows } = await db.query(
        `SELECT (SELECT md5(string_agg(test_id || result || browser || execution_time, ',' ORDER BY execution_id)) FROM test_executions)
             || (SELECT md5(string_agg(agent_id || confidence || execution_time_ms, ',' ORDER BY id)) FROM agent_decisions)
             || (SELECT md5(string_agg(title || code, ',' ORDER BY test_id)) FROM test_cases) AS f`,
      );
      return rows[0].f as string;
    };
    const before = await fingerprint();
    await db.query(`INSERT INTO users (username, email) VALUES ('gone', 'gone@example.test')`);
    await db.end();
    const started = Date.now();
    await prepareLabDatabase({ adminUrl: ADMIN_URL, database: dbName, reset: true });
    expect(Date.now() - started).toBeLessThan(2000);
    db = new pg.Client({ connectionString: url });
    await db.connect();
    expect(await count('users')).toBe(8);
    expect(await fingerprint()).toBe(before);
  });

  it('rejects a database name it would have to quote, naming the field', async () => {
    await expect(
      prepareLabDatabase({ adminUrl: ADMIN_URL, database: 'lab"; DROP DATABASE postgres; --' }),
    ).rejects.toThrow(/database: expected lower-case letters/);
    await expect(prepareLabDatabase({ adminUrl: 'http://x', database: 'ok' })).rejects.toThrow(/adminUrl/);
  });
});

describe("the manual's SQL", () => {
  it('runs every query of runbooks 2, 3, 4, 5, 8 and 9 unchanged', async () => {
    // A stuck execution, so that runbook 3's recovery has something to cancel.
    await db.query(
      `INSERT INTO test_executions (test_id, result, started_at, browser)
       SELECT min(test_id), 'running', now() - interval '20 minutes', 'chrome' FROM test_cases`,
    );
    for (const [where, sql] of MANUAL_QUERIES) {
      const result = await db.query(sql).catch((e: Error) => {
        throw new Error(`runbook ${where} failed: ${e.message}\n${sql}`);
      });
      if (where === '2.4') expect(result.rows).toHaveLength(10);
      if (where === '3.1') expect(result.rows).toHaveLength(1);
      if (where === '3.r1') expect(result.rowCount).toBe(1);
      if (where === '5.4') expect(result.rows.map((r) => r.tablename)).toContain('test_executions');
    }
    const { rows } = await db.query(
      `SELECT 1 FROM pg_indexes WHERE indexname = 'idx_test_executions_created_at'`,
    );
    expect(rows).toHaveLength(1);
  });

  it('runs the pg_stat_statements queries when the server preloads the library, and says why not otherwise', async () => {
    const { rows } = await db.query(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') AS available,
              current_setting('shared_preload_libraries') AS preload`,
    );
    const preloaded = rows[0].available && /\bpg_stat_statements\b/.test(rows[0].preload);
    for (const sql of STATEMENTS_QUERIES) {
      if (preloaded) {
        await expect(db.query(sql)).resolves.toBeDefined();
      } else {
        // prepareLabDatabase creates the extension only with the library loaded: the view is absent, not broken.
        await expect(db.query(sql)).rejects.toThrow(/relation "pg_stat_statements" does not exist/);
      }
    }
  });
});
