import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { durationBetween } from '../core/duration';
import type { BreakerKeys } from './breaker-control-keys';
import { HEARTBEAT, SNAPSHOT, WRITE } from './breaker-control-scripts';
import type { BreakerState, ForcedState } from './breaker-switch';

/**
 * How forced states, changes and heartbeats are stored in Redis, and read back. Everything read from Redis is
 * validated: a field written by another version, or by hand, is reported, never trusted blindly.
 */

/** The shortest expiry a forced state may have: shorter ones would end before every replica has heard of them. */
export const MIN_EXPIRY_MS = 1_000;
/** The longest expiry a forced state may have: a longer one is as good as none, and should say so. */
export const MAX_EXPIRY_MS = 7 * 24 * 3_600_000;
/** How long after it is written a forced state returns to `auto` by itself: 1 s to 7 d. */
export const ExpiresAfter = durationBetween(MIN_EXPIRY_MS, MAX_EXPIRY_MS, 'expected between 1s and 7d');

/** A persisted forced state: what, who, why, when, and until when. */
export interface ForcedRecord {
  provider: string;
  state: Exclude<ForcedState, 'auto'>;
  /** Why it was forced (an incident, a ticket). */
  reason: string;
  /** Who forced it (the run's actor, or whoever called `force`). */
  actor: string;
  /** Where the change came from (`runbook x, run y, step z`), or `null`. */
  origin: string | null;
  /** The id of the change that wrote it (a runbook action's plan hash): how a revert recognises its own change. */
  changeId: string | null;
  /** When it was forced, by the Redis clock (ISO 8601). */
  forcedAt: string;
  /** When it returns to `auto` by itself, by the Redis clock (ISO 8601), or `null` for never. */
  expiresAt: string | null;
  /** The service's change counter when it was written. */
  version: number;
}

/** The forced states of a service as read in one atomic step. */
export interface ForcedSnapshot {
  /** The id of this generation of the keys (it changes when Redis lost them); `null` before any write or heartbeat. */
  epoch: string | null;
  /** The version of the last change: the snapshot holds every change up to it. */
  version: number;
  /** The Redis clock when it was read (ms since the Unix epoch). */
  serverTime: number;
  /** Every stored record, expired ones included (see {@link isInForce}). */
  records: Map<string, ForcedRecord>;
  /** Fields that could not be read (written by hand or by another version), by provider. */
  unreadable: string[];
}

/** One published change: the new records (`null` for `auto`) of one version. */
export interface ChangeMessage {
  epoch: string;
  version: number;
  changes: { provider: string; record: ForcedRecord | null }[];
}

/** A guard on a write: the change is made only while the provider's current record matches. */
export type ForcedGuard =
  | { auto: true }
  | { version: number }
  | { changeId: string }
  /** The provider is `auto` and its last change still is `lastChangeId`'s (nobody changed it since). */
  | { lastChangeId: string }
  /** The record of this version has expired by the Redis clock. */
  | { expiredVersion: number };

/** One change to write. */
export interface ForcedChange {
  provider: string;
  state: ForcedState;
  reason: string;
  actor: string;
  origin?: string | null;
  changeId?: string | null;
  /** Expire this long after the write (Redis clock). */
  expiresAfterMs?: number | null;
  /** Expire at this time (ms since the Unix epoch). */
  expiresAtMs?: number | null;
  /** Keep this `forcedAt` (a restored record) instead of now. */
  forcedAtMs?: number | null;
  expect?: ForcedGuard;
}

/** What a write did: the published message, or the guard that failed and the record found instead. */
export type WriteResult =
  | {
      ok: true;
      message: ChangeMessage /** Subscribers the message reached (on this Redis node). */;
      receivers: number;
    }
  | { ok: false; provider: string; current: ForcedRecord | null };

/** What a replica says about itself in its heartbeat. */
export interface ReplicaReport {
  replicaId: string;
  service: string;
  host: string;
  pid: number;
  /** When the replica's control started (ISO 8601, its own clock). */
  startedAt: string;
  /** The chain's providers in the order it tries them (empty until the chain registers). */
  providers: string[];
  /** The forced state of each provider as the replica knows it (registered providers and forced ones). */
  forced: Record<string, ForcedState>;
  /** The live breaker states the chain reported. */
  reported: Record<string, BreakerState>;
  /** The highest change version the replica has applied. */
  version: number;
}

/** A live replica: its report, and when its heartbeat was written and expires (Redis clock, ISO 8601). */
export interface ReplicaStatus extends ReplicaReport {
  heartbeatAt: string;
  expiresAt: string;
  /** Set when the heartbeat could not be read: the replica is live, but says nothing one can trust. */
  problem?: string;
}

const StoredRecord = z.object({
  state: z.enum(['open', 'closed']),
  reason: z.string(),
  actor: z.string(),
  origin: z.string().nullable().optional(),
  changeId: z.string().nullable().optional(),
  forcedAt: z.number(),
  expiresAt: z.number().nullable().optional(),
  version: z.number().int(),
});

const LastChange = z.object({ version: z.number().int(), changeId: z.string().nullable().optional() });

const Report = z.object({
  replicaId: z.string(),
  service: z.string(),
  host: z.string(),
  pid: z.number(),
  startedAt: z.string(),
  providers: z.array(z.string()),
  forced: z.record(z.string(), z.enum(['open', 'closed', 'auto'])),
  reported: z.record(z.string(), z.enum(['closed', 'open', 'halfOpen'])),
  version: z.number(),
});
const Heartbeat = z.object({ heartbeatAt: z.number(), ttlMs: z.number(), status: Report });

const iso = (ms: number) => new Date(ms).toISOString();

/** A stored record as JSON (`null` when it is not one). */
function toRecord(provider: string, value: unknown): ForcedRecord | null {
  const parsed = StoredRecord.safeParse(typeof value === 'string' ? safeJson(value) : value);
  if (!parsed.success) return null;
  const r = parsed.data;
  return {
    provider,
    state: r.state,
    reason: r.reason,
    actor: r.actor,
    origin: r.origin ?? null,
    changeId: r.changeId ?? null,
    forcedAt: iso(r.forcedAt),
    expiresAt: r.expiresAt == null ? null : iso(r.expiresAt),
    version: r.version,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Whether `record` still holds at `nowMs` (it has no expiry, or the expiry is later). */
export function isInForce(record: ForcedRecord | null | undefined, nowMs: number): record is ForcedRecord {
  return !!record && (record.expiresAt === null || Date.parse(record.expiresAt) > nowMs);
}

/** Reads every forced record, the version and the epoch in one atomic step (read-only). */
export async function readForced(redis: Redis, keys: BreakerKeys): Promise<ForcedSnapshot> {
  const reply = (await SNAPSHOT.run(redis, [keys.forced, keys.version, keys.epoch], [])) as (
    | string
    | number
    | null
  )[];
  const [epoch, version, serverTime, ...fields] = reply;
  const records = new Map<string, ForcedRecord>();
  const unreadable: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const provider = String(fields[i]);
    const record = toRecord(provider, fields[i + 1]);
    if (record) records.set(provider, record);
    else unreadable.push(provider);
  }
  return {
    epoch: epoch === null || epoch === undefined ? null : String(epoch),
    version: Number(version),
    serverTime: Number(serverTime),
    records,
    unreadable,
  };
}

/**
 * Writes `changes` atomically with one new version and publishes them, or writes nothing when a guard fails.
 * Forcing `auto` deletes the field.
 */
export async function writeForced(
  redis: Redis,
  keys: BreakerKeys,
  changes: readonly ForcedChange[],
): Promise<WriteResult> {
  if (changes.length === 0) throw new TypeError('writeForced needs at least one change');
  const reply = (await WRITE.run(
    redis,
    [keys.forced, keys.version, keys.epoch, keys.last],
    [keys.channel, randomUUID(), JSON.stringify(changes)],
  )) as [string, string, string | number | null];
  if (reply[0] === 'ok') {
    const message = parseChangeMessage(reply[1]);
    if (!message) throw new Error(`breaker control: unreadable change message ${reply[1]}`);
    return { ok: true, message, receivers: Number(reply[2]) };
  }
  return { ok: false, provider: reply[1], current: reply[2] ? toRecord(reply[1], String(reply[2])) : null };
}

/** The version and change id of `provider`'s last change (`null` when none is stored). */
export async function readLastChange(
  redis: Redis,
  keys: BreakerKeys,
  provider: string,
): Promise<{ version: number; changeId: string | null } | null> {
  const parsed = LastChange.safeParse(safeJson((await redis.hget(keys.last, provider)) ?? ''));
  return parsed.success ? { version: parsed.data.version, changeId: parsed.data.changeId ?? null } : null;
}

/** Parses a message from the changes channel; `null` when it is not one (never throws). */
export function parseChangeMessage(text: string): ChangeMessage | null {
  const raw = safeJson(text) as { epoch?: unknown; version?: unknown; changes?: unknown } | undefined;
  if (
    !raw ||
    typeof raw.epoch !== 'string' ||
    typeof raw.version !== 'number' ||
    !Array.isArray(raw.changes)
  ) {
    return null;
  }
  const changes: ChangeMessage['changes'] = [];
  for (const c of raw.changes as { provider?: unknown; record?: unknown }[]) {
    if (typeof c?.provider !== 'string') return null;
    const record = c.record === null || c.record === undefined ? null : toRecord(c.provider, c.record);
    if (c.record != null && !record) return null;
    changes.push({ provider: c.provider, record });
  }
  return { epoch: raw.epoch, version: raw.version, changes };
}

/** Writes a replica's heartbeat with a TTL; returns the service's current version, its epoch and the Redis clock. */
export async function writeHeartbeat(
  redis: Redis,
  keys: BreakerKeys,
  report: ReplicaReport,
  ttlMs: number,
): Promise<{ version: number; epoch: string; serverTime: number }> {
  const [version, epoch, serverTime] = (await HEARTBEAT.run(
    redis,
    [keys.replica(report.replicaId), keys.replicas, keys.version, keys.epoch],
    [report.replicaId, Math.round(ttlMs), JSON.stringify(report), randomUUID()],
  )) as [number, string, number];
  return { version: Number(version), epoch: String(epoch), serverTime: Number(serverTime) };
}

/** Removes a replica's heartbeat (a clean shutdown: it stops counting as live at once). */
export async function removeHeartbeat(redis: Redis, keys: BreakerKeys, replicaId: string): Promise<void> {
  await redis.multi().del(keys.replica(replicaId)).zrem(keys.replicas, replicaId).exec();
}

/** The live replicas of a service: those whose heartbeat key has not expired, sorted by id. */
export async function readReplicas(redis: Redis, keys: BreakerKeys): Promise<ReplicaStatus[]> {
  const ids = (await redis.zrange(keys.replicas, '0', '-1')).sort();
  if (ids.length === 0) return [];
  const values = await redis.mget(ids.map((id) => keys.replica(id)));
  const replicas: ReplicaStatus[] = [];
  ids.forEach((replicaId, i) => {
    const value = values[i];
    if (value === null || value === undefined) return; // its TTL ran out: not live
    const parsed = Heartbeat.safeParse(safeJson(value));
    if (!parsed.success || parsed.data.status.replicaId !== replicaId) {
      replicas.push({
        replicaId,
        service: '',
        host: '',
        pid: 0,
        startedAt: '',
        providers: [],
        forced: {},
        reported: {},
        version: -1,
        heartbeatAt: '',
        expiresAt: '',
        problem: 'its heartbeat could not be read (written by another version of breaker control?)',
      });
      return;
    }
    const { heartbeatAt, ttlMs, status } = parsed.data;
    replicas.push({ ...status, heartbeatAt: iso(heartbeatAt), expiresAt: iso(heartbeatAt + ttlMs) });
  });
  return replicas;
}
