/**
 * Polls `probe` until it holds; fails naming `what` after `timeoutMs`. The lab's pieces (simulated kubelet,
 * backend breaker, PgBouncer) change state on their own clocks, so tests wait for the state, not for a time.
 */
export async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
