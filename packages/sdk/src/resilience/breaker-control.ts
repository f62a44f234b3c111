import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type Duration, durationBetween, formatMillis, toMillis } from '../core/duration';
import type { Disposable } from '../core/events';
import { parseOptions } from '../core/parse-options';
import { cleanRedisError } from '../redis/connection';
import { BreakerControlError } from './breaker-control-errors';
import {
  type BreakerKeys,
  breakerKeys,
  DEFAULT_BREAKER_PREFIX,
  KeyPrefix,
  ProviderName,
  ReplicaId,
  ServiceName,
} from './breaker-control-keys';
import {
  type ChangeMessage,
  ExpiresAfter,
  type ForcedRecord,
  type ForcedSnapshot,
  isInForce,
  MAX_EXPIRY_MS,
  MIN_EXPIRY_MS,
  parseChangeMessage,
  type ReplicaReport,
  type ReplicaStatus,
  readForced,
  readReplicas,
  removeHeartbeat,
  writeForced,
  writeHeartbeat,
} from './breaker-control-store';
import type { BreakerState, BreakerSwitch, ForcedState } from './breaker-switch';

/** Milliseconds of a duration that passed validation; `NaN` for one that did not (its own issue names it). */
function millisOrNaN(d: Duration): number {
  try {
    return toMillis(d);
  } catch {
    return Number.NaN;
  }
}

/** `compare(a, b)`, or true when one of them is invalid (its own field reports it: one issue, not two). */
const unlessInvalid = (a: number, b: number, compare: (a: number, b: number) => boolean) =>
  Number.isNaN(a) || Number.isNaN(b) || compare(a, b);

/** Options of {@link startBreakerControl}. */
export const BreakerControlOptions = z
  .object({
    /** The service whose replicas share the forced states (`backend`). */
    service: ServiceName,
    /** This replica's id in heartbeats (the pod name is a good one). @default `<hostname>-<pid>` */
    replicaId: ReplicaId.optional(),
    /** Namespace of the Redis keys and the channel. @default "aiwebtest:breaker" */
    prefix: KeyPrefix.default(DEFAULT_BREAKER_PREFIX),
    /**
     * How often the replica writes its heartbeat and checks the change counter: the bound on how long a lost
     * pub/sub message can leave it stale. 50 ms to 5 min. @default "1s"
     */
    heartbeat: durationBetween(50, 300_000, 'expected between 50ms and 5m').default('1s'),
    /**
     * How long a heartbeat keeps the replica live: after that without a new one it no longer counts. Longer than
     * `heartbeat`, at most 1 h. @default 3 × heartbeat
     */
    heartbeatTtl: durationBetween(51, 3_600_000, 'expected between 51ms and 1h').optional(),
    /**
     * How often the replica re-reads every forced state even when the counter did not move: at least `heartbeat`,
     * at most 1 d. @default "30s"
     */
    resync: durationBetween(50, 86_400_000, 'expected between 50ms and 1d').default('30s'),
    /** How long `startBreakerControl` (and `close`) wait for Redis. 100 ms to 5 min. @default "5s" */
    startTimeout: durationBetween(100, 300_000, 'expected between 100ms and 5m').default('5s'),
    /**
     * Called with background errors (a heartbeat or a re-read that failed, an unreadable message). The replica
     * keeps its last known forced states meanwhile. @default a process warning when contact is first lost
     */
    onError: z
      .custom<(error: unknown) => void>((v) => typeof v === 'function', 'expected a function')
      .optional(),
  })
  .refine(
    (o) =>
      o.heartbeatTtl === undefined ||
      unlessInvalid(millisOrNaN(o.heartbeatTtl), millisOrNaN(o.heartbeat), (a, b) => a > b),
    { message: 'must be longer than heartbeat', path: ['heartbeatTtl'] },
  )
  .refine((o) => unlessInvalid(millisOrNaN(o.resync), millisOrNaN(o.heartbeat), (a, b) => a >= b), {
    message: 'must be at least heartbeat',
    path: ['resync'],
  });
export type BreakerControlOptions = z.output<typeof BreakerControlOptions>;
export type BreakerControlOptionsInput = z.input<typeof BreakerControlOptions>;

/** Options of {@link BreakerControl.force}: who and why, and optionally until when. */
export const ForceOptions = z
  .object({
    /** Why (an incident, a ticket): kept with the forced state. */
    reason: z.string().trim().min(1).max(500),
    /** Who forces it. */
    actor: z.string().trim().min(1).max(200),
    /** Where the change comes from (`admin endpoint`, `runbook x run y`). @default none */
    origin: z.string().max(500).optional(),
    /**
     * Return to `auto` at this time: 1 s to 7 d from now (by this process's clock; the record expires by the
     * Redis clock). @default never
     */
    expiresAt: z
      .date()
      .refine(
        (d) => d.getTime() - Date.now() >= MIN_EXPIRY_MS && d.getTime() - Date.now() <= MAX_EXPIRY_MS,
        'expected between 1s and 7d from now',
      )
      .optional(),
    /** Return to `auto` this long after the write (1 s to 7 d), by the Redis clock. @default never */
    expiresAfter: ExpiresAfter.optional(),
  })
  .refine((o) => o.expiresAt === undefined || o.expiresAfter === undefined, {
    message: 'give expiresAt or expiresAfter, not both',
    path: ['expiresAfter'],
  });
export type ForceOptions = z.output<typeof ForceOptions>;
export type ForceOptionsInput = z.input<typeof ForceOptions>;

const ForcedStateSchema = z.enum(['open', 'closed', 'auto']);

/**
 * A {@link BreakerSwitch} shared by every replica of a service through Redis. `forced()` answers from memory
 * (no I/O on the call path); changes arrive by pub/sub, and a re-read heals whatever pub/sub lost.
 */
export interface BreakerControl extends BreakerSwitch {
  readonly service: string;
  readonly replicaId: string;
  /** The highest change version this replica has applied. */
  readonly version: number;
  /**
   * Forces `provider`'s breaker for every replica: persisted, published, and applied here before it resolves.
   * `auto` removes the forced state. Returns the stored record (`null` for `auto`).
   */
  force(provider: string, state: ForcedState, options: ForceOptionsInput): Promise<ForcedRecord | null>;
  /** The persisted forced states in force now, by provider name. */
  read(): Promise<ForcedRecord[]>;
  /** The live replicas of the service (this one included) as their heartbeats describe them. */
  replicas(): Promise<ReplicaStatus[]>;
  /** Stops listening and heartbeating and removes this replica's heartbeat. Does not close `redis`. */
  close(): Promise<void>;
}

/**
 * Starts breaker control for one replica of a service. Resolves once the replica holds the persisted forced
 * states (so the first call already honours them), is subscribed to changes and has written its first
 * heartbeat; rejects with a {@link BreakerControlError} `BREAKER_CONTROL_UNAVAILABLE` when Redis does not answer
 * within `startTimeout`.
 *
 * Timing: a change reaches every connected replica by pub/sub (milliseconds). A lost message is noticed at the
 * next heartbeat (the change counter moved) and the states are re-read: at most `heartbeat` plus two round
 * trips of staleness. A reconnect (a Redis restart, a killed connection) re-reads everything. While Redis is
 * unreachable a replica keeps the last states it knew, and expiries still take effect on time.
 *
 * `redis` is an ioredis client (standalone or Sentinel); breaker control duplicates it for its subscriber.
 */
export async function startBreakerControl(
  redis: Redis,
  options: BreakerControlOptionsInput,
): Promise<BreakerControl> {
  const control = new RedisBreakerControl(
    redis,
    parseOptions('breaker control', BreakerControlOptions, options),
  );
  await control.start();
  return control;
}

type SyncMode = 'none' | 'plain' | 'authoritative';

// setTimeout's longest delay; a later expiry is re-armed when it fires.
const MAX_TIMER_MS = 2_147_483_647;
// Expiry timers fire this much late, so that the Redis clock agrees the record has expired.
const EXPIRY_MARGIN_MS = 5;

class RedisBreakerControl implements BreakerControl {
  readonly service: string;
  readonly replicaId: string;
  readonly #redis: Redis;
  readonly #keys: BreakerKeys;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  readonly #resyncMs: number;
  readonly #startTimeoutMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #startedAt = new Date().toISOString();
  #sub: Redis | undefined;

  /** What this replica knows per provider, and the version of the change that told it. */
  readonly #known = new Map<string, { version: number; record: ForcedRecord | null }>();
  /** The version every provider not in `#known` is known at (the last snapshot's). */
  #base = 0;
  #highest = 0;
  /** The generation of the keys what we know comes from (`null`: the keys had none when read). */
  #epoch: string | null = null;
  /** Messages that arrived before the first read; applied right after it (`null` once it is done). */
  #early: ChangeMessage[] | null = [];
  /** Redis clock minus local clock, from the last round trip. */
  #offset = 0;
  /** The forced state listeners last heard, per provider (`auto` when absent). */
  readonly #announced = new Map<string, ForcedState>();
  readonly #listeners = new Set<(provider: string, state: ForcedState) => void>();
  #providers: string[] = [];
  readonly #reported = new Map<string, BreakerState>();
  readonly #expiryTimers = new Map<string, NodeJS.Timeout>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #detach: (() => void)[] = [];
  #closed = false;
  #failing = false;

  #beatPending = false;
  #beatLoop: Promise<void> | null = null;
  #syncPending: SyncMode = 'none';
  #syncLoop: Promise<void> | null = null;

  constructor(redis: Redis, o: BreakerControlOptions) {
    this.#redis = redis;
    this.service = o.service;
    this.replicaId = o.replicaId ?? defaultReplicaId();
    this.#keys = breakerKeys(o.prefix, o.service);
    this.#heartbeatMs = toMillis(o.heartbeat);
    this.#ttlMs = o.heartbeatTtl === undefined ? 3 * this.#heartbeatMs : toMillis(o.heartbeatTtl);
    this.#resyncMs = toMillis(o.resync);
    this.#startTimeoutMs = toMillis(o.startTimeout);
    // By default one process warning per loss of contact, not one per heartbeat.
    this.#onError =
      o.onError ??
      ((e) => {
        if (this.#failing) return;
        this.#failing = true;
        process.emitWarning(
          `breaker control of ${this.service}: ${errorText(e)}. This replica keeps its last known forced states until Redis answers again.`,
          'BreakerControlWarning',
        );
      });
  }

  get version(): number {
    return this.#highest;
  }

  async start(): Promise<void> {
    try {
      await bounded(this.#startTimeoutMs, () => this.#connect());
    } catch (e) {
      this.#closed = true;
      this.#sub?.disconnect();
      // Never the raw ioredis error: a failed login's carries `HELLO 3 AUTH <user> <password>`.
      const cause = cleanRedisError(e, this.#redis);
      throw new BreakerControlError(
        'BREAKER_CONTROL_UNAVAILABLE',
        `Breaker control of service ${this.service} could not read the forced breaker states from Redis: ${cause.message}. Check that Redis is reachable; a replica that must start regardless can fall back to localBreakerSwitch() (it will not honour forced states).`,
        { cause, details: { service: this.service, replicaId: this.replicaId } },
      );
    }
    const onReady = () => void this.#requestSync('authoritative');
    for (const client of [this.#redis, this.#sub as Redis]) {
      client.on('ready', onReady);
      this.#detach.push(() => client.off('ready', onReady));
    }
    this.#timers.push(
      setInterval(() => this.#beatSoon(), this.#heartbeatMs),
      setInterval(() => void this.#requestSync('plain'), this.#resyncMs),
    );
    for (const t of this.#timers) t.unref();
  }

  async #connect(): Promise<void> {
    // Subscribe before the first read: a change made in between arrives as a message instead of being missed.
    const sub = this.#redis.duplicate({
      connectionName: `breaker-control:${this.service}:${this.replicaId}`,
    });
    this.#sub = sub;
    sub.on('error', (e: unknown) => this.#fail(e));
    sub.on('message', (channel: string, text: string) => {
      if (channel === this.#keys.channel) this.#onMessageText(text);
    });
    await sub.subscribe(this.#keys.channel);
    await this.#snapshot(true);
    // After a start that timed out, a late answer must not leave a heartbeat behind.
    if (!this.#closed) await this.#beatOnce();
  }

  // --- BreakerSwitch -------------------------------------------------------------------------------------

  forced(provider: string): ForcedState {
    const record = this.#known.get(provider)?.record;
    return isInForce(record, this.#serverNow()) ? record.state : 'auto';
  }

  onChange(listener: (provider: string, state: ForcedState) => void): Disposable {
    this.#listeners.add(listener);
    const dispose = () => {
      this.#listeners.delete(listener);
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  register(providers: readonly string[]): void {
    this.#providers = [...providers];
    this.#beatSoon();
  }

  report(provider: string, state: BreakerState): void {
    if (this.#reported.get(provider) === state) return;
    this.#reported.set(provider, state);
    this.#beatSoon();
  }

  // --- BreakerControl ------------------------------------------------------------------------------------

  async force(
    provider: string,
    state: ForcedState,
    options: ForceOptionsInput,
  ): Promise<ForcedRecord | null> {
    const name = parseOptions('breaker control force', z.object({ provider: ProviderName }), {
      provider,
    }).provider;
    const to = parseOptions('breaker control force', z.object({ state: ForcedStateSchema }), { state }).state;
    const o = parseOptions('breaker control force', ForceOptions, options);
    const result = await writeForced(this.#redis, this.#keys, [
      {
        provider: name,
        state: to,
        reason: o.reason,
        actor: o.actor,
        origin: o.origin ?? null,
        changeId: null,
        expiresAfterMs: o.expiresAfter === undefined ? null : toMillis(o.expiresAfter),
        expiresAtMs: o.expiresAt?.getTime() ?? null,
      },
    ]);
    // An unguarded write always succeeds.
    if (!result.ok) throw new Error('breaker control: unguarded write refused');
    this.#onMessage(result.message);
    return result.message.changes[0]?.record ?? null;
  }

  async read(): Promise<ForcedRecord[]> {
    const snap = await readForced(this.#redis, this.#keys);
    return [...snap.records.values()]
      .filter((r) => isInForce(r, snap.serverTime))
      .sort((a, b) => a.provider.localeCompare(b.provider));
  }

  replicas(): Promise<ReplicaStatus[]> {
    return readReplicas(this.#redis, this.#keys);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const t of this.#expiryTimers.values()) clearTimeout(t);
    for (const detach of this.#detach) detach();
    this.#listeners.clear();
    this.#sub?.disconnect();
    // Redis may be down (commands then wait in ioredis's offline queue): a shutdown waits startTimeout at most,
    // and the heartbeat expires by itself after its TTL.
    await bounded(this.#startTimeoutMs, async () => {
      // A heartbeat in flight would bring the key back after we removed it.
      await this.#beatLoop?.catch(() => {});
      await removeHeartbeat(this.#redis, this.#keys, this.replicaId);
    }).catch((e) => this.#onError(cleanRedisError(e, this.#redis)));
  }

  // --- changes -------------------------------------------------------------------------------------------

  #onMessageText(text: string): void {
    const message = parseChangeMessage(text);
    if (!message) {
      this.#onError(new Error(`breaker control of ${this.service}: ignored an unreadable change message`));
      void this.#requestSync('plain');
      return;
    }
    this.#onMessage(message);
  }

  #onMessage(message: ChangeMessage): void {
    if (this.#closed) return;
    if (this.#early) {
      // Before the first read there is nothing to compare the message with: keep it for after.
      this.#early.push(message);
      return;
    }
    if (message.epoch !== this.#epoch) {
      // Redis lost the keys since we read them: what we know may be gone there. Start over from Redis.
      void this.#requestSync('authoritative');
      return;
    }
    const touched: string[] = [];
    for (const { provider, record } of message.changes) {
      const known = this.#known.get(provider)?.version ?? this.#base;
      // An older message than what we hold (reordered, or already covered by a snapshot) changes nothing.
      if (message.version <= known) continue;
      this.#known.set(provider, { version: message.version, record });
      this.#armExpiry(provider, record);
      touched.push(provider);
    }
    if (message.version > this.#highest) this.#highest = message.version;
    this.#announce(touched);
    this.#beatSoon();
  }

  #applySnapshot(snap: ForcedSnapshot, authoritative: boolean): void {
    const newGeneration = this.#epoch !== snap.epoch;
    if (newGeneration) {
      authoritative = true;
      this.#epoch = snap.epoch;
    }
    const providers = new Set([...this.#known.keys(), ...snap.records.keys(), ...this.#announced.keys()]);
    if (authoritative) {
      // Redis's word replaces what we knew — except changes of the same generation newer than the read, whose
      // messages arrived while it was in flight: dropping them would roll this replica back.
      const newer = newGeneration ? [] : [...this.#known].filter(([, k]) => k.version > snap.version);
      this.#known.clear();
      for (const [provider, record] of snap.records)
        this.#known.set(provider, { version: snap.version, record });
      for (const [provider, known] of newer) this.#known.set(provider, known);
      this.#base = snap.version;
      this.#highest = Math.max(snap.version, ...newer.map(([, k]) => k.version));
      for (const provider of providers) this.#armExpiry(provider, this.#known.get(provider)?.record ?? null);
    } else {
      for (const provider of providers) {
        const known = this.#known.get(provider)?.version ?? this.#base;
        if (snap.version <= known) continue;
        const record = snap.records.get(provider) ?? null;
        this.#known.set(provider, { version: snap.version, record });
        this.#armExpiry(provider, record);
      }
      this.#base = Math.max(this.#base, snap.version);
      this.#highest = Math.max(this.#highest, snap.version);
    }
    this.#announce([...providers]);
    this.#beatSoon();
    const early = this.#early;
    this.#early = null;
    for (const message of early ?? []) this.#onMessage(message);
  }

  /** Tells listeners about every provider whose effective forced state differs from what they last heard. */
  #announce(providers: Iterable<string>): void {
    for (const provider of providers) {
      const state = this.forced(provider);
      if ((this.#announced.get(provider) ?? 'auto') === state) continue;
      if (state === 'auto') this.#announced.delete(provider);
      else this.#announced.set(provider, state);
      for (const listener of this.#listeners) {
        try {
          listener(provider, state);
        } catch (e) {
          this.#onError(e);
        }
      }
    }
  }

  // --- expiry --------------------------------------------------------------------------------------------

  #armExpiry(provider: string, record: ForcedRecord | null): void {
    clearTimeout(this.#expiryTimers.get(provider));
    this.#expiryTimers.delete(provider);
    if (!record?.expiresAt || this.#closed) return;
    const due = Date.parse(record.expiresAt) - this.#serverNow() + EXPIRY_MARGIN_MS;
    const timer = setTimeout(() => this.#expire(provider, record), Math.min(Math.max(due, 0), MAX_TIMER_MS));
    timer.unref();
    this.#expiryTimers.set(provider, timer);
  }

  #expire(provider: string, record: ForcedRecord): void {
    this.#expiryTimers.delete(provider);
    if (this.#closed || this.#known.get(provider)?.record !== record) return;
    const version = record.version;
    if (isInForce(record, this.#serverNow())) {
      this.#armExpiry(provider, record); // a far expiry, re-armed in steps
      return;
    }
    // Every replica flips by the same (Redis) clock; one of them also removes the record, and its message
    // moves every replica's version on.
    this.#announce([provider]);
    this.#beatSoon();
    writeForced(this.#redis, this.#keys, [
      {
        provider,
        state: 'auto',
        reason: 'expired',
        actor: `breaker-control:${this.replicaId}`,
        expect: { expiredVersion: version },
      },
    ]).then(
      (result) => (result.ok ? this.#onMessage(result.message) : void this.#requestSync('plain')),
      (e) => this.#fail(e),
    );
  }

  // --- heartbeat and re-reads ----------------------------------------------------------------------------

  #serverNow(): number {
    return Date.now() + this.#offset;
  }

  #measure(sentAt: number, serverTime: number): void {
    this.#offset = serverTime - (sentAt + Date.now()) / 2;
  }

  async #snapshot(authoritative: boolean): Promise<void> {
    const sentAt = Date.now();
    const snap = await readForced(this.#redis, this.#keys);
    this.#measure(sentAt, snap.serverTime);
    if (!this.#closed) this.#applySnapshot(snap, authoritative);
  }

  #requestSync(mode: Exclude<SyncMode, 'none'>): Promise<void> {
    if (mode === 'authoritative' || this.#syncPending === 'none') this.#syncPending = mode;
    if (!this.#syncLoop) {
      this.#syncLoop = (async () => {
        while (this.#syncPending !== 'none' && !this.#closed) {
          const authoritative = this.#syncPending === 'authoritative';
          this.#syncPending = 'none';
          try {
            await this.#snapshot(authoritative);
          } catch (e) {
            this.#fail(e);
            break; // the next heartbeat, interval or reconnect asks again
          }
        }
      })().finally(() => {
        this.#syncLoop = null;
      });
    }
    return this.#syncLoop;
  }

  #beatSoon(): void {
    if (this.#closed) return;
    this.#beatPending = true;
    if (this.#beatLoop) return;
    this.#beatLoop = (async () => {
      while (this.#beatPending && !this.#closed) {
        this.#beatPending = false;
        try {
          await this.#beatOnce();
        } catch (e) {
          this.#fail(e);
          break;
        }
      }
    })().finally(() => {
      this.#beatLoop = null;
    });
  }

  async #beatOnce(): Promise<void> {
    const sentAt = Date.now();
    const { version, epoch, serverTime } = await writeHeartbeat(
      this.#redis,
      this.#keys,
      this.#report(),
      this.#ttlMs,
    );
    this.#measure(sentAt, serverTime);
    this.#failing = false;
    if (epoch !== this.#epoch) void this.#requestSync('authoritative');
    else if (version > this.#highest) void this.#requestSync('plain'); // a change we never heard of
  }

  #report(): ReplicaReport {
    const now = this.#serverNow();
    const forced: Record<string, ForcedState> = {};
    for (const provider of this.#providers) forced[provider] = this.forced(provider);
    for (const [provider, { record }] of this.#known)
      if (isInForce(record, now)) forced[provider] = record.state;
    return {
      replicaId: this.replicaId,
      service: this.service,
      host: hostname(),
      pid: process.pid,
      startedAt: this.#startedAt,
      providers: [...this.#providers],
      forced,
      reported: Object.fromEntries(this.#reported),
      version: this.#highest,
    };
  }

  /** Hands a Redis failure to `onError` as a cleaned copy: ioredis's own error carries the command's arguments. */
  #fail(e: unknown): void {
    if (this.#closed) return;
    this.#onError(cleanRedisError(e, this.#redis));
  }
}

/** `work`, or a rejection after `ms`. */
async function bounded(ms: number, work: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${formatMillis(ms)}`)), ms);
  });
  try {
    await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function defaultReplicaId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_.:-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '') || 'replica';
  return `${host.slice(0, 100)}-${process.pid}`;
}
