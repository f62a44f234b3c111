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
