import { describe, expect, it } from 'vitest';
import { blockingChains } from './blocking';

describe('blockingChains', () => {
  it('puts the root blocker first and its waiters behind it, depth-first', () => {
    // 10 holds a row lock; 20 waits for it; 30 waits for 20 (a lock queue); 40 waits for 10 as well.
    const { chains, lines } = blockingChains([
      { pid: 30, blockedBy: [20] },
      { pid: 20, blockedBy: [10] },
      { pid: 40, blockedBy: [10] },
      { pid: 10, blockedBy: [] },
    ]);
    expect(chains).toEqual([{ root: 10, blocked: [20, 30, 40], cycle: false }]);
    expect(lines.map((l) => [l.pid, l.depth])).toEqual([
      [10, 0],
      [20, 1],
      [30, 2],
      [40, 1],
    ]);
  });

  it('orders several chains by how many sessions they hold up', () => {
    const { chains } = blockingChains([
      { pid: 2, blockedBy: [1] },
      { pid: 6, blockedBy: [5] },
      { pid: 7, blockedBy: [5] },
    ]);
    expect(chains.map((c) => [c.root, c.blocked])).toEqual([
      [5, [6, 7]],
      [1, [2]],
    ]);
  });

  it('a session blocked by two roots appears under both', () => {
    const { chains } = blockingChains([{ pid: 3, blockedBy: [1, 2] }]);
    expect(chains.map((c) => [c.root, c.blocked])).toEqual([
      [1, [3]],
      [2, [3]],
    ]);
  });

  it('names the lowest pid of a lock cycle its root, and says it is a cycle', () => {
    const { chains, lines } = blockingChains([
      { pid: 8, blockedBy: [9] },
      { pid: 9, blockedBy: [8] },
    ]);
    expect(chains).toEqual([{ root: 8, blocked: [9], cycle: true }]);
    expect(lines.map((l) => l.pid)).toEqual([8, 9]);
  });

  it('has no chains when nobody waits', () => {
    expect(blockingChains([{ pid: 1, blockedBy: [] }])).toEqual({ chains: [], lines: [] });
  });
});
