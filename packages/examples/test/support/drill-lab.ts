import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { dropLabDatabase } from '../../src/lab/database/lab-database';
import { type DrillResult, IncidentDrill } from '../../src/lab/incident-drill';
import { type LabUp, labUp } from '../../src/lab/lab-up';
import { leaseRedisDb } from './redis-db';

/** `aiwebtest-lab up` in full (lab, runbook service, Alertmanager, Prometheus) on free ports, for drills. */
export interface DrillLab {
  up: LabUp;
  drill: IncidentDrill;
  close(): Promise<void>;
}

/** The summary of a drill's finding for `step` ('' when the run has none). */
export function findingSummary(r: DrillResult, step: string): string {
  return r.run.findings.find((f) => f.step === step)?.summary ?? '';
}

/**
 * One drill lab for the whole test file: started before its tests, stopped after them. Returns a getter,
 * since the lab exists only once `beforeAll` has run.
 */
export function drillLabForFile(options: DrillLabOptions = {}): () => DrillLab {
  let lab: DrillLab | undefined;
  beforeAll(async () => {
    lab = await startDrillLab(options);
  }, 180_000);
  afterAll(async () => {
    await lab?.close();
  });
  return () => {
    if (!lab) throw new Error('the drill lab is not started (used outside a test?)');
    return lab;
  };
}

/** How a drill lab differs from the default. */
export interface DrillLabOptions {
  /** The lab's own restorable PostgreSQL and Redis (`total-failure`); off by default: it costs start time. */
  disasterRecovery?: boolean;
}

export async function startDrillLab(options: DrillLabOptions = {}): Promise<DrillLab> {
  const dir = await mkdtemp(join(tmpdir(), 'aiwebtest-drill-'));
  const database = `aiwebtest_lab_t_${Math.random().toString(16).slice(2, 10)}`;
  const redis = await leaseRedisDb();
  const cleanUp = async () => {
    await dropLabDatabase({ adminUrl: 'postgres://postgres@127.0.0.1:5432/postgres', database }).catch(
      () => {},
    );
    await redis.release();
    await rm(dir, { recursive: true, force: true });
  };
  let up: LabUp;
  try {
    up = await labUp({
      dir,
      database,
      resetDatabase: true,
      redisUrl: redis.url,
      controlPort: 0,
      servicePort: 0,
      prometheusPort: 0,
      alertmanagerPort: 0,
      disasterRecovery: options.disasterRecovery ?? false,
    });
  } catch (e) {
    await cleanUp();
    throw e;
  }
  return {
    up,
    drill: await IncidentDrill.on(up),
    close: async () => {
      await up.stop();
      await cleanUp();
    },
  };
}
