import pg from 'pg';
import { z } from 'zod';
import { PostgresUrl, parseInput } from './lab-database';
import { AGENT_TYPES, type AgentType } from './schema';

/** Anything that runs a parameterised query: a `pg.Pool`, a `pg.Client`. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

const WindowMinutes = z
  .number()
  .positive('expected a positive number of minutes')
  .max(24 * 60);

/**
 * `pg_up`: 1 when `SELECT 1` through `url` (the lab goes through PgBouncer) answers within `timeoutMs`, else 0.
 * A saturated pool counts as down: the query waits for a server connection longer than the bound.
 */
export async function pgUp(url: string, timeoutMs = 2000): Promise<0 | 1> {
  const { url: checked, timeoutMs: bound } = parseInput(
    'pgUp',
    z.object({ url: PostgresUrl, timeoutMs: z.number().int().positive().max(60_000) }),
    { url, timeoutMs },
  );
  const client = new pg.Client({
    connectionString: checked,
    connectionTimeoutMillis: bound,
    application_name: 'aiwebtest-lab-exporter',
  });
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<0>((resolve) => {
    timer = setTimeout(() => resolve(0), bound);
  });
  const probe = (async (): Promise<0 | 1> => {
    await client.connect();
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    return rows[0]?.one === 1 ? 1 : 0;
  })().catch(() => 0 as const);
  try {
    return await Promise.race([probe, late]);
  } finally {
    clearTimeout(timer);
    // Not awaited: a client stuck behind a saturated pool would hold the scrape; ending it closes the socket.
    void client.end().catch(() => {});
  }
}

/** `test_execution_duration`: seconds the longest still-running execution has run (0 when none runs). */
export async function testExecutionDuration(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ seconds: number }>(
    `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(started_at)), 0)::float8 AS seconds
       FROM test_executions WHERE result = 'running'`,
  );
  return Math.max(0, rows[0]?.seconds ?? 0);
}

/** `test_execution_duration_p95`: p95 of `execution_time` (s) of executions finished in the window (0 if none). */
export async function testExecutionDurationP95(db: Queryable, windowMinutes = 15): Promise<number> {
  const minutes = parseInput('testExecutionDurationP95', z.object({ windowMinutes: WindowMinutes }), {
    windowMinutes,
  }).windowMinutes;
  const { rows } = await db.query<{ p95: number }>(
    `SELECT COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time), 0)::float8 AS p95
       FROM test_executions
      WHERE finished_at > now() - make_interval(secs => $1::float8 * 60) AND execution_time IS NOT NULL`,
    [minutes],
  );
  return rows[0]?.p95 ?? 0;
}

/** One agent's mean confidence over the window. */
export interface AgentConfidence {
  agentType: AgentType;
  /** The metric label: `generation_agent`. */
  agent: string;
  mean: number;
  decisions: number;
}

/**
 * `agent_confidence{agent}`: mean confidence of each agent's decisions in the window. Agents without
 * decisions in the window are left out (the metric is absent for them, not 0).
 */
export async function agentConfidence(db: Queryable, windowMinutes = 5): Promise<AgentConfidence[]> {
  const minutes = parseInput('agentConfidence', z.object({ windowMinutes: WindowMinutes }), {
    windowMinutes,
  }).windowMinutes;
  const { rows } = await db.query<{ agent_type: string; mean: number; decisions: number }>(
    `SELECT agent_type, avg(confidence)::float8 AS mean, count(*)::int AS decisions
       FROM agent_decisions
      WHERE created_at > now() - make_interval(secs => $1::float8 * 60)
      GROUP BY agent_type ORDER BY agent_type`,
    [minutes],
  );
  return rows
    .filter((r): r is typeof r & { agent_type: AgentType } =>
      (AGENT_TYPES as readonly string[]).includes(r.agent_type),
    )
    .map((r) => ({
      agentType: r.agent_type,
      agent: `${r.agent_type}_agent`,
      mean: r.mean,
      decisions: r.decisions,
    }));
}

/** What the exporter publishes about PgBouncer's client side. */
export interface PgBouncerPoolsSummary {
  /** Sum of `cl_active` over the application pools (the admin console's own pool left out). */
  clientActive: number;
  /** Sum of `cl_waiting`: clients that sent a query and wait for a server connection. */
  clientWaiting: number;
  /** `max_client_conn` from `SHOW CONFIG`. */
  maxClientConn: number;
}

/**
 * Reads `SHOW POOLS` and `SHOW CONFIG` from the admin console. The console speaks the simple query protocol
 * only, so the statements are sent without parameters (pg then uses the simple protocol), on one short connection.
 */
export async function pgbouncerPools(adminUrl: string, timeoutMs = 5000): Promise<PgBouncerPoolsSummary> {
  const { adminUrl: url } = parseInput(
    'pgbouncerPools',
    z.object({
      adminUrl: z
        .string()
        .regex(
          /^postgres(ql)?:\/\/[^/\s]*\/pgbouncer(\?.*)?$/,
          'expected postgres://user@host:port/pgbouncer',
        ),
    }),
    { adminUrl },
  );
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    const pools = (await client.query('SHOW POOLS')).rows as Record<string, unknown>[];
    const config = (await client.query('SHOW CONFIG')).rows as Record<string, unknown>[];
    const apps = pools.filter((p) => p.database !== 'pgbouncer');
    const sum = (key: string) => apps.reduce((n, p) => n + toNumber(p[key]), 0);
    return {
      clientActive: sum('cl_active'),
      clientWaiting: sum('cl_waiting'),
      maxClientConn: toNumber(config.find((r) => r.key === 'max_client_conn')?.value),
    };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Console values arrive as text for int8 columns. */
function toNumber(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}
