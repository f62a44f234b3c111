import type { Redis } from 'ioredis';
import { type Disposable, TypedEvent } from '../core/events';
import { parseStrictModeState, type StrictModeState } from './strict-mode-state';

/**
 * What a limiter knows of its service's strict mode. Limiters learn a change by polling the state key (one
 * `GET` per poll interval per Redis client and key, however many limiters share them): a change reaches every
 * process within one poll interval plus a round trip, the key's TTL ends it on time even when nobody is
 * listening, and no subscriber connection is needed. Polling was chosen over pub/sub for that last reason
 * and because a missed message cannot leave a replica lax: the next poll corrects it.
 */
export interface StrictModeView {
  /** The state as of the last poll; `null` when strict mode is off. */
  readonly state: StrictModeState | null;
  /** True once the state has been read at least once. */
  readonly known: boolean;
  /** Resolves once the state has been read (rejects with Redis' error if that read fails; the next call retries). */
  ready(): Promise<void>;
  /** Listens for changes seen by a poll after the first read. */
  onChange(listener: (state: StrictModeState | null) => void): Disposable;
  /** Stops this view; the poll stops when the last view of the key is released. */
  release(): void;
}

class SharedWatcher {
  raw: string | null | undefined;
  state: StrictModeState | null = null;
  refs = 0;
  readonly changed = new TypedEvent<StrictModeState | null>();
  #first: Promise<void> | null = null;
  #polling = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    pollMs: number,
  ) {
    this.#timer = setInterval(() => this.#poll(), pollMs);
    // A limiter must not keep its process alive.
    this.#timer.unref();
  }

  ready(): Promise<void> {
    if (this.raw !== undefined) return Promise.resolve();
    this.#first ??= this.#read().catch((e: unknown) => {
      this.#first = null;
      throw e;
    });
    return this.#first;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #poll(): void {
    if (this.#polling) return;
    this.#polling = true;
    // A failed poll keeps the last known state; the decisions themselves fail while Redis is unreachable.
    this.#read()
      .catch(() => {})
      .finally(() => {
        this.#polling = false;
      });
  }

  async #read(): Promise<void> {
    const raw = await this.redis.get(this.key);
    if (raw === this.raw) return;
    const first = this.raw === undefined;
    const before = this.state;
    this.raw = raw;
    this.state = parseStrictModeState(raw);
    // The first read is what the state was, not a change: `state` tells it once `ready()` resolves. Nor is a
    // new value that leaves the same state (no key → the off marker of a disable).
    if (!first && JSON.stringify(before) !== JSON.stringify(this.state)) this.changed.emit(this.state);
  }
}

const watchers = new WeakMap<Redis, Map<string, SharedWatcher>>();

/** A view of strict mode at `key`, shared with every other view of the same client, key and poll interval. */
export function watchStrictMode(redis: Redis, key: string, pollMs: number): StrictModeView {
  let byKey = watchers.get(redis);
  if (!byKey) {
    byKey = new Map();
    watchers.set(redis, byKey);
  }
  const id = `${pollMs}\u0000${key}`;
  let watcher = byKey.get(id);
  if (!watcher) {
    watcher = new SharedWatcher(redis, key, pollMs);
    byKey.set(id, watcher);
  }
  watcher.refs++;
  const shared = watcher;
  const owned = new Set<Disposable>();
  let released = false;
  return {
    get state() {
      return shared.state;
    },
    get known() {
      return shared.raw !== undefined;
    },
    ready: () => shared.ready(),
    onChange(listener) {
      const subscription = shared.changed.on(listener);
      owned.add(subscription);
      return subscription;
    },
    release() {
      if (released) return;
      released = true;
      for (const subscription of owned) subscription.dispose();
      if (--shared.refs === 0) {
        shared.stop();
        byKey.delete(id);
      }
    },
  };
}
