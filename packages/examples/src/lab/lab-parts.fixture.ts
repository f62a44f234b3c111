/**
 * Test-only: a lab for the co-located tests of the lab's behaviour (activity, metrics, health, scenarios).
 * A thin layer over the integration tests' `startTestLab`, with a backend quick to trip and probe its
 * breaker and a simulated kubelet quick to restart crashed containers, so each test sees effects in seconds.
 */
import { startTestLab, type TestLab } from '../../test/support/test-lab';
import type { LabParts } from './lab-parts';

export interface LabPartsFixture {
  parts: LabParts;
  /** The database's name (`aiwebtest_lab_t_<hex>`). */
  database: string;
  /** Stops everything, drops the database and gives its Redis database back (emptied). */
  close(): Promise<void>;
}

export async function startLabPartsFixture(): Promise<LabPartsFixture> {
  const lab: TestLab = await startTestLab({
    podStartDelay: '0s',
    podReadinessDelay: '0s',
    podCrashBackoff: '50ms',
    metricsInterval: '500ms',
    backend: {
      breaker: { volumeThreshold: 2, resetTimeout: '1s' },
      retry: { maxAttempts: 1, maxRetryAfter: '100ms', baseDelay: 0 },
      generateTimeoutMs: 20_000,
    },
  });
  return { parts: lab, database: lab.database, close: () => lab.close() };
}

/** Polls `condition` every 100 ms until it holds; fails naming `what` (and the last note) after `timeoutMs`. */
export async function until(
  what: string,
  condition: () => Promise<boolean | string> | boolean | string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let note = '';
  for (;;) {
    const result = await condition();
    if (result === true) return;
    if (typeof result === 'string') note = result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${note ? `: ${note}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The value of `series` (`name` or `name{labels}` exactly as exposed) in Prometheus text. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
