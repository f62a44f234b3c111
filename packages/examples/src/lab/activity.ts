/**
 * The platform at work: agents record decisions while their deployments are healthy, the execution agent
 * runs tests on the Grid, and a little traffic reaches the backend, so that the lab's metrics and alerts show
 * what the cluster's state implies (a crashed agent stops deciding, a full Grid makes tests slow).
 */
import { POD_METRICS } from '@aiwebtest/runbooks/testing';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { z } from 'zod';
import { startTraffic, type Traffic } from './backend';
import { boundedQueryable } from './bounded-query';
import type { Queryable } from './database/database-metrics';
import { parseInput } from './database/lab-database';
import { gridSessions } from './grid-sessions';
import type { LabParts } from './lab-parts';
import { type AgentLogMode, appendAgentLogs } from './platform/agent-logs';
import { AGENTS, type AgentName, type Browser } from './platform/manifests';
import { agentHealth, readyPods } from './platform/platform-status';

/** Where the generation agent caches its prompts' context (runbook 2's `redis-cli FLUSHDB` clears them). */
export const GENERATION_CACHE_PATTERN = 'agent:generation:cache:*';
/** The hash field that marks a cache entry as stale (`HSET agent:generation:cache:<id> stale 1`). */
export const STALE_FIELD = 'stale';
/** CPU (cores) of a generation pod from which its decisions are slow (its limit is 2 cores). */
export const GENERATION_CPU_SLOW_CORES = 1.8;

export const ActivityOptions = z.strictObject({
  /** Time between two passes of the agents. @default 1000 */
  tickMs: z.number().int().min(20).max(60_000).default(1000),
  /** Real time a test execution takes on the Grid, min and max ms (its recorded time is simulated). @default [1000, 3000] */
  executionRealMs: z
    .tuple([z.number().int().min(1), z.number().int().min(1)])
    .refine(([min, max]) => min <= max, 'expected [min, max] with min <= max')
    .default([1000, 3000]),
  /** Backend requests per second. @default 1 */
  trafficPerSecond: z.number().positive().max(100).default(1),
  /** Parallel executions when the backend's MAX_PARALLEL_TESTS cannot be read. @default 2 */
  defaultMaxParallel: z.number().int().min(1).max(1000).default(2),
});
export type ActivityOptions = z.input<typeof ActivityOptions>;

export interface Activity {
  /** Stops the agents and the traffic; executions in flight end as `error` and give their Grid slot back. */
  stop(): Promise<void>;
}

/** Agent type as `agent_decisions.agent_type` names it: `generation-agent` → `generation`. */
const agentType = (agent: AgentName) => agent.replace(/-agent$/, '');

/** Typical decision times (ms) per agent, as the seed has them. */
const BASE_MS: Record<AgentName, number> = {
  'requirements-agent': 1200,
  'generation-agent': 3500,
  'execution-agent': 800,
  'observation-agent': 400,
  'analysis-agent': 1500,
  'evolution-agent': 2500,
};

const between = (min: number, max: number) => min + Math.random() * (max - min);

/** Whether the generation agent's cache holds an entry marked stale. A Redis error counts as "no". */
export async function generationCacheStale(redis: Redis): Promise<boolean> {
  let cursor = '0';
  let scanned = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', GENERATION_CACHE_PATTERN, 'COUNT', 200);
    cursor = next;
    scanned += keys.length;
    if (keys.length > 0) {
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.hget(key, STALE_FIELD);
      const answers = (await pipeline.exec()) ?? [];
      // A key that is not a hash answers WRONGTYPE: not our marker, so not stale.
      if (answers.some(([error, value]) => !error && value === '1')) return true;
    }
  } while (cursor !== '0' && scanned < 10_000);
  return false;
}

/** Cores from a Kubernetes CPU quantity (`250m`, `1.5`, `1200000n`). */
function cores(quantity: string | undefined): number {
  const m = /^([0-9.]+)(n|u|m)?$/.exec(quantity ?? '');
  if (!m) return 0;
  const scale = { n: 1e-9, u: 1e-6, m: 1e-3 }[m[2] as 'n' | 'u' | 'm'] ?? 1;
  return Number(m[1]) * scale;
}

/** Whether any generation pod runs at its CPU limit (metrics-server's view, which `setUsage` pins). */
function generationCpuPinned(parts: LabParts): boolean {
  const metrics = parts.simulator.store.list(POD_METRICS, parts.namespace).items as {
    metadata: { name: string };
    containers?: { usage?: { cpu?: string } }[];
  }[];
  return metrics.some(
    (m) =>
      m.metadata.name.startsWith('generation-agent-') &&
      (m.containers ?? []).some((c) => cores(c.usage?.cpu) >= GENERATION_CPU_SLOW_CORES),
  );
}

/** The lab database's name, from its URL. */
export function labDatabaseName(parts: Pick<LabParts, 'databaseUrl'>): string {
  return decodeURIComponent(new URL(parts.databaseUrl).pathname.slice(1));
}

interface Execution {
  id: string;
  session: string;
  dueAt: number;
  executionTime: number;
}

/**
 * Starts the platform's work; returns at once (the first pass runs on the next tick).
 * @throws Error naming a bad option.
 */
export function startActivity(parts: LabParts, options: ActivityOptions = {}): Activity {
  const o = parseInput('startActivity', ActivityOptions, options);
  // Agents reach the database the way the platform's pods do: through PgBouncer, so its outage stops them.
  const agentPool = new pg.Pool({
    connectionString: parts.pgbouncer.url(labDatabaseName(parts)),
    max: 4,
    connectionTimeoutMillis: 2_000,
    application_name: 'aiwebtest-agents',
  });
  agentPool.on('error', () => {});
  const db: Queryable = boundedQueryable(agentPool, 2_000);
  const sessions = gridSessions(parts.grid);
  const inFlight = new Map<string, Execution>();
  let waitingSince: number | undefined;
  let maxParallel = o.defaultMaxParallel;
  let maxParallelReadAt = 0;
  let tick = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let traffic: Traffic | undefined;
  let browserTurn = 0;

  const refreshMaxParallel = async () => {
    if (Date.now() - maxParallelReadAt < 5_000) return;
    maxParallelReadAt = Date.now();
    try {
      const response = await fetch(`${parts.backend.url}/api/v1/health`, {
        signal: AbortSignal.timeout(1_000),
      });
      const body = z
        .object({ config: z.object({ max_parallel_tests: z.number().int().min(1).max(1000) }) })
        .safeParse(await response.json());
      if (body.success) maxParallel = body.data.config.max_parallel_tests;
    } catch {
      // The backend is down or slow: keep the last value read.
    }
  };

  const startTrafficOnce = async () => {
    if (traffic || stopped) return;
    const { rows } = await parts.pool.query<{ id: string | null }>(
      'SELECT min(project_id)::text AS id FROM projects',
    );
    const projectId = rows[0]?.id;
    if (!projectId || stopped) return;
    traffic = startTraffic({
      backendUrl: parts.backend.url,
      ratePerSecond: o.trafficPerSecond,
      paths: [
        {
          method: 'POST',
          path: '/api/v1/generate',
          body: { prompt: 'Generate a login test for the checkout page', agent: 'generation_agent' },
        },
        `/api/v1/projects/${projectId}/stats`,
      ],
      maxInFlight: 20,
    });
  };

  const recordDecisions = async (healthy: Set<AgentName>, stale: boolean, slow: boolean) => {
    const rows: { id: string; type: string; confidence: number; ms: number }[] = [];
    for (const agent of AGENTS) {
      if (!healthy.has(agent)) continue;
      for (const pod of readyPods(parts.simulator.store, parts.namespace, { app: agent })) {
        const suffix = pod.metadata.name.split('-').pop() ?? 'pod';
        const generation = agent === 'generation-agent';
        rows.push({
          id: `${agent}-${suffix}`,
          type: agentType(agent),
          confidence: generation && stale ? between(0.5, 0.6) : between(0.85, 0.97),
          ms: Math.round(
            generation && slow ? between(61_000, 90_000) : between(BASE_MS[agent], 2 * BASE_MS[agent]),
          ),
        });
      }
    }
    if (rows.length === 0) return;
    await db.query(
      `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, decision)
       SELECT a, t, c, m, jsonb_build_object('action', 'lab_activity', 'tick', $5::int)
         FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[]) AS u(a, t, c, m)`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.type),
        rows.map((r) => r.confidence),
        rows.map((r) => r.ms),
        tick,
      ],
    );
  };

  const finish = async (e: Execution, result: 'passed' | 'failed' | 'error', message?: string) => {
    // Backdated start: the run took `executionTime` of simulated time, ending now.
    await db.query(
      `UPDATE test_executions
          SET result = $2, finished_at = now(), started_at = now() - make_interval(secs => $3::float8),
              execution_time = $3::float8, error_message = $4
        WHERE execution_id = $1::bigint AND result = 'running'`,
      [e.id, result, e.executionTime, message ?? null],
    );
  };

  const runExecutions = async () => {
    const now = Date.now();
    for (const e of [...inFlight.values()]) {
      if (e.dueAt > now) continue;
      if (!sessions.alive(e.session)) {
        // The node (or the hub's registry) lost the session: nobody will report the result, the row stays
        // 'running' (runbook 3's stuck executions).
        inFlight.delete(e.id);
        sessions.end(e.session);
        continue;
      }
      try {
        await finish(e, Math.random() < 0.9 ? 'passed' : 'failed');
      } catch {
        continue; // the database is unreachable: try again next pass
      }
      inFlight.delete(e.id);
      sessions.end(e.session);
    }
    while (inFlight.size < maxParallel) {
      const before = parts.grid.capacity();
      const order: Browser[] = browserTurn++ % 3 === 2 ? ['firefox', 'chrome'] : ['chrome', 'firefox'];
      let session: string | undefined;
      let browser: Browser = 'chrome';
      for (const b of order) {
        session = sessions.start(b);
        if (session) {
          browser = b;
          break;
        }
      }
      if (!session) {
        waitingSince ??= now;
        return;
      }
      const after = parts.grid.capacity();
      const waited = waitingSince !== undefined;
      waitingSince = undefined;
      const saturated = before.slots === 0 || after.utilization > 0.8;
      const executionTime =
        Math.round((waited || saturated ? between(320, 600) : between(40, 110)) * 10) / 10;
      let id: string | undefined;
      try {
        const { rows } = await db.query<{ id: string }>(
          `INSERT INTO test_executions (test_id, result, started_at, browser)
           SELECT test_id, 'running', now(), $1 FROM test_cases ORDER BY random() LIMIT 1
           RETURNING execution_id::text AS id`,
          [browser],
        );
        id = rows[0]?.id;
      } catch {
        id = undefined;
      }
      if (!id) {
        sessions.end(session);
        return;
      }
      const [min, max] = o.executionRealMs;
      inFlight.set(id, { id, session, dueAt: now + between(min, max), executionTime });
    }
  };

  const pass = async () => {
    tick++;
    const store = parts.simulator.store;
    const health = agentHealth(store, parts.namespace);
    const healthy = new Set(health.filter((h) => h.healthy).map((h) => h.agent));
    const stale = await generationCacheStale(parts.redis).catch(() => false);
    const slow = generationCpuPinned(parts);
    const modes: Partial<Record<AgentName, AgentLogMode>> = {};
    if (healthy.has('generation-agent') && (stale || slow)) modes['generation-agent'] = 'degraded';
    appendAgentLogs(parts.simulator, { namespace: parts.namespace, modes, tick });
    await refreshMaxParallel();
    await startTrafficOnce().catch(() => {});
    await Promise.allSettled([
      recordDecisions(healthy, stale, slow),
      healthy.has('execution-agent') ? runExecutions() : Promise.resolve(),
    ]);
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass()
        .catch(() => {})
        .finally(schedule);
    }, o.tickMs);
  };
  schedule();

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await running;
      await traffic?.stop();
      for (const e of inFlight.values()) {
        await finish(e, 'error', 'lab activity stopped').catch(() => {});
        sessions.end(e.session);
      }
      inFlight.clear();
      await agentPool.end().catch(() => {});
    },
  };
}
