/**
 * The lab exporter's metrics (LAB.md's metric contract): computed on every scrape from the cluster, the
 * database, PgBouncer and the Grid, under the names the manual's alerts use.
 */
import { Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import { labDatabaseName } from './activity';
import { boundedQueryable } from './bounded-query';
import {
  type AgentConfidence,
  agentConfidence,
  type PgBouncerPoolsSummary,
  pgbouncerPools,
  pgUp,
  testExecutionDuration,
  testExecutionDurationP95,
} from './database/database-metrics';
import { parseInput } from './database/lab-database';
import { registerDisasterRecoveryMetrics } from './dr/dr-metrics';
import type { LabParts } from './lab-parts';
import { registerModelMetrics } from './ml/ml-metrics';
import { agentMetricLabel } from './platform/manifests';
import { type AgentHealth, agentHealth } from './platform/platform-status';
import type { GridCapacity } from './platform/selenium-grid';
import { registerSecurityMetrics } from './security/incident-metric';

export const LabMetricsOptions = z.strictObject({
  /** Window of `agent_confidence`. @default 5 */
  confidenceWindowMinutes: z.number().positive().max(1440).default(5),
  /** Window of `test_execution_duration_p95`. @default 15 */
  p95WindowMinutes: z.number().positive().max(1440).default(15),
  /** How long one source may take before the scrape goes on without it. @default 2000 */
  sourceTimeoutMs: z.number().int().min(50).max(30_000).default(2000),
});
export type LabMetricsOptions = z.input<typeof LabMetricsOptions>;

/** The sources the exporter reads; `lab_exporter_source_up{source}` says which answered the last scrape. */
export const METRIC_SOURCES = ['cluster', 'database', 'pgbouncer', 'grid'] as const;
type Source = (typeof METRIC_SOURCES)[number];

/** Everything one scrape reports; a source that failed leaves its fields out. */
interface Snapshot {
  agents?: AgentHealth[];
  confidence?: AgentConfidence[];
  duration?: number;
  p95?: number;
  pgUp: 0 | 1;
  pools?: PgBouncerPoolsSummary;
  grid?: GridCapacity;
  up: Record<Source, boolean>;
}

/**
 * A registry whose gauges read their sources when scraped. A failing source never fails the scrape: `pg_up`
 * reports 0, the other gauges of that source keep their last value and `lab_exporter_source_up{source}` is 0.
 */
export function createLabMetrics(parts: LabParts, options: LabMetricsOptions = {}): Registry {
  const o = parseInput('createLabMetrics', LabMetricsOptions, options);
  const registry = new Registry();
  const db = boundedQueryable(parts.pool, o.sourceTimeoutMs);
  const pgUrl = parts.pgbouncer.url(labDatabaseName(parts));

  const attempt = async <T>(fn: () => Promise<T> | T): Promise<T | undefined> => {
    try {
      return await fn();
    } catch {
      return undefined;
    }
  };
  const read = async (): Promise<Snapshot> => {
    // SHOW POOLS before the pg_up probe: the probe's own client would otherwise show as waiting in the pool.
    const pgbouncer = async () => {
      const pools = await attempt(() => pgbouncerPools(parts.pgbouncer.adminUrl, o.sourceTimeoutMs));
      return { pools, up: await attempt(() => pgUp(pgUrl, 2000)) };
    };
    const [agents, confidence, duration, p95, { pools, up }, grid] = await Promise.all([
      attempt(() => agentHealth(parts.simulator.store, parts.namespace)),
      attempt(() => agentConfidence(db, o.confidenceWindowMinutes)),
      attempt(() => testExecutionDuration(db)),
      attempt(() => testExecutionDurationP95(db, o.p95WindowMinutes)),
      pgbouncer(),
      attempt(() => parts.grid.capacity()),
    ]);
    return {
      agents,
      confidence,
      duration,
      p95,
      pgUp: up ?? 0,
      pools,
      grid,
      up: {
        cluster: agents !== undefined,
        database: duration !== undefined && p95 !== undefined && confidence !== undefined,
        pgbouncer: pools !== undefined,
        grid: grid !== undefined,
      },
    };
  };

  // prom-client collects every metric at once, in registration order: the first gauge starts this scrape's
  // read and the others wait for the same one, so one scrape makes one round of queries.
  let current: Promise<Snapshot> | undefined;
  const snapshot = () => {
    current ??= read();
    return current;
  };

  new Gauge({
    name: 'lab_exporter_source_up',
    help: 'Whether the lab exporter could read a source on the last scrape (1) or not (0).',
    labelNames: ['source'],
    registers: [registry],
    async collect() {
      current = read();
      const s = await current;
      for (const source of METRIC_SOURCES) this.set({ source }, s.up[source] ? 1 : 0);
    },
  });

  new Gauge({
    name: 'agent_health',
    help: "1 when the agent's deployment has at least one ready pod and all desired pods ready, else 0.",
    labelNames: ['agent'],
    registers: [registry],
    async collect() {
      const { agents } = await snapshot();
      for (const h of agents ?? []) this.set({ agent: agentMetricLabel(h.agent) }, h.healthy ? 1 : 0);
    },
  });

  new Gauge({
    name: 'agent_confidence',
    help: `Mean confidence of the agent's decisions in the last ${o.confidenceWindowMinutes} minutes (absent without decisions).`,
    labelNames: ['agent'],
    registers: [registry],
    async collect() {
      const { confidence } = await snapshot();
      if (!confidence) return;
      this.reset();
      for (const r of confidence) this.set({ agent: r.agent }, r.mean);
    },
  });

  const gauge = (name: string, help: string, pick: (s: Snapshot) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const v = pick(await snapshot());
        if (v !== undefined) this.set(v);
      },
    });

  gauge(
    'test_execution_duration',
    'Seconds the longest still-running test execution has been running (0 when none runs).',
    (s) => s.duration,
  );
  gauge(
    'test_execution_duration_p95',
    `95th percentile of execution_time (seconds) of executions finished in the last ${o.p95WindowMinutes} minutes.`,
    (s) => s.p95,
  );
  gauge(
    'pg_up',
    'Whether SELECT 1 through PgBouncer to the application database answers within 2 s.',
    (s) => s.pgUp,
  );
  gauge(
    'pgbouncer_pools_client_active_connections',
    'Client connections of the application pools linked to a server connection (SHOW POOLS cl_active).',
    (s) => s.pools?.clientActive,
  );
  gauge(
    'pgbouncer_pools_client_waiting_connections',
    'Client connections waiting for a server connection (SHOW POOLS cl_waiting).',
    (s) => s.pools?.clientWaiting,
  );
  gauge(
    'pgbouncer_config_max_client_connections',
    'PgBouncer max_client_conn.',
    (s) => s.pools?.maxClientConn,
  );
  gauge('selenium_grid_slots', 'Session slots of the Grid nodes the hub knows.', (s) => s.grid?.slots);
  gauge('selenium_grid_sessions_active', 'Sessions running on the Grid.', (s) => s.grid?.active);
  gauge('selenium_grid_utilization', 'Running sessions per slot (0..1).', (s) => s.grid?.utilization);
  registerDisasterRecoveryMetrics(registry, parts, db);
  registerSecurityMetrics(registry, db, parts.redis);
  registerModelMetrics(registry, db);

  return registry;
}
