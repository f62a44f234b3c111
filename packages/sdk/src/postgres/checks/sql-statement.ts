/**
 * Why a text is not exactly one SQL statement, or `null` when it is. It lexes PostgreSQL's syntax far enough
 * to find the `;` that separate statements: a `;` inside a string (`'…'`, `E'…'`, `$tag$…$tag$`), a quoted
 * identifier or a comment does not count, and trailing `;` (with only spaces and comments after) are fine.
 */
export function statementProblem(sql: string): string | null {
  let i = 0;
  let sawCode = false;
  let endedAt: number | null = null;
  const n = sql.length;
  const isIdent = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && next === '-') {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? n : eol + 1;
      continue;
    }
    if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) return 'unterminated /* comment';
      continue;
    }
    if (c === ';') {
      endedAt ??= i;
      i++;
      continue;
    }
    // Anything else is code: after a statement's `;` it starts a second statement.
    if (endedAt !== null) {
      return `more than one statement (a ";" at position ${endedAt + 1} is followed by more SQL); give a single statement`;
    }
    sawCode = true;
    if (c === "'") {
      const escapes = (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !isIdent(sql[i - 2]);
      const end = endOfQuoted(sql, i, "'", escapes);
      if (end < 0) return 'unterminated string literal';
      i = end;
      continue;
    }
    if (c === '"') {
      const end = endOfQuoted(sql, i, '"', false);
      if (end < 0) return 'unterminated quoted identifier';
      i = end;
      continue;
    }
    if (c === '$' && !isIdent(sql[i - 1])) {
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        if (close < 0) return `unterminated dollar-quoted string ${tag[0]}`;
        i = close + tag[0].length;
        continue;
      }
    }
    i++;
  }
  return sawCode ? null : 'no SQL statement (only spaces or comments)';
}

/** The index after the closing quote of a quoted run starting at `start`, or -1 when it does not close. */
function endOfQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** The first keyword of a statement, upper-cased, after leading spaces, comments and parentheses. */
export function firstKeyword(sql: string): string {
  const stripped = sql.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|\()*/, '');
  return (/^[A-Za-z_]+/.exec(stripped)?.[0] ?? '').toUpperCase();
}
