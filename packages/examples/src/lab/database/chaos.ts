import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { z } from 'zod';
import { PostgresUrl, parseInput } from './lab-database';
import { AGENT_TYPES, LAB_TABLES } from './schema';

/**
 * Incident injectors for the lab database. Each one does the real thing (locks, long queries, held pool
 * connections, rows an incident leaves behind) and returns a handle whose `stop()` undoes it: sessions are
 * ended, rows it inserted are deleted, settings it changed are restored.
 */
export interface Injection {
  stop(): Promise<void>;
}

const Table = z.enum(LAB_TABLES, { message: `expected one of ${LAB_TABLES.join(', ')}` });

function connect(url: string, applicationName: string): pg.Client {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  // A session ended under us (a runbook's pg_terminate_backend, pgbouncer killed) must not crash the lab.
  client.on('error', () => {});
  return client;
}

/** `stop()` runs once; later calls wait for the first. A stop that failed may be tried again. */
function once(stop: () => Promise<void>): Injection {
  let done: Promise<void> | null = null;
  return {
    stop: () => {
      done ??= stop().catch((e: unknown) => {
        done = null;
        throw e;
      });
      return done;
    },
  };
}

export const HoldLocksOptions = z.object({
  url: PostgresUrl,
  table: Table,
  /**
   * `table`: `LOCK TABLE … IN ACCESS EXCLUSIVE MODE`, so every query on it waits; `rows`: `SELECT … FOR UPDATE`
   * of all rows, so writers wait and readers do not. @default "table"
   */
  mode: z.enum(['table', 'rows']).default('table'),
  /** @default "aiwebtest-lab-chaos-lock" */
  applicationName: z.string().min(1).max(63).default('aiwebtest-lab-chaos-lock'),
});

/** A session holding a lock on `table` in an open transaction, until `stop()` rolls it back. */
export async function holdLocks(options: z.input<typeof HoldLocksOptions>): Promise<Injection> {
  const o = parseInput('holdLocks', HoldLocksOptions, options);
  const client = connect(o.url, o.applicationName);
  await client.connect();
  const table = pg.escapeIdentifier(o.table);
  try {
    await client.query('BEGIN');
    await client.query(
      o.mode === 'table'
        ? `LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`
        : `SELECT 1 FROM ${table} FOR UPDATE`,
    );
  } catch (e) {
    await client.end().catch(() => {});
    throw e;
  }
  return once(async () => {
    await client.query('ROLLBACK').catch(() => {});
    await client.end().catch(() => {});
  });
}

export const RunSlowQueriesOptions = z.object({
  url: PostgresUrl,
  count: z.number().int().min(1).max(50),
  /** How long each query runs. */
  seconds: z.number().positive().max(3600),
  /** @default "aiwebtest-lab-chaos-slow" */
  applicationName: z.string().min(1).max(63).default('aiwebtest-lab-chaos-slow'),
});

/**
 * `count` sessions each running one query on `test_executions` that sleeps `seconds`: `state = 'active'` in
 * pg_stat_activity, as runbook 5's diagnosis expects. The query text carries a marker of this injection so
 * that `stop()` cancels exactly these queries (a closed socket alone would not stop a sleeping backend).
 */
export async function runSlowQueries(options: z.input<typeof RunSlowQueriesOptions>): Promise<Injection> {
  const o = parseInput('runSlowQueries', RunSlowQueriesOptions, options);
  // Our own UUID, never input: the only text built into the SQL.
  const marker = `aiwebtest-lab-chaos:${randomUUID()}`;
  const sql = `/* ${marker} */ SELECT count(*) FROM test_executions CROSS JOIN pg_sleep($1::float8)`;
  const clients = Array.from({ length: o.count }, () => connect(o.url, o.applicationName));
  await Promise.all(clients.map((c) => c.connect()));
  const running = clients.map((c) => c.query(sql, [o.seconds]).catch(() => undefined));

  // Resolve once the queries are visible as active, so callers can look for them straight away.
  const watcher = connect(o.url, 'aiwebtest-lab-chaos-watch');
  await watcher.connect();
  try {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const { rows } = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()`,
        [marker],
      );
      if ((rows[0]?.n ?? 0) >= o.count || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await watcher.end().catch(() => {});
  }

  return once(async () => {
    const canceller = connect(o.url, 'aiwebtest-lab-chaos-watch');
    await canceller.connect();
    try {
      await canceller.query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()`,
        [marker],
      );
    } finally {
      await canceller.end().catch(() => {});
    }
    await Promise.all(running);
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  });
}

export const ExhaustConnectionsOptions = z.object({
  /** A URL through PgBouncer (transaction pooling: a server connection is held for a transaction's length). */
  url: PostgresUrl,
  /** Client connections to open; more than the pool size leaves the rest waiting. */
  count: z.number().int().min(1).max(500),
  /** @default "aiwebtest-lab-chaos-pool" */
  applicationName: z.string().min(1).max(63).default('aiwebtest-lab-chaos-pool'),
});

/**
 * Opens `count` clients through PgBouncer, each opening a transaction it keeps open: every server connection
 * of the pool is taken, the clients beyond the pool size (and any new client) wait in `cl_waiting`.
 * Resolves once every client either holds a transaction or has stopped getting one (the pool is full).
 */
export async function exhaustConnections(
  options: z.input<typeof ExhaustConnectionsOptions>,
): Promise<Injection> {
  const o = parseInput('exhaustConnections', ExhaustConnectionsOptions, options);
  const clients = Array.from({ length: o.count }, () => connect(o.url, o.applicationName));
  const held = clients.map(() => false);
  let holding = 0;
  const began = clients.map(async (c, i) => {
    await c.connect();
    await c.query('BEGIN');
    // A statement inside the transaction is what makes PgBouncer assign (and keep) a server connection.
    await c.query('SELECT 1');
    held[i] = true;
    holding += 1;
  });
  const settled = Promise.all(began.map((p) => p.catch(() => undefined)));
  let allDone = false;
  void settled.then(() => {
    allDone = true;
  });
  // Clients beyond the pool never finish BEGIN while the others hold on: wait until the count stops moving.
  let last = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 10_000;
  while (!allDone && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (holding !== last) {
      last = holding;
      stableSince = Date.now();
    } else if (holding > 0 && Date.now() - stableSince > 500) {
      break;
    }
  }
  return once(async () => {
    // Waiting clients first, so that they do not take the servers the holders are about to give back.
    await Promise.all(clients.map((c, i) => (held[i] ? undefined : c.end().catch(() => {}))));
    await Promise.all(
      clients.map(async (c, i) => {
        if (!held[i]) return;
        await c.query('ROLLBACK').catch(() => {});
        await c.end().catch(() => {});
      }),
    );
    await settled;
  });
}

export const InsertStuckExecutionsOptions = z.object({
  url: PostgresUrl,
  count: z.number().int().min(1).max(1000),
  /** How long ago they started, in seconds (runbook 3 cancels those running > 10 minutes). */
  runningFor: z
    .number()
    .positive()
    .max(7 * 24 * 3600),
});

/** Executions left in `result = 'running'` that started `runningFor` seconds ago, as a dead agent leaves them. */
export async function insertStuckExecutions(
  options: z.input<typeof InsertStuckExecutionsOptions>,
): Promise<Injection> {
  const o = parseInput('insertStuckExecutions', InsertStuckExecutionsOptions, options);
  return insertRows(
    o.url,
    'test_executions',
    'execution_id',
    `INSERT INTO test_executions (test_id, result, started_at, browser, created_at)
     SELECT t.test_id, 'running', now() - make_interval(secs => $2::float8), CASE WHEN i % 2 = 0 THEN 'chrome' ELSE 'firefox' END,
            now() - make_interval(secs => $2::float8)
       FROM generate_series(1, $1::int) AS i
       JOIN LATERAL (SELECT test_id FROM test_cases ORDER BY test_id OFFSET (i - 1) % (SELECT count(*) FROM test_cases) LIMIT 1) t ON true
     RETURNING execution_id`,
    [o.count, o.runningFor],
  );
}

export const InsertSlowExecutionsOptions = z.object({
  url: PostgresUrl,
  count: z.number().int().min(1).max(1000),
  /** Their `execution_time` in seconds (runbook 9 looks at > 300). */
  executionTime: z
    .number()
    .positive()
    .max(24 * 3600),
});

/** Executions that finished within the last minute after running `executionTime` seconds. */
export async function insertSlowExecutions(
  options: z.input<typeof InsertSlowExecutionsOptions>,
): Promise<Injection> {
  const o = parseInput('insertSlowExecutions', InsertSlowExecutionsOptions, options);
  return insertRows(
    o.url,
    'test_executions',
    'execution_id',
    `INSERT INTO test_executions (test_id, result, started_at, finished_at, execution_time, browser, created_at)
     SELECT t.test_id, 'passed', f.at - make_interval(secs => $2::float8), f.at, $2::float8,
            CASE WHEN i % 2 = 0 THEN 'chrome' ELSE 'firefox' END, f.at - make_interval(secs => $2::float8)
       FROM generate_series(1, $1::int) AS i
       CROSS JOIN LATERAL (SELECT now() - make_interval(secs => (i % 60)::float8) AS at) f
       JOIN LATERAL (SELECT test_id FROM test_cases ORDER BY test_id OFFSET (i - 1) % (SELECT count(*) FROM test_cases) LIMIT 1) t ON true
     RETURNING execution_id`,
    [o.count, o.executionTime],
  );
}

export const InsertLowConfidenceDecisionsOptions = z.object({
  url: PostgresUrl,
  agentType: z.enum(AGENT_TYPES, { message: `expected one of ${AGENT_TYPES.join(', ')}` }),
  count: z.number().int().min(1).max(10_000),
  confidence: z.number().min(0).max(1),
});

/** `count` decisions of one agent within the last minute, all at `confidence`. */
export async function insertLowConfidenceDecisions(
  options: z.input<typeof InsertLowConfidenceDecisionsOptions>,
): Promise<Injection> {
  const o = parseInput('insertLowConfidenceDecisions', InsertLowConfidenceDecisionsOptions, options);
  return insertRows(
    o.url,
    'agent_decisions',
    'id',
    `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, decision, created_at)
     SELECT $1::text || '-agent-7f9c', $1::text, $3::float8, 4000 + i % 1000,
            jsonb_build_object('action', 'degraded', 'chaos', true), now() - make_interval(secs => (i % 60)::float8)
       FROM generate_series(1, $2::int) AS i
     RETURNING id`,
    [o.agentType, o.count, o.confidence],
  );
}

/** Runs an INSERT … RETURNING <key>; `stop()` deletes exactly those rows (whatever a runbook did to them since). */
async function insertRows(
  url: string,
  table: (typeof LAB_TABLES)[number],
  key: string,
  sql: string,
  values: unknown[],
): Promise<Injection> {
  const client = connect(url, 'aiwebtest-lab-chaos');
  await client.connect();
  let ids: string[];
  try {
    const { rows } = await client.query<Record<string, string>>(sql, values);
    ids = rows.map((r) => String(r[key]));
  } finally {
    await client.end().catch(() => {});
  }
  return once(async () => {
    const c = connect(url, 'aiwebtest-lab-chaos');
    await c.connect();
    try {
      await c.query(
        `DELETE FROM ${pg.escapeIdentifier(table)} WHERE ${pg.escapeIdentifier(key)} = ANY ($1::bigint[])`,
        [ids],
      );
    } finally {
      await c.end().catch(() => {});
    }
  });
}

export const BloatTableOptions = z.object({
  url: PostgresUrl,
  /** @default "test_executions" */
  table: z.enum(['test_executions', 'agent_decisions', 'audit_logs']).default('test_executions'),
  /** Dead rows to leave behind. @default 50000 */
  rows: z.number().int().min(1).max(1_000_000).default(50_000),
});

/**
 * Dead tuples for runbook 5's "check table bloat" and `VACUUM ANALYZE`: autovacuum is switched off on the
 * table (else it would clean up before the runbook does), copies of its rows are inserted and deleted.
 * `stop()` vacuums the table and restores autovacuum.
 */
export async function bloatTable(options: z.input<typeof BloatTableOptions>): Promise<Injection> {
  const o = parseInput('bloatTable', BloatTableOptions, options);
  const table = pg.escapeIdentifier(o.table);
  const client = connect(o.url, 'aiwebtest-lab-chaos');
  await client.connect();
  try {
    await client.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
    // Copy existing rows (repeated) and delete the copies: dead tuples with realistic widths.
    const copy: Record<(typeof o)['table'], string> = {
      test_executions: `INSERT INTO test_executions (test_id, result, started_at, finished_at, execution_time, browser, error_message, created_at)
        SELECT test_id, result, started_at, finished_at, execution_time, browser, 'chaos-bloat', created_at
          FROM test_executions CROSS JOIN generate_series(1, 1 + $1::int / GREATEST((SELECT count(*) FROM test_executions), 1)::int) LIMIT $1`,
      agent_decisions: `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, decision, created_at)
        SELECT agent_id, agent_type, confidence, execution_time_ms, '{"chaos": "bloat"}'::jsonb, created_at - interval '30 days'
          FROM agent_decisions CROSS JOIN generate_series(1, 1 + $1::int / GREATEST((SELECT count(*) FROM agent_decisions), 1)::int) LIMIT $1`,
      audit_logs: `INSERT INTO audit_logs (user_id, username, action, resource, ip_address, success, details, created_at)
        SELECT user_id, username, action, resource, ip_address, success, '{"chaos": "bloat"}'::jsonb, created_at - interval '30 days'
          FROM audit_logs CROSS JOIN generate_series(1, 1 + $1::int / GREATEST((SELECT count(*) FROM audit_logs), 1)::int) LIMIT $1`,
    };
    const marker: Record<(typeof o)['table'], string> = {
      test_executions: `error_message = 'chaos-bloat'`,
      agent_decisions: `decision = '{"chaos": "bloat"}'::jsonb`,
      audit_logs: `details = '{"chaos": "bloat"}'::jsonb`,
    };
    await client.query(copy[o.table], [o.rows]);
    await client.query(`DELETE FROM ${table} WHERE ${marker[o.table]}`);
  } catch (e) {
    await client.query(`ALTER TABLE ${table} RESET (autovacuum_enabled)`).catch(() => {});
    throw e;
  } finally {
    await client.end().catch(() => {});
  }
  return once(async () => {
    const c = connect(o.url, 'aiwebtest-lab-chaos');
    await c.connect();
    try {
      await c.query(`ALTER TABLE ${table} RESET (autovacuum_enabled)`);
      await c.query(`VACUUM ${table}`);
    } finally {
      await c.end().catch(() => {});
    }
  });
}

export const DropIndexOptions = z.object({
  url: PostgresUrl,
  /** An index in schema `public`. */
  index: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected an index name (lower-case letters, digits, "_")'),
});

/**
 * Drops an index (e.g. one runbook 5 created) so queries scan again; `stop()` recreates it from the definition
 * PostgreSQL had for it. Dropping an index that does not exist is a no-op whose `stop()` does nothing.
 */
export async function dropIndex(options: z.input<typeof DropIndexOptions>): Promise<Injection> {
  const o = parseInput('dropIndex', DropIndexOptions, options);
  const client = connect(o.url, 'aiwebtest-lab-chaos');
  await client.connect();
  let definition: string | null;
  try {
    const { rows } = await client.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = $1`,
      [o.index],
    );
    definition = rows[0]?.indexdef ?? null;
    if (definition) await client.query(`DROP INDEX IF EXISTS public.${pg.escapeIdentifier(o.index)}`);
  } finally {
    await client.end().catch(() => {});
  }
  return once(async () => {
    if (!definition) return;
    const c = connect(o.url, 'aiwebtest-lab-chaos');
    await c.connect();
    try {
      // Not IF NOT EXISTS in the stored text: a runbook may have recreated it meanwhile, which is fine.
      const { rowCount } = await c.query(
        `SELECT 1 FROM pg_indexes WHERE schemaname = 'public' AND indexname = $1`,
        [o.index],
      );
      if (!rowCount) await c.query(definition);
    } finally {
      await c.end().catch(() => {});
    }
  });
}
