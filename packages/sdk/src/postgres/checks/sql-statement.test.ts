import { describe, expect, it } from 'vitest';
import { firstKeyword, statementProblem } from './sql-statement';

describe('statementProblem', () => {
  it.each([
    'SELECT 1',
    'SELECT 1;',
    'SELECT 1 ;  -- done\n',
    'SELECT 1;; /* trailing */ ;',
    "SELECT ';' AS semi",
    "SELECT 'it''s; fine'",
    "SELECT E'a\\'; b'",
    'SELECT 1 AS "a;b"',
    'SELECT $$;$$, $fn$ ; $fn$',
    'SELECT $1::int, $2',
    'SELECT 1 -- ; not a statement\n',
    'SELECT /* ; /* nested ; */ still comment ; */ 1',
  ])('accepts one statement: %s', (sql) => {
    expect(statementProblem(sql)).toBeNull();
  });

  it.each([
    ['SELECT 1; SELECT 2', /more than one statement \(a ";" at position 9/],
    ["UPDATE t SET x = 1; SELECT 'x'", /more than one statement/],
    ['SELECT 1;\n-- c\nDELETE FROM t', /more than one statement/],
    ["SELECT 'open", /unterminated string literal/],
    ['SELECT "open', /unterminated quoted identifier/],
    ['SELECT $x$ open', /unterminated dollar-quoted string \$x\$/],
    ['SELECT /* open', /unterminated \/\* comment/],
    ['  -- nothing\n', /no SQL statement/],
  ])('refuses %s', (sql, message) => {
    expect(statementProblem(sql)).toMatch(message);
  });

  it('does not read a backslash as an escape in a standard string', () => {
    // 'a\' is a whole string in standard SQL; what follows the ; is a second statement.
    expect(statementProblem("SELECT 'a\\'; SELECT 2")).toMatch(/more than one statement/);
  });
});

describe('firstKeyword', () => {
  it('skips spaces, comments and parentheses', () => {
    expect(firstKeyword('  -- c\n /* d */ (select 1)')).toBe('SELECT');
    expect(firstKeyword('begin')).toBe('BEGIN');
    expect(firstKeyword('WITH x AS (SELECT 1) SELECT * FROM x')).toBe('WITH');
  });
});
