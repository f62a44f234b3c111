/** A Kubernetes timestamp as the client hands it over: a `Date` once deserialized, a string in raw objects. */
export type Timestamp = Date | string | undefined | null;

/** Milliseconds since the epoch of a timestamp; `undefined` when it is missing or unreadable. */
export function timeOf(t: Timestamp): number | undefined {
  if (t === undefined || t === null || t === '') return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** An RFC 3339 string of a timestamp, or `null`, for check data (which must be JSON). */
export function isoOf(t: Timestamp): string | null {
  const ms = timeOf(t);
  return ms === undefined ? null : new Date(ms).toISOString();
}

/**
 * An age the way `kubectl get` prints it (`45s`, `3m20s`, `25m`, `5h12m`, `3d4h`, `2y30d`): precise when
 * recent, coarser as it grows. `<unknown>` when there is no timestamp.
 */
export function formatAge(since: Timestamp, now: number = Date.now()): string {
  const start = timeOf(since);
  if (start === undefined) return '<unknown>';
  const seconds = Math.floor((now - start) / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return withRemainder(minutes, 'm', seconds % 60, 's');
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return withRemainder(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 8) return withRemainder(days, 'd', hours % 24, 'h');
  if (days < 730) return `${days}d`;
  const years = Math.floor(days / 365);
  if (years < 8) return withRemainder(years, 'y', days % 365, 'd');
  return `${years}y`;
}

function withRemainder(whole: number, unit: string, rest: number, restUnit: string): string {
  return rest === 0 ? `${whole}${unit}` : `${whole}${unit}${rest}${restUnit}`;
}
