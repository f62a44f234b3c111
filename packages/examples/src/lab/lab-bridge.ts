/**
 * What makes the simulated cluster matter: the real processes behind a few of its workloads follow what
 * is done to them with kubectl (or a runbook), the way their pods would.
 *
 * - `kubectl set env deployment/backend …` → the backend applies the new env live (each pod would restart
 *   with it; the lab's one real replica reconfigures instead).
 * - `kubectl rollout restart deployment/pgbouncer` → the real PgBouncer is restarted (started again when a
 *   crash had stopped it).
 * - `kubectl rollout restart deployment/backend` → the backend drops its database connections and opens new
 *   ones, as new pods would.
 *
 * Nothing else needs a bridge: agents, the Selenium Grid and the metrics read the simulator directly.
 */
import type { LabParts } from './lab-parts';
import { type WorkloadEvent, watchWorkloads } from './platform/workload-watch';

/** The bridge, running. */
export interface LabBridge {
  /** What it did, newest last (at most the last 200 lines). */
  log(): readonly string[];
  close(): void;
}

const MAX_LOG = 200;

export function startBridge(parts: LabParts): LabBridge {
  const lines: string[] = [];
  const note = (line: string) => {
    lines.push(`${new Date().toISOString()} ${line}`);
    if (lines.length > MAX_LOG) lines.splice(0, lines.length - MAX_LOG);
  };

  const onEvent = async (event: WorkloadEvent) => {
    if (event.kind !== 'Deployment') return;
    if (event.type === 'envChanged' && event.name === 'backend') {
      await parts.backend.reconfigure(event.after);
      const changed = Object.keys(event.after).filter((k) => event.after[k] !== event.before[k]);
      note(`backend: env applied (${changed.join(', ') || 'no literal change'})`);
    } else if (event.type === 'restarted' && event.name === 'pgbouncer') {
      await parts.pgbouncer.restart();
      note(`pgbouncer: restarted (rollout ${event.restartedAt})`);
    } else if (event.type === 'restarted' && event.name === 'backend') {
      await parts.backend.resetDatabasePool();
      note(`backend: database connections reset (rollout ${event.restartedAt})`);
    }
  };

  const watch = watchWorkloads(parts.simulator.store, parts.namespace, onEvent, {
    onError: (error, event) => {
      // A refused env (a typo in `kubectl set env`) keeps the old config, as a pod that fails to start would
      // keep the old ReplicaSet serving; the log says why.
      const reason = error instanceof Error ? error.message : String(error);
      note(`${event.kind.toLowerCase()}/${event.name}: ${event.type} not applied: ${reason}`);
    },
  });
  return {
    log: () => [...lines],
    close: () => watch.close(),
  };
}
