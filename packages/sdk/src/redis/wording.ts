export { listSome, plural } from '../core/wording';
/** Most rows any table of evidence carries; the rest are counted in a note. */
export const MAX_ROWS = 50;

/** `82%` of a share; one decimal below 10 %. */
export function percent(share: number): string {
  const p = share * 100;
  return `${p < 10 ? +p.toFixed(1) : Math.round(p)}%`;
}

/** A byte count with 1024-based units, as Redis's `*_human` fields print them: `512B`, `1.5K`, `20.3M`, `2G`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  const units = ['K', 'M', 'G', 'T', 'P'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? Math.round(value) : +value.toFixed(1)}${units[unit]}`;
}

/** A latency: `0.21ms`, `12.5ms`, `1.2s`. */
export function formatLatency(ms: number): string {
  if (ms < 1) return `${+ms.toFixed(2)}ms`;
  if (ms < 1_000) return `${+ms.toFixed(1)}ms`;
  return `${+(ms / 1_000).toFixed(1)}s`;
}

/** The message of a thrown value, without our own "Redis <command> on <server> failed:" prefix. */
export function errorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/^Redis .*? failed: /, '');
}

/** Rounds to one decimal (milliseconds, ratios in data). */
export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Rounds to three decimals (shares). */
export function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * A key count as a plan's `before` value: its order of magnitude (`"100 to 999 keys"`), not the exact number.
 * The engine voids an approval when a fresh plan's `before` differs from the approved one: on a live server an
 * exact count changes every second, its magnitude rarely. The exact count is in the summary and the params.
 */
export function magnitude(count: number): string {
  if (count <= 0) return 'no keys';
  const low = 10 ** (String(Math.floor(count)).length - 1);
  return `${low.toLocaleString('en-US')} to ${(low * 10 - 1).toLocaleString('en-US')} keys`;
}
