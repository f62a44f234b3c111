import { isKubernetesApiError } from '../errors';

/** Cuts a text to `max` characters, marking the cut, so one long message cannot flood a summary or a table. */
export function clip(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

/** `"a, b, c and 2 more"`: the first `max` items of a list for a one-line summary. */
export function listSome(items: readonly string[], max = 3): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/** `"1 pod"`, `"3 pods"`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}

/** True when an API call failed because the object it named does not exist (HTTP 404). */
export function isNotFound(e: unknown): boolean {
  return isKubernetesApiError(e) && e.status === 404;
}

/** The API server's own words from a Kubernetes error, without the name of the call around them. */
export function apiMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/^Kubernetes .*? failed: /, '').replace(/ \([A-Za-z]+, HTTP \d+\)\.$/, '');
}

/** Most rows any table of evidence carries; the rest are counted in a note. */
export const MAX_ROWS = 50;
