/**
 * `aiwebtest-lab health`: whether the lab is healthy, and if not, why, in the words of the runbook that
 * handles it. Every check reads the real source (the cluster, the database through PgBouncer, the backend, the
 * Grid, the OpenRouter double), with a bound on how long it may take.
 */
import { z } from 'zod';
import { labDatabaseName } from './activity';
import { boundedQueryable } from './bounded-query';
import {
  agentConfidence,
  pgbouncerPools,
  pgUp,
  testExecutionDuration,
  testExecutionDurationP95,
} from './database/database-metrics';
import { parseInput } from './database/lab-database';
import { platformWorkloadsCheck, redisCheck } from './dr/platform-health';
import type { LabParts } from './lab-parts';
import { modelChecks } from './ml/ml-scenarios';
import { agentHealth, workloadStatus } from './platform/platform-status';
import { securityCheck } from './security/incident-metric';

export interface HealthCheck {
  name: string;
  ok: boolean;
  /** What was found; for a failing check, why it fails and what it means. */
  detail: string;
}

export interface LabHealthReport {
  healthy: boolean;
  checks: HealthCheck[];
}

export const LabHealthOptions = z.strictObject({
  /** Window of the generation agent's mean confidence. @default 5 */
  confidenceWindowMinutes: z.number().positive().max(1440).default(5),
  /** Window of the executions' p95. @default 15 */
  p95WindowMinutes: z.number().positive().max(1440).default(15),
  /** A running execution older than this is stuck (runbook 3). @default 600 */
  stuckExecutionSeconds: z.number().positive().default(600),
  /** A query running, or a lock held, longer than this is a problem (runbook 5). @default 60 */
  slowQuerySeconds: z.number().positive().default(60),
  /** How long one check may take. @default 3000 */
  timeoutMs: z.number().int().min(100).max(60_000).default(3000),
});
export type LabHealthOptions = z.input<typeof LabHealthOptions>;

const BackendHealth = z.looseObject({
  status: z.string(),
  database: z.looseObject({ up: z.boolean() }).optional(),
  circuit_breakers: z.record(
    z.string(),
    z.looseObject({ state: z.string(), forced: z.string(), up: z.boolean().optional() }),
  ),
});

const GridStatus = z.object({ value: z.looseObject({ ready: z.boolean(), message: z.string().optional() }) });

const round = (n: number, digits = 0) => Number(n.toFixed(digits));

/** Runs `fn`; an error becomes a failing check that says what could not be read. */
async function check(name: string, what: string, fn: () => Promise<HealthCheck>): Promise<HealthCheck> {
  try {
    return await fn();
  } catch (e) {
    // Only the error's first line: driver messages can be long, and never carry credentials here (trust auth).
    const reason = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { name, ok: false, detail: `could not read ${what}: ${reason}` };
  }
}

/** Reads a series' value from Prometheus text exposition (first sample of the name, any labels). */
function sampleOf(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  if (!line) return undefined;
  const value = Number(line.slice(line.lastIndexOf(' ') + 1));
  return Number.isFinite(value) ? value : undefined;
}

/** Checks the whole lab; `healthy` when every check passes. */
export async function labHealth(parts: LabParts, options: LabHealthOptions = {}): Promise<LabHealthReport> {
  const o = parseInput('labHealth', LabHealthOptions, options);
  const db = boundedQueryable(parts.pool, o.timeoutMs);
  const store = parts.simulator.store;
  const signal = () => AbortSignal.timeout(o.timeoutMs);

  const agents: HealthCheck[] = agentHealth(store, parts.namespace).map((h) => {
    const status = workloadStatus(store, parts.namespace, h.agent);
    const crashing = status?.crashLooping ?? [];
    return {
      name: `agent ${h.agent}`,
      ok: h.healthy,
      detail: h.healthy
        ? `${h.ready}/${h.desired} pods ready`
        : `${h.agent} is down: ${h.ready} of ${h.desired} pods ready` +
          (crashing.length ? `, crash-looping: ${crashing.join(', ')}` : '') +
          ` (agent_health=0; see the agent failure runbook)`,
    };
  });

  const checks = await Promise.all([
    Promise.resolve(platformWorkloadsCheck(parts)),
    redisCheck(parts, o.timeoutMs),
    securityCheck(parts, o.timeoutMs),
    check('backend', 'the backend health endpoint', async () => {
      const response = await fetch(`${parts.backend.url}/api/v1/health`, { signal: signal() });
      const body = BackendHealth.parse(await response.json());
      const ok = response.ok && body.status === 'ok';
      return {
        name: 'backend',
        ok,
        detail: ok
          ? 'GET /api/v1/health answers ok'
          : `GET /api/v1/health answers ${response.status} with status "${body.status}"` +
            (body.database?.up === false ? ' (the backend cannot reach its database)' : ''),
      };
    }),
    check('openrouter breaker', 'the backend health endpoint', async () => {
      const response = await fetch(`${parts.backend.url}/api/v1/health`, { signal: signal() });
      const breaker = BackendHealth.parse(await response.json()).circuit_breakers.openrouter;
      if (!breaker)
        return { name: 'openrouter breaker', ok: false, detail: 'the backend reports no openrouter breaker' };
      const ok = breaker.state === 'closed' && breaker.forced === 'auto';
      return {
        name: 'openrouter breaker',
        ok,
        detail: ok
          ? 'closed; LLM calls go to OpenRouter'
          : breaker.forced !== 'auto'
            ? `forced ${breaker.forced} by an operator: LLM calls skip OpenRouter (set OPENROUTER_FALLBACK=false and close the breaker once OpenRouter is back)`
            : `${breaker.state}: OpenRouter calls failed and the backend falls back to Ollama (OpenRouter outage runbook)`,
      };
    }),
    check('database', 'the database through PgBouncer', async () => {
      const up = await pgUp(parts.pgbouncer.url(labDatabaseName(parts)), Math.min(2000, o.timeoutMs));
      return {
        name: 'database',
        ok: up === 1,
        detail:
          up === 1
            ? 'SELECT 1 through PgBouncer answers'
            : 'SELECT 1 through PgBouncer does not answer within 2 s (pg_up=0): PgBouncer or PostgreSQL is down (PostgreSQL connection loss runbook)',
      };
    }),
    check('pgbouncer pool', 'PgBouncer SHOW POOLS', async () => {
      let p = await pgbouncerPools(parts.pgbouncer.adminUrl, o.timeoutMs);
      if (p.clientWaiting > 0) {
        // A client waits a moment while PgBouncer opens a server connection for it: only waiting that is
        // still there a little later means the pool is out of connections.
        await new Promise((resolve) => setTimeout(resolve, 300));
        p = await pgbouncerPools(parts.pgbouncer.adminUrl, o.timeoutMs);
      }
      const ratio = p.maxClientConn > 0 ? p.clientActive / p.maxClientConn : 0;
      const ok = ratio <= 0.8 && p.clientWaiting === 0;
      return {
        name: 'pgbouncer pool',
        ok,
        detail: `${p.clientActive} of ${p.maxClientConn} client connections active, ${p.clientWaiting} waiting for a server connection${ok ? '' : ': the pool is saturated'}`,
      };
    }),
    check('stuck executions', 'test_executions', async () => {
      const seconds = await testExecutionDuration(db);
      const ok = seconds <= o.stuckExecutionSeconds;
      return {
        name: 'stuck executions',
        ok,
        detail: ok
          ? `the longest running execution has run ${round(seconds)} s`
          : `an execution has been running for ${round(seconds)} s (> ${o.stuckExecutionSeconds} s): executions are stuck (execution agent failure runbook)`,
      };
    }),
    check('execution p95', 'test_executions', async () => {
      const p95 = await testExecutionDurationP95(db, o.p95WindowMinutes);
      const ok = p95 <= 300;
      return {
        name: 'execution p95',
        ok,
        detail: `p95 of executions finished in the last ${o.p95WindowMinutes} min is ${round(p95, 1)} s${ok ? '' : ' (> 300 s): tests run slowly (test execution high latency runbook)'}`,
      };
    }),
    check('selenium grid', 'the Selenium Grid status', async () => {
      const response = await fetch(`${parts.grid.url}/status`, { signal: signal() });
      const status = GridStatus.parse(await response.json());
      const c = parts.grid.capacity();
      const ok = status.value.ready && c.utilization <= 0.8;
      const why = !status.value.ready
        ? c.slots === 0
          ? ': the hub is not ready or has no nodes'
          : ': every slot is taken'
        : c.utilization > 0.8
          ? ': utilization above 80%, tests queue for a slot'
          : '';
      return {
        name: 'selenium grid',
        ok,
        detail: `${status.value.ready ? 'ready' : 'not ready'}, ${c.active}/${c.slots} slots in use (${round(c.utilization * 100)}%)${why}`,
      };
    }),
    check('generation confidence', 'agent_decisions', async () => {
      const rows = await agentConfidence(db, o.confidenceWindowMinutes);
      const g = rows.find((r) => r.agentType === 'generation');
      if (!g)
        return {
          name: 'generation confidence',
          ok: true,
          detail: `no generation decisions in the last ${o.confidenceWindowMinutes} min`,
        };
      const ok = g.mean >= 0.7;
      return {
        name: 'generation confidence',
        ok,
        detail: `mean confidence ${round(g.mean, 3)} over ${g.decisions} decisions${ok ? '' : ' (< 0.7): generated tests are poor; stale cache or overload (generation agent failure runbook)'}`,
      };
    }),
    check('api latency', 'the backend metrics', async () => {
      const response = await fetch(`${parts.backend.url}/metrics`, { signal: signal() });
      const p95 = sampleOf(await response.text(), 'http_request_duration_p95') ?? 0;
      const ok = p95 <= 2000;
      return {
        name: 'api latency',
        ok,
        detail: `http_request_duration_p95 is ${round(p95)} ms${ok ? '' : ' (> 2000 ms): the API is slow (API high latency runbook)'}`,
      };
    }),
    check('openrouter', 'the OpenRouter double', async () => {
      const faults = parts.openRouter.faults.list();
      return {
        name: 'openrouter',
        ok: faults.length === 0,
        detail:
          faults.length === 0
            ? 'OpenRouter answers normally'
            : `OpenRouter is in trouble: ${faults.map((f) => f.kind).join(', ')} (the provider's side; mitigate with the OpenRouter runbooks)`,
      };
    }),
    check('database activity', 'pg_stat_activity', async () => {
      const { rows } = await db.query<{
        pid: number;
        application_name: string;
        seconds: number;
        what: string;
      }>(
        `SELECT a.pid, a.application_name, EXTRACT(EPOCH FROM now() - a.query_start)::float8 AS seconds, 'query' AS what
           FROM pg_stat_activity a
          WHERE a.datname = current_database() AND a.state = 'active' AND a.pid <> pg_backend_pid()
            AND now() - a.query_start > make_interval(secs => $1::float8)
         UNION ALL
         SELECT a.pid, a.application_name, EXTRACT(EPOCH FROM now() - a.xact_start)::float8, 'lock on ' || c.relname
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation
          WHERE l.granted AND l.locktype = 'relation' AND l.mode NOT IN ('AccessShareLock', 'RowExclusiveLock')
            AND a.datname = current_database() AND a.pid <> pg_backend_pid() AND c.relkind = 'r'
            AND now() - a.xact_start > make_interval(secs => $1::float8)
          ORDER BY seconds DESC LIMIT 5`,
        [o.slowQuerySeconds],
      );
      return {
        name: 'database activity',
        ok: rows.length === 0,
        detail:
          rows.length === 0
            ? `no query or lock older than ${o.slowQuerySeconds} s`
            : `long-running work in the database (database performance runbook): ${rows
                .map(
                  (r) =>
                    `${r.what} by pid ${r.pid} (${r.application_name || 'unnamed'}) for ${round(r.seconds)} s`,
                )
                .join('; ')}`,
      };
    }),
  ]);

  const all = [...agents, ...checks, ...(await modelChecks(parts, o.timeoutMs))];
  return { healthy: all.every((c) => c.ok), checks: all };
}
