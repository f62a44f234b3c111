import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropLabDatabase } from '../../src/lab/database/lab-database';
import { IncidentDrill } from '../../src/lab/incident-drill';
import { type LabUp, labUp } from '../../src/lab/lab-up';
import { leaseRedisDb } from './redis-db';

/** `aiwebtest-lab up` in full (lab, runbook service, Alertmanager, Prometheus) on free ports, for drills. */
export interface DrillLab {
  up: LabUp;
  drill: IncidentDrill;
  close(): Promise<void>;
}

export async function startDrillLab(): Promise<DrillLab> {
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
