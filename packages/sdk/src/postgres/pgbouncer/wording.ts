/** `"a, b, c and 2 more"`: the first `max` items of a list for a one-line summary. */
export function listSome(items: readonly string[], max = 3): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/** `"1 client"`, `"3 clients"`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

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
