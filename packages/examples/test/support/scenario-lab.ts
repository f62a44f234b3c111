/**
 * A lab with traffic for the scenario tests: every scenario's incident must show in the lab's health checks
 * and metrics, and its end must show too. The windows are seconds instead of minutes so both fit in a test.
 */
import { type Activity, startActivity } from '../../src/lab/activity';
import { type HealthCheck, type LabHealthOptions, labHealth } from '../../src/lab/lab-health';
import { createLabMetrics } from '../../src/lab/lab-metrics';
import type { LabParts } from '../../src/lab/lab-parts';
import { sample, startLabPartsFixture, until } from '../../src/lab/lab-parts.fixture';

const WINDOWS = { confidenceWindowMinutes: 0.05, p95WindowMinutes: 0.05 };
const HEALTH: LabHealthOptions = { ...WINDOWS };

export interface ScenarioLab {
  parts: LabParts;
  /** The lab's health checks that fail now. */
  failing(): Promise<HealthCheck[]>;
  /** Waits until every health check passes. */
  healthy(): Promise<void>;
  /** Waits until the check `name` fails with a detail matching `detail`. */
  failingCheck(name: string, detail?: RegExp): Promise<void>;
  /** One series of the lab's metrics (`name{labels}`), or undefined when absent. */
  metric(series: string): Promise<number | undefined>;
  /** Stops the traffic, then the lab. */
  close(): Promise<void>;
}

/** Starts a lab (its own database and Redis database), its traffic, and waits until it is healthy. */
export async function startScenarioLab(): Promise<ScenarioLab> {
  const lab = await startLabPartsFixture();
  let activity: Activity | undefined;
  const close = async () => {
    await activity?.stop();
    await lab.close();
  };
  try {
    activity = startActivity(lab.parts, { tickMs: 200, executionRealMs: [200, 400], trafficPerSecond: 4 });
    const metrics = createLabMetrics(lab.parts, WINDOWS);
    const failing = async () => (await labHealth(lab.parts, HEALTH)).checks.filter((c) => !c.ok);
    const scenarioLab: ScenarioLab = {
      parts: lab.parts,
      failing,
      healthy: () =>
        until('a healthy lab', async () => {
          const bad = await failing();
          return bad.length === 0 || bad.map((c) => `${c.name}: ${c.detail}`).join('; ');
        }),
      failingCheck: (name, detail = /./) =>
        until(`the "${name}" check to fail with ${detail}`, async () =>
          (await failing()).some((c) => c.name === name && detail.test(c.detail)),
        ),
      metric: async (series) => sample(await metrics.metrics(), series),
      close,
    };
    await scenarioLab.healthy();
    return scenarioLab;
  } catch (e) {
    await close();
    throw e;
  }
}
