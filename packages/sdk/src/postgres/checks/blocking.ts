/** Who waits for whom, as `pg_blocking_pids()` tells it. */
export type BlockingEdge = { pid: number; blockedBy: number[] };

/** A session at the head of a blocking chain, and everyone behind it. */
export type BlockingChain = {
  /** The root blocker: it blocks others and waits for nobody (or sits in a lock cycle). */
  root: number;
  /** Sessions behind it, directly or through others, in chain order. */
  blocked: number[];
  /** True when the root itself waits (a cycle the deadlock detector has not broken yet). */
  cycle: boolean;
};

/** One line of a blocking tree: `depth` 0 is the root. */
export type ChainLine = { root: number; pid: number; depth: number; blockedBy: number[] };

/**
 * Builds the blocking chains from the edges: roots first, the root that holds up the most sessions first
 * (ties: lower pid), each followed by the sessions behind it depth-first.
 */
export function blockingChains(edges: readonly BlockingEdge[]): {
  chains: BlockingChain[];
  lines: ChainLine[];
} {
  const waitsFor = new Map<number, number[]>();
  const waiters = new Map<number, number[]>();
  for (const e of edges) {
    if (!e.blockedBy.length) continue;
    waitsFor.set(
      e.pid,
      [...e.blockedBy].sort((a, b) => a - b),
    );
    for (const b of e.blockedBy) waiters.set(b, [...(waiters.get(b) ?? []), e.pid]);
  }
  for (const list of waiters.values()) list.sort((a, b) => a - b);

  const behind = (root: number): number[] => {
    const seen = new Set([root]);
    const order: number[] = [];
    const visit = (pid: number) => {
      for (const w of waiters.get(pid) ?? []) {
        if (seen.has(w)) continue;
        seen.add(w);
        order.push(w);
        visit(w);
      }
    };
    visit(root);
    return order;
  };

  const chains: BlockingChain[] = [...waiters.keys()]
    .filter((pid) => !waitsFor.has(pid))
    .map((root) => ({ root, blocked: behind(root), cycle: false }));
  // Sessions that wait but cannot be traced to a free root wait in a cycle: name its lowest pid the root.
  const reached = new Set(chains.flatMap((c) => [c.root, ...c.blocked]));
  for (const pid of [...waitsFor.keys()].sort((a, b) => a - b)) {
    if (reached.has(pid)) continue;
    const chain = { root: pid, blocked: behind(pid), cycle: true };
    chains.push(chain);
    for (const x of [chain.root, ...chain.blocked]) reached.add(x);
  }
  chains.sort((a, b) => b.blocked.length - a.blocked.length || a.root - b.root);

  const lines: ChainLine[] = [];
  for (const chain of chains) {
    const seen = new Set<number>();
    const walk = (pid: number, depth: number) => {
      if (seen.has(pid)) return;
      seen.add(pid);
      lines.push({ root: chain.root, pid, depth, blockedBy: waitsFor.get(pid) ?? [] });
      for (const w of waiters.get(pid) ?? []) walk(w, depth + 1);
    };
    walk(chain.root, 0);
  }
  return { chains, lines };
}
