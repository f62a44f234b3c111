import { isKubernetesApiError } from '../errors';

export { listSome, plural } from '../../core/wording';

/** Cuts a text to `max` characters, marking the cut, so one long message cannot flood a summary or a table. */
export function clip(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
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
