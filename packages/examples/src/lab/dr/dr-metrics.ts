/**
 * The lab exporter's runbook-13 metrics: `aiwebtest_table_rows{table}` with
 * `aiwebtest_table_rows_timestamp_seconds` (the record of the data monitoring keeps) and
 * `system_health` (0 when the platform is down as a whole).
 */
import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../database/database-metrics';
import type { LabParts } from '../lab-parts';
import { systemHealth } from './platform-health';
import { INTEGRITY_TABLES, readTableRows, type TableRows } from './table-rows';

export function registerDisasterRecoveryMetrics(registry: Registry, parts: LabParts, db: Queryable): void {
  // Both table gauges come from one count per scrape; a failed count leaves both at their last values, so
  // after a disaster Prometheus keeps the last counts taken before it.
  let current: Promise<TableRows | undefined> | undefined;
  const rows = () => {
    current ??= readTableRows(db).then(
      (r) => {
        const record = parts.disasterRecovery?.tableRows;
        if (record) {
          record.last = r;
          record.servedAt = Date.now();
        }
        return r;
      },
      () => undefined,
    );
    return current;
  };
  new Gauge({
    name: 'aiwebtest_table_rows',
    help: 'Rows of the data-integrity tables (users, test_cases, test_executions), counted at aiwebtest_table_rows_timestamp_seconds.',
    labelNames: ['table'],
    registers: [registry],
    async collect() {
      current = undefined;
      const r = await rows();
      if (r) for (const table of INTEGRITY_TABLES) this.set({ table }, r.counts[table]);
    },
  });
  new Gauge({
    name: 'aiwebtest_table_rows_timestamp_seconds',
    help: 'The database time (statement_timestamp, seconds since the epoch to the microsecond) at which aiwebtest_table_rows was counted.',
    registers: [registry],
    async collect() {
      const r = await rows();
      // A float64 near 1.8e9 s keeps 0.24 µs: Math.round(value * 1e6) gives the microseconds back exactly.
      if (r) this.set(r.recordedAtMicros / 1e6);
    },
  });
  new Gauge({
    name: 'system_health',
    help: 'Whether the platform is up (1) or down as a whole (0: no workload has a ready pod and the API answers down).',
    registers: [registry],
    async collect() {
      this.set(await systemHealth(parts));
    },
  });
}
