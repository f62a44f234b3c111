export { listSome, plural } from '../../core/wording';
/** `0.8` → `"80%"`, `2/3` → `"67%"`. */
export function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

/** Microseconds to milliseconds, to 0.001 ms. */
export function usToMs(us: number): number {
  return Math.round(us) / 1000;
}

/** Most rows any table of evidence carries; the rest are counted in the summary and data. */
export const MAX_ROWS = 50;
