import { Duration, toMillis } from '../core/duration';

/**
 * A {@link Duration} from `minMs` to `maxMs` inclusive. (zod runs a refinement even when the union before it
 * failed, so the bound is checked on what parses and a malformed value gets only the format message.)
 */
export function durationBetween(minMs: number, maxMs: number, message: string) {
  return Duration.refine((d) => {
    const ms = millisOrNaN(d);
    return Number.isNaN(ms) || (ms >= minMs && ms <= maxMs);
  }, message);
}

function millisOrNaN(d: unknown): number {
  try {
    return toMillis(d as Duration);
  } catch {
    return Number.NaN;
  }
}
