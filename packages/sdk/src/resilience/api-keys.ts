import { createHash } from 'node:crypto';
import { MAX_KEY_REST_MS } from './retry-policy';

/**
 * A short, stable name for an API key that is safe to log and compare (`sha256:` and the first 12 hex digits of
 * its SHA-256): the test doubles record it instead of the key, events and health report it.
 */
export function apiKeyFingerprint(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

/** Which key to use next: its index, or how long until the first one is free again. */
export type KeyPick = { index: number; waitMs: 0 } | { index: -1; waitMs: number };

/**
 * The API keys of one provider, used round-robin; a key that got a 429 (or was refused) rests until its
 * cool-down ends. A provider without keys has one anonymous slot, so that a 429 without keys rests the provider.
 */
export class KeyRing {
  readonly keys: readonly (string | undefined)[];
  readonly fingerprints: readonly (string | undefined)[];
  readonly #coolingUntil: number[];
  #next = 0;
  // Most calls happen while no key rests: then `pick` needs no clock.
  #cooling = 0;

  constructor(keys: readonly string[] | undefined) {
    this.keys = keys && keys.length > 0 ? [...keys] : [undefined];
    this.fingerprints = this.keys.map((k) => (k === undefined ? undefined : apiKeyFingerprint(k)));
    this.#coolingUntil = this.keys.map(() => 0);
  }

  /** True while no key rests: the next `pick` is plain round-robin. */
  get idle(): boolean {
    return this.#cooling === 0;
  }

  /** The next key in round-robin order, while {@link idle} (no key rests). */
  next(): number {
    const index = this.#next;
    this.#next = (index + 1) % this.keys.length;
    return index;
  }

  /** The next key in round-robin order that is not resting; or, when all rest, the wait for the first to wake. */
  pick(): KeyPick {
    const count = this.keys.length;
    if (this.#cooling === 0) {
      const index = this.#next;
      this.#next = (index + 1) % count;
      return { index, waitMs: 0 };
    }
    const now = Date.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (let step = 0; step < count; step++) {
      const index = (this.#next + step) % count;
      const until = this.#coolingUntil[index] as number;
      if (until <= now) {
        if (until !== 0) this.#wake(index);
        this.#next = (index + 1) % count;
        return { index, waitMs: 0 };
      }
      soonest = Math.min(soonest, until);
    }
    return { index: -1, waitMs: soonest - now };
  }

  /** Rests key `index` until `now + ms`, 1 ms to 1 hour (a longer rest already in place is kept). */
  coolDown(index: number, ms: number, now: number): void {
    const until = now + Math.min(MAX_KEY_REST_MS, Math.max(1, ms));
    const current = this.#coolingUntil[index] as number;
    if (current === 0) this.#cooling++;
    if (until > current) this.#coolingUntil[index] = until;
  }

  /** How many keys rest at `now`, and when the first of them wakes. */
  cooling(now: number): { count: number; nextFreeInMs?: number } {
    let count = 0;
    let soonest = Number.POSITIVE_INFINITY;
    for (let index = 0; index < this.keys.length; index++) {
      const until = this.#coolingUntil[index] as number;
      if (until > now) {
        count++;
        soonest = Math.min(soonest, until);
      }
    }
    return count === 0 ? { count } : { count, nextFreeInMs: soonest - now };
  }

  #wake(index: number): void {
    this.#coolingUntil[index] = 0;
    this.#cooling--;
  }
}
