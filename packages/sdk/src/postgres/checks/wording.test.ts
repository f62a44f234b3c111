import { describe, expect, it } from 'vitest';
import { Size, toBytes } from './options';
import { formatBytes, formatDuration, percent, queryText } from './wording';

describe('formatBytes', () => {
  it.each([
    [0, '0 bytes'],
    [8192, '8192 bytes'],
    [12 * 1024, '12 kB'],
    [1.5 * 1024 ** 2, '1.5 MB'],
    [250 * 1024 ** 3, '250 GB'],
  ])('prints %i like pg_size_pretty: %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe('formatDuration', () => {
  it.each([
    [850, '850ms'],
    [12_500, '12.5s'],
    [6 * 60_000 + 12_000, '6m12s'],
    [60_000, '1m00s'],
    [3 * 3_600_000 + 5 * 60_000, '3h05m'],
    [2 * 86_400_000 + 4 * 3_600_000, '2d4h'],
  ])('prints %i ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('prints shares as percentages', () => {
    expect(percent(14 / 17)).toBe('82%');
    expect(percent(0.082)).toBe('8.2%');
  });
});

describe('queryText', () => {
  it('keeps one line, cuts at 500 characters, and hides PASSWORD literals', () => {
    expect(queryText('SELECT 1\n  FROM   t')).toBe('SELECT 1 FROM t');
    expect(queryText(`SELECT '${'x'.repeat(600)}'`)?.length).toBe(500);
    expect(queryText("ALTER ROLE app WITH LOGIN PASSWORD 'hunter2''s' VALID UNTIL 'infinity'")).toBe(
      "ALTER ROLE app WITH LOGIN PASSWORD '[REDACTED]' VALID UNTIL 'infinity'",
    );
    expect(queryText(null)).toBeNull();
  });

  it.each([
    ["CREATE ROLE a PASSWORD 'hunter2'", "CREATE ROLE a PASSWORD '[REDACTED]'"],
    ["CREATE ROLE a PASSWORD'hunter2' LOGIN", "CREATE ROLE a PASSWORD'[REDACTED]' LOGIN"],
    ['CREATE ROLE a PASSWORD $$hunter2$$ LOGIN', "CREATE ROLE a PASSWORD '[REDACTED]' LOGIN"],
    ['ALTER ROLE a PASSWORD $pw$hun$$ter2$pw$', "ALTER ROLE a PASSWORD '[REDACTED]'"],
    ["ALTER USER a WITH ENCRYPTED PASSWORD 'hunter2'", "ALTER USER a WITH ENCRYPTED PASSWORD '[REDACTED]'"],
    [
      "alter role a password E'hun\\'ter2' valid until 'x'",
      "alter role a password '[REDACTED]' valid until 'x'",
    ],
    ["ALTER ROLE a PASSWORD U&'hunter2'", "ALTER ROLE a PASSWORD '[REDACTED]'"],
    ["ALTER ROLE a PASSWORD /* new */ 'hunter2'", "ALTER ROLE a PASSWORD /* new */ '[REDACTED]'"],
    // Cut inside the literal (pg_stat_activity keeps 1024 bytes, checks read a prefix): redacted to the end.
    ["CREATE ROLE a PASSWORD 'hunter2 and more", "CREATE ROLE a PASSWORD '[REDACTED]'"],
    ['CREATE ROLE a PASSWORD $$hunter2', "CREATE ROLE a PASSWORD '[REDACTED]'"],
    ['CREATE ROLE a PASSWORD $t$hunter2$', "CREATE ROLE a PASSWORD '[REDACTED]'"],
    ["CREATE ROLE a PASSWORD E'hunter2\\'", "CREATE ROLE a PASSWORD '[REDACTED]'"],
    // Two clauses, and nothing to hide.
    [
      "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password 'x1'); ALTER ROLE b PASSWORD 'x2'",
      "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password '[REDACTED]'); ALTER ROLE b PASSWORD '[REDACTED]'",
    ],
    ['ALTER ROLE a PASSWORD NULL', 'ALTER ROLE a PASSWORD NULL'],
    ['ALTER ROLE a PASSWORD $1', 'ALTER ROLE a PASSWORD $1'],
    ["SELECT password_hash FROM users WHERE name = 'x'", "SELECT password_hash FROM users WHERE name = 'x'"],
  ])('scrubs %s', (query, shown) => {
    expect(queryText(query)).toBe(shown);
  });

  it('scrubs before it cuts: a password near the cut never shows in part', () => {
    const query = `CREATE ROLE a PASSWORD '${'s3cret'.repeat(20)}' LOGIN`;
    for (const max of [20, 26, 30, 40, 60]) {
      const shown = queryText(query, max) ?? '';
      expect(shown.length).toBeLessThanOrEqual(max);
      expect(shown).not.toContain('s3c');
    }
    expect(queryText(query, 60)).toBe("CREATE ROLE a PASSWORD '[REDACTED]' LOGIN");
  });
});

describe('Size', () => {
  it('reads bytes and PostgreSQL units (1024-based)', () => {
    expect(toBytes(Size.parse('1MB'))).toBe(1024 * 1024);
    expect(toBytes(Size.parse('512kB'))).toBe(512 * 1024);
    expect(toBytes(Size.parse('1.5 GB'))).toBe(1.5 * 1024 ** 3);
    expect(toBytes(Size.parse(4096))).toBe(4096);
    expect(Size.safeParse('1 parsec').success).toBe(false);
  });
});
