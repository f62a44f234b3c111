import { describe, expect, it } from 'vitest';
import { LatencyWindow } from './latency-window';

describe('LatencyWindow', () => {
  it('is 0 with no requests', () => {
    expect(new LatencyWindow().p95(1000)).toBe(0);
  });

  it('gives the nearest-rank 95th percentile', () => {
    const w = new LatencyWindow();
    for (let i = 1; i <= 100; i++) w.record(i, 1000);
    expect(w.p95(1000)).toBe(95);
    w.record(5000, 1000);
    expect(w.p95(1000)).toBe(96);
  });

  it('forgets requests older than the window', () => {
    const w = new LatencyWindow({ windowMs: 60_000 });
    w.record(3000, 0);
    w.record(10, 30_000);
    expect(w.p95(59_999)).toBe(3000);
    expect(w.p95(60_000)).toBe(10);
    expect(w.count(90_000)).toBe(0);
    expect(w.p95(90_000)).toBe(0);
  });

  it('keeps at most maxSamples, dropping the oldest', () => {
    const w = new LatencyWindow({ maxSamples: 3 });
    w.record(9000, 1);
    w.record(1, 2);
    w.record(2, 3);
    w.record(3, 4);
    expect(w.count(5)).toBe(3);
    expect(w.p95(5)).toBe(3);
  });
});
