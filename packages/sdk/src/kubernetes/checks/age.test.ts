import { describe, expect, it } from 'vitest';
import { formatAge, isoOf, timeOf } from './age';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms);
const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe('formatAge', () => {
  it.each([
    [0, '0s'],
    [45 * S, '45s'],
    [119 * S, '119s'],
    [2 * M, '2m'],
    [3 * M + 20 * S, '3m20s'],
    [25 * M + 59 * S, '25m'],
    [179 * M, '179m'],
    [3 * H, '3h'],
    [5 * H + 12 * M, '5h12m'],
    [30 * H, '30h'],
    [3 * D + 4 * H, '3d4h'],
    [8 * D, '8d'],
    [400 * D, '400d'],
    [2 * 365 * D + 30 * D, '2y30d'],
    [9 * 365 * D, '9y'],
  ])('prints %i ms like kubectl get: %s', (ms, text) => {
    expect(formatAge(ago(ms), NOW)).toBe(text);
  });

  it('accepts strings, and says when there is no usable time', () => {
    expect(formatAge('2025-06-01T11:59:00Z', NOW)).toBe('60s');
    expect(formatAge(undefined, NOW)).toBe('<unknown>');
    expect(formatAge('not a time', NOW)).toBe('<unknown>');
    expect(formatAge(new Date(NOW + 10 * S), NOW)).toBe('<invalid>');
  });
});

describe('timeOf and isoOf', () => {
  it('read Dates and RFC 3339 strings, null for nothing', () => {
    expect(timeOf(new Date(NOW))).toBe(NOW);
    expect(timeOf('2025-06-01T12:00:00Z')).toBe(NOW);
    expect(timeOf(null)).toBeUndefined();
    expect(isoOf(new Date(NOW))).toBe('2025-06-01T12:00:00.000Z');
    expect(isoOf('')).toBeNull();
  });
});
