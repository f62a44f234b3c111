import type { RunCursor } from '../store/run-store';

// A cursor is opaque to clients: base64url of "<createdAt ISO>|<run id>" of the last run of a page. The
// store pages newest first by (created_at, id), so the pair is a stable position even while runs are added.

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The cursor that continues a newest-first listing after `run`. */
export function encodeRunCursor(run: { createdAt: Date; id: string }): string {
  return Buffer.from(`${run.createdAt.toISOString()}|${run.id}`, 'utf8').toString('base64url');
}

/** The position a cursor from {@link encodeRunCursor} names; `undefined` when it is not one. */
export function decodeRunCursor(cursor: string): RunCursor | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const bar = text.indexOf('|');
  if (bar < 0) return undefined;
  const iso = text.slice(0, bar);
  const id = text.slice(bar + 1);
  if (!ISO.test(iso) || id.length === 0 || id.length > 200) return undefined;
  const createdAt = new Date(iso);
  if (Number.isNaN(createdAt.getTime())) return undefined;
  return { createdAt, id };
}
