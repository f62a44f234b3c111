export { listSome, plural } from '../../core/wording';
/** Most rows any table of evidence carries; the rest are counted in a note. */
export const MAX_ROWS = 50;

/** Longest query text kept in data and evidence (PostgreSQL keeps 1024 bytes by default anyway). */
export const MAX_QUERY_TEXT = 500;

/** Cuts a text to `max` characters on one line, marking the cut, so one long text cannot flood a summary. */
export function clip(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

/**
 * A query text as evidence shows it: one line, at most {@link MAX_QUERY_TEXT} characters, and without the
 * literal of a `PASSWORD` clause (`CREATE ROLE … PASSWORD 'x'` shows up in `pg_stat_activity` verbatim).
 * Scrubbed before it is cut, so the cut never leaves part of a password behind. See {@link scrubPasswords}.
 */
export function queryText(text: string | null | undefined, max = MAX_QUERY_TEXT): string | null {
  if (text === null || text === undefined) return null;
  return clip(scrubPasswords(text), max);
}

/** What stands in for a password literal. */
export const REDACTED_LITERAL = "'[REDACTED]'";

// The keyword, then whitespace or comments before the literal (`PASSWORD'x'` has none).
const PASSWORD_KEYWORD = /\bpassword\b(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/gi;
// `$$`, `$tag$`: a dollar quote's opening tag (a tag is an identifier without `$`).
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/**
 * Replaces the literal after every `PASSWORD` keyword with `'[REDACTED]'`: `PASSWORD 'x'`, `PASSWORD'x'`,
 * `ENCRYPTED PASSWORD 'x'`, `E'x'` (backslash escapes), `U&'x'`, `$$x$$` and `$tag$x$tag$`. A literal with no
 * end (the text was cut inside it, as `pg_stat_activity` and `left()` do) is redacted to the end of the text.
 * Text that only looks like one (`password` inside a string) may be redacted too: showing less is the safe side.
 */
export function scrubPasswords(text: string): string {
  let out = '';
  let from = 0;
  PASSWORD_KEYWORD.lastIndex = 0;
  for (let m = PASSWORD_KEYWORD.exec(text); m; m = PASSWORD_KEYWORD.exec(text)) {
    const start = m.index + m[0].length;
    const end = literalEnd(text, start);
    if (end === null) continue; // `PASSWORD NULL`, `PASSWORD $1`: no literal to hide
    out += `${text.slice(from, start)}${REDACTED_LITERAL}`;
    from = end;
    PASSWORD_KEYWORD.lastIndex = end;
    if (end >= text.length) break;
  }
  return out + text.slice(from);
}

/** Where the string literal starting at `at` ends (just past it; the text's length when unterminated), or `null` when none starts there. */
function literalEnd(text: string, at: number): number | null {
  const rest = text.slice(at);
  const dollar = DOLLAR_TAG.exec(rest);
  if (dollar) {
    const close = text.indexOf(dollar[0], at + dollar[0].length);
    return close < 0 ? text.length : close + dollar[0].length;
  }
  const prefix = /^(?:[eE](?=')|[uU]&(?=')|(?='))/.exec(rest);
  if (!prefix) return null;
  // E'…' takes backslash escapes (\' does not end it); every literal takes '' for a quote.
  const escapes = /^[eE]/.test(prefix[0]);
  for (let i = at + prefix[0].length + 1; i < text.length; i++) {
    const c = text[i];
    if (escapes && c === '\\') i++;
    else if (c === "'") {
      if (text[i + 1] !== "'") return i + 1;
      i++;
    }
  }
  return text.length;
}

/** A byte count the way `pg_size_pretty` prints it: `8192 bytes`, `12 kB`, `1.5 MB`, `20 GB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 10 * 1024) return `${bytes} bytes`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? Math.round(value) : +value.toFixed(1)} ${units[unit]}`;
}

/** A duration for people: `850ms`, `12.5s`, `6m12s`, `3h05m`, `2d4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1_000;
  if (s < 60) return `${+s.toFixed(1)}s`;
  const total = Math.floor(s);
  if (total < 3_600) return `${Math.floor(total / 60)}m${pad(total % 60)}s`;
  if (total < 172_800) return `${Math.floor(total / 3_600)}h${pad(Math.floor(total / 60) % 60)}m`;
  return `${Math.floor(total / 86_400)}d${Math.floor(total / 3_600) % 24}h`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `82%` of a share; one decimal below 10 %. */
export function percent(share: number): string {
  const p = share * 100;
  return `${p < 10 ? +p.toFixed(1) : Math.round(p)}%`;
}

/** An RFC 3339 string of a timestamp from `pg` (a `Date`), or `null`, for check data (which must be JSON). */
export function isoOf(t: Date | string | null | undefined): string | null {
  if (t === null || t === undefined) return null;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** `"(12 more rows not shown)"` when a list was cut to {@link MAX_ROWS}; `null` otherwise. */
export function hiddenNote(total: number, shown: number): string | null {
  return total > shown ? `(${total - shown} more rows not shown)` : null;
}

/** Who a session is, in a summary: `pid 4711 (backend@worker)`. */
export function whoIs(s: { pid: number; user: string | null; application: string | null }): string {
  const app = s.application ? `@${s.application}` : '';
  return s.user || app ? `pid ${s.pid} (${s.user ?? '?'}${app})` : `pid ${s.pid}`;
}

/** The message of a thrown value, without our own "PostgreSQL <statement> failed:" prefix. */
export function errorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/^PostgreSQL .*? failed: /, '');
}

/**
 * True for a statement that gave up waiting for a lock (`lock_timeout`, SQLSTATE 55P03): a table the
 * incident holds locked. Checks report that as `unknown`, naming the lock, rather than failing the run.
 */
export function isLockWait(e: unknown): boolean {
  return (e as { sqlstate?: unknown } | null)?.sqlstate === '55P03';
}

/** The summary of a check that could not read because of a lock. */
export function lockWaitSummary(what: string, e: unknown): string {
  return lockWaitText(what, errorText(e));
}

/** {@link lockWaitSummary} from the error's words, as a replayable check's observation keeps them. */
export function lockWaitText(what: string, error: string): string {
  return `${what}: not read, a lock was held longer than the lock timeout (${error}); another session holds a lock on what it reads — see the active queries`;
}
