/**
 * The `total-failure` scenario (runbook 13, complete system failure), for a lab started with
 * `disasterRecovery: true`. In order:
 *
 * 1. the lab records its state as production's jobs would have: the Redis snapshot job copies a fresh RDB
 *    off the server, and Prometheus scrapes the table counts (the scenario waits for that scrape);
 * 2. the platform keeps writing: a user and three test executions are written AFTER the record (marked
 *    {@link AFTER_RECORD_MARKER}) — a restore to the recorded point must not have them;
 * 3. the WAL holding them is archived (as a continuous archiver would have), then the disaster: every
 *    Deployment and StatefulSet of the platform is gone from the cluster (their pods with them), PostgreSQL
 *    crashes and its data directory is lost, and Redis loses its data (FLUSHALL, saved over its dump.rdb).
 *
 * `undo` (tests, `aiwebtest-lab heal`) only re-creates the workloads: the data comes back through the
 * runbook's restores, which is the point.
 */
import { rm } from 'node:fs/promises';
import { DEPLOYMENTS, STATEFULSETS } from '@aiwebtest/runbooks/testing';
import pg from 'pg';
import type { LabParts } from '../lab-parts';
import { platformManifests } from '../platform/manifests';

/** Marks what the scenario writes after the record: a user `dr-after-record-…`, executions with this error_message. */
export const AFTER_RECORD_MARKER = 'dr-after-record';

/** How long the scenario waits for Prometheus to scrape the record (it scrapes every 5 s in the lab). */
const RECORD_WAIT_MS = 15_000;

/** What the scenario did, for its description and for tests. */
export interface TotalFailureReport {
  /** When the record was scraped (`Date.now()`), `null` when nothing scraped within the wait. */
  recordedAt: number | null;
  /** Rows written after the record (lost by the restore). */
  afterRecord: { users: number; test_executions: number };
  workloadsDeleted: string[];
}

/** Injects the complete failure; throws (changing nothing) on a lab without disaster recovery. */
export async function injectTotalFailure(parts: LabParts): Promise<TotalFailureReport> {
  const dr = parts.disasterRecovery;
  if (!dr) {
    throw new Error(
      'total-failure needs a lab with its own PostgreSQL and Redis: start it with disasterRecovery: true (aiwebtest-lab up does)',
    );
  }
  await dr.redis.snapshot();
  const since = Date.now();
  const deadline = since + RECORD_WAIT_MS;
  while (dr.tableRows.servedAt <= since && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const recordedAt = dr.tableRows.servedAt > since ? dr.tableRows.servedAt : null;

  const client = new pg.Client({
    connectionString: dr.postgres.adminUrl.replace(
      /\/postgres$/,
      `/${encodeURIComponent(databaseOf(parts))}`,
    ),
    application_name: 'aiwebtest-lab-chaos',
  });
  await client.connect();
  try {
    const suffix = Math.random().toString(16).slice(2, 10);
    await client.query('INSERT INTO users (username, email) VALUES ($1, $2)', [
      `${AFTER_RECORD_MARKER}-${suffix}`,
      `${AFTER_RECORD_MARKER}-${suffix}@aiwebtest.lab`,
    ]);
    await client.query(
      `INSERT INTO test_executions (test_id, result, started_at, finished_at, execution_time, browser, error_message)
       SELECT (SELECT min(test_id) FROM test_cases), 'passed', now(), now(), 1, 'chrome', $1
       FROM generate_series(1, 3)`,
      [AFTER_RECORD_MARKER],
    );
  } finally {
    await client.end().catch(() => {});
  }
  await dr.postgres.archiveNow();

  const store = parts.simulator.store;
  const workloadsDeleted: string[] = [];
  for (const type of [DEPLOYMENTS, STATEFULSETS]) {
    for (const w of store.list(type, parts.namespace).items) {
      store.delete(type, parts.namespace, w.metadata.name);
      workloadsDeleted.push(`${type.kind.toLowerCase()}/${w.metadata.name}`);
    }
  }
  await dr.postgres.crash();
  await rm(dr.postgres.dataDir, { recursive: true, force: true });
  await parts.redis.flushall();
  await parts.redis.save();
  return { recordedAt, afterRecord: { users: 1, test_executions: 3 }, workloadsDeleted };
}

/** Re-creates the workloads that are missing (the data is the runbook's to restore). */
export function recreateWorkloads(parts: LabParts): void {
  const store = parts.simulator.store;
  const missing = platformManifests({ namespace: parts.namespace, ollamaUrl: parts.ollama.url }).filter(
    (m) => {
      const name = (m.metadata as { name: string }).name;
      if (m.kind === 'Deployment')
        return !store.list(DEPLOYMENTS, parts.namespace).items.some((d) => d.metadata.name === name);
      if (m.kind === 'StatefulSet')
        return !store.list(STATEFULSETS, parts.namespace).items.some((s) => s.metadata.name === name);
      return false;
    },
  );
  if (missing.length > 0) parts.simulator.apply(...missing);
}

function databaseOf(parts: LabParts): string {
  return decodeURIComponent(new URL(parts.databaseUrl).pathname.replace(/^\//, ''));
}
