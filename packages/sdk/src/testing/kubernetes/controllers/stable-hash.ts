/**
 * Stable pseudo-random numbers from a string (FNV-1a), so that simulated ids, addresses and usage figures
 * are the same on every run and for every test, which keeps assertions and screenshots reproducible.
 */
export function stableHash(seed: string): number {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** `length` lowercase hex digits derived from `seed`. */
export function stableHex(seed: string, length: number): string {
  let out = '';
  for (let round = 0; out.length < length; round++) {
    out += stableHash(`${seed}:${round}`).toString(16).padStart(8, '0');
  }
  return out.slice(0, length);
}

/** `8-4-4-4-12` form of {@link stableHex}, for UUID-shaped fields. */
export function stableUuid(seed: string): string {
  return stableHex(seed, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
}
