import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAiWebTest, readEnvironment } from '../../src/aiwebtest/environment';
import { pgUp } from '../../src/lab/database/database-metrics';
import { dropLabDatabase } from '../../src/lab/database/lab-database';
import { AGENTS } from '../../src/lab/platform/manifests';
import { type RunningLab, startLab } from '../../src/lab/start-lab';
import { applyAction } from '../support/apply-action';

// The lab as the pack sees it: lab.json describes it, and what a runbook's step does to the simulated
// cluster reaches the real process behind the workload.
const database = `aiwebtest_lab_t_${Math.random().toString(16).slice(2, 10)}`;
const adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
let dir: string;
let lab: RunningLab;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-'));
  lab = await startLab({ dir, database, resetDatabase: true, redisUrl: 'redis://127.0.0.1:6379/13' });
}, 90_000);
afterAll(async () => {
  await lab?.close();
  await dropLabDatabase({ adminUrl, database });
  await rm(dir, { recursive: true, force: true });
});

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('startLab', () => {
  it('writes lab.json, which the pack reads as its environment', async () => {
    const written = JSON.parse(await readFile(join(dir, 'lab.json'), 'utf8'));
    expect(written).toEqual(lab.env);
    expect(readEnvironment({ AIWEBTEST_LAB_DIR: dir })).toEqual(lab.env);
    // A variable that is set wins over the file.
    expect(readEnvironment({ AIWEBTEST_LAB_DIR: dir, AIWEBTEST_NAMESPACE: 'other' }).namespace).toBe('other');
    // A bad value is named with its variable, and a password in a URL is refused without being repeated.
    expect(() =>
      readEnvironment({ AIWEBTEST_LAB_DIR: dir, PROMETHEUS_URL: 'http://admin:s3cret@prometheus:9090' }),
    ).toThrow(/prometheusUrl \(PROMETHEUS_URL\): credentials in the URL are not accepted/);
    expect(() =>
      readEnvironment({ AIWEBTEST_LAB_DIR: dir, PROMETHEUS_URL: 'http://admin:s3cret@prometheus:9090' }),
    ).not.toThrow(/s3cret/);
  });

  it('runs the platform: every workload ready, the backend healthy through PgBouncer', async () => {
    const { items } = lab.simulator.store.list(DEPLOYMENTS, lab.namespace);
    expect(items.map((d) => d.metadata.name)).toEqual(
      expect.arrayContaining([...AGENTS, 'backend', 'pgbouncer']),
    );
    for (const d of items) {
      const spec = d.spec as { replicas: number };
      const status = d.status as { readyReplicas?: number };
      expect(status.readyReplicas, d.metadata.name).toBe(spec.replicas);
    }
    const health = (await (await fetch(`${lab.env.backendUrl}/api/v1/health`)).json()) as {
      database: { up: boolean };
    };
    expect(health.database.up).toBe(true);
    expect(await pgUp(lab.env.databaseUrl)).toBe(1);
  });

  it('kubectl set env on the backend reconfigures the real backend', async () => {
    const platform = connectAiWebTest(lab.env);
    try {
      // The step a runbook would take (kubectl set env deployment/backend OPENROUTER_CACHE_ENABLED=true).
      await applyAction(
        platform.k8s.setEnv({
          namespace: lab.namespace,
          name: 'backend',
          env: { OPENROUTER_CACHE_ENABLED: 'true' },
        }),
      );
      await until('the backend to apply the env', async () => {
        const h = (await (await fetch(`${lab.env.backendUrl}/api/v1/health`)).json()) as {
          config: { openrouter_cache_enabled: boolean };
        };
        return h.config.openrouter_cache_enabled === true;
      });
    } finally {
      await platform.close();
    }
    await until('the bridge to record it', () =>
      lab.bridgeLog().some((line) => line.includes('backend: env applied (OPENROUTER_CACHE_ENABLED)')),
    );
  });

  it('a rollout restart of pgbouncer brings a crashed PgBouncer back', async () => {
    await lab.pgbouncer.kill();
    expect(await pgUp(lab.env.databaseUrl, 1000)).toBe(0);
    const platform = connectAiWebTest(lab.env);
    try {
      await applyAction(platform.k8s.rolloutRestart({ namespace: lab.namespace, name: 'pgbouncer' }));
    } finally {
      await platform.close();
    }
    await until('PgBouncer to answer again', async () => (await pgUp(lab.env.databaseUrl, 1000)) === 1);
    // It answers a moment before the bridge's restart() resolves (it waits for the admin console too).
    await until('the bridge to record the restart', () =>
      lab.bridgeLog().some((line) => line.includes('pgbouncer: restarted')),
    );
  });
});
