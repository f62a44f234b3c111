import type { Redis } from 'ioredis';
import { formatMillis } from '../core/duration';
import { type Finding, finding } from '../core/finding';
import type { Json } from '../core/json';
import { sleep } from '../core/sleep';
import type { BreakerKeys } from './breaker-control-keys';
import {
  type ForcedRecord,
  isInForce,
  type ReplicaStatus,
  readForced,
  readReplicas,
} from './breaker-control-store';
import type { ForcedState } from './breaker-switch';

/** A forced state an action wants every live replica to hold. */
export interface WantedState {
  provider: string;
  state: ForcedState;
}

/** How often verify looks at the heartbeats again. */
const POLL_MS = 100;

/**
 * Why `replica` does not (yet) acknowledge `wanted`, written as change `version`: it must know every wanted forced
 * state, a replica whose chain has the provider must also report that provider's breaker open when it is forced
 * open, and it must have applied `version` (a change of the expiry alone leaves the state as it was: only the
 * version tells a replica that heard it from one that did not). Empty when it acknowledges.
 */
export function missingAcks(
  replica: ReplicaStatus,
  wanted: readonly WantedState[],
  version: number,
): string[] {
  if (replica.problem) return [replica.problem];
  const missing: string[] = [];
  for (const { provider, state } of wanted) {
    const known = replica.forced[provider] ?? 'auto';
    if (known !== state) missing.push(`knows ${provider} forced ${known}, not ${state}`);
    else if (
      state === 'open' &&
      replica.providers.includes(provider) &&
      replica.reported[provider] !== 'open'
    ) {
      missing.push(`its ${provider} breaker is ${replica.reported[provider] ?? 'unreported'}, not open`);
    }
  }
  // A replica that lags on the state already says so; one that holds it may still not know the new expiry.
  if (missing.length === 0 && replica.version < version)
    missing.push(`has applied changes up to version ${replica.version}, not ${version} yet`);
  return missing;
}

/** The forced state in Redis still is the one `changeId` wrote (or `auto`, when that is what it wrote). */
function stillWritten(record: ForcedRecord | null, wanted: WantedState, changeId: string): boolean {
  if (wanted.state === 'auto') return record === null;
  return record !== null && record.state === wanted.state && record.changeId === changeId;
}

const describeRecord = (r: ForcedRecord | null) =>
  r ? `forced ${r.state} by ${r.actor} at ${r.forcedAt} (${r.reason})` : 'auto';

/**
 * Polls until every live replica of the service acknowledges `wanted` (written as change `version`), for at most `timeoutMs` (abortable by
 * `signal`). `ok` with per-replica evidence; `unknown` naming the replicas that did not acknowledge in time;
 * `fail` when the persisted state is no longer the one `changeId` wrote; `warn` when no replica is live.
 */
export async function waitForAcks(
  redis: Redis,
  keys: BreakerKeys,
  service: string,
  wanted: readonly WantedState[],
  options: { changeId: string; version: number; timeoutMs: number; signal: AbortSignal },
): Promise<Finding<Json>> {
  const started = Date.now();
  const what = wanted.map((w) => `${w.provider} ${w.state}`).join(', ');
  for (;;) {
    const [snap, replicas] = await Promise.all([readForced(redis, keys), readReplicas(redis, keys)]);
    const waitedMs = Date.now() - started;
    const overwritten = wanted.filter((w) => {
      const record = snap.records.get(w.provider) ?? null;
      return !stillWritten(isInForce(record, snap.serverTime) ? record : null, w, options.changeId);
    });
    if (overwritten.length > 0) {
      const now = overwritten.map((w) => {
        const record = snap.records.get(w.provider) ?? null;
        return `${w.provider} is ${describeRecord(isInForce(record, snap.serverTime) ? record : null)}`;
      });
      return finding(
        'fail',
        `The forced state of ${service} changed after this action set it: ${now.join('; ')}.`,
        { service, overwritten: overwritten.map((w) => w.provider), waitedMs },
      );
    }
    const rows = replicas.map((r) => ({ replica: r, missing: missingAcks(r, wanted, options.version) }));
    const lagging = rows.filter((r) => r.missing.length > 0);
    const data = {
      service,
      waitedMs,
      version: snap.version,
      replicas: rows.map(({ replica: r, missing }) => ({
        replicaId: r.replicaId,
        host: r.host,
        pid: r.pid,
        acknowledged: missing.length === 0,
        missing,
        forced: r.forced,
        reported: r.reported,
        version: r.version,
        heartbeatAt: r.heartbeatAt,
      })),
    };
    const evidence = [ackTable(rows)];
    if (replicas.length === 0) {
      return finding(
        'warn',
        `${what} is persisted for ${service}, but no replica is live to acknowledge it; replicas that start will begin in it.`,
        data,
      );
    }
    if (lagging.length === 0) {
      return finding(
        'ok',
        `All ${replicas.length} live replica(s) of ${service} hold ${what} (after ${formatMillis(waitedMs)}).`,
        data,
        evidence,
      );
    }
    if (waitedMs >= options.timeoutMs) {
      // `unknown`, not `fail`: the engine reverts a failed verification, and reverting would also undo the
      // change on every replica that did take it (during an outage: send their traffic back to the failing
      // provider). The change stays in force; a person looks at the replicas that lag.
      const names = lagging.map((r) => `${r.replica.replicaId} (${r.missing.join('; ')})`).join(', ');
      return finding(
        'unknown',
        `${lagging.length} of ${replicas.length} live replica(s) of ${service} did not acknowledge ${what} within ${formatMillis(options.timeoutMs)}: ${names}. The change stays in force (the others hold it); check or restart the replicas that lag.`,
        data,
        evidence,
      );
    }
    await sleep(Math.min(POLL_MS, options.timeoutMs - waitedMs), options.signal);
  }
}

function ackTable(rows: { replica: ReplicaStatus; missing: string[] }[]) {
  const list = (o: Record<string, string>) =>
    Object.entries(o)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  return {
    kind: 'table' as const,
    title: 'Live replicas',
    columns: ['replica', 'host', 'pid', 'chain', 'forced', 'breakers', 'heartbeat', 'acknowledged'],
    rows: rows.map(({ replica: r, missing }) => [
      r.replicaId,
      r.host,
      r.pid,
      r.providers.join(' → '),
      list(r.forced),
      list(r.reported),
      r.heartbeatAt,
      missing.length === 0 ? 'yes' : `no: ${missing.join('; ')}`,
    ]),
  };
}
