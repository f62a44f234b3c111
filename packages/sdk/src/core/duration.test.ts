import { describe, expect, it } from 'vitest';
import { Duration, formatMillis, toMillis } from './duration';

describe('durations', () => {
  it('accepts milliseconds and unit strings', () => {
    expect(toMillis(250)).toBe(250);
    expect(toMillis('500ms')).toBe(500);
    expect(toMillis('30s')).toBe(30_000);
    expect(toMillis('1.5m')).toBe(90_000);
    expect(toMillis('1h')).toBe(3_600_000);
    expect(toMillis('2d')).toBe(172_800_000);
  });
  it('rejects nonsense with the value named', () => {
    expect(() => toMillis('soon')).toThrow(/Invalid duration "soon"/);
    expect(() => toMillis(-1)).toThrow(/non-negative/);
    const parsed = Duration.safeParse('5 minutes');
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.message ?? '').toMatch(/expected a duration/);
  });
  it('formats for messages', () => {
    expect(formatMillis(900)).toBe('900ms');
    expect(formatMillis(1_500)).toBe('1.5s');
    expect(formatMillis(3_600_000)).toBe('1h');
  });
});
