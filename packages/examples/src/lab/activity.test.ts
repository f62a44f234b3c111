import { PODS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activity, generationCacheStale, startActivity } from './activity';
import { gridSessions } from './grid-sessions';
import { type LabPartsFixture, startLabPartsFixture } from './lab-parts.fixture';
import { podsMatching } from './platform/platform-status';

let lab: LabPartsFixture;
let activity: Activity;

const until = async (what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 8_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

const decisions = async (agentType: string, sinceMs: number) => {
  const { rows } = await lab.parts.pool.query<{ n: number; mean: number | null; max_ms: number | null }>(
    `SELECT count(*)::int AS n, avg(confidence)::float8 AS mean, max(execution_time_ms) AS max_ms
       FROM agent_decisions WHERE agent_type = $1 AND created_at > now() - make_interval(secs => $2::float8 / 1000)`,
    [agentType, sinceMs],
  );
  return rows[0] as { n: number; mean: number | null; max_ms: number | null };
};

beforeAll(async () => {
  // Its own Redis database: this file writes stale cache entries the other files' labs must not see.
  lab = await startLabPartsFixture();
  activity = startActivity(lab.parts, { tickMs: 200, executionRealMs: [200, 400], trafficPerSecond: 4 });
});

afterAll(async () => {
  await activity?.stop();
  await lab?.close();
});

describe('startActivity', () => {
  it('records decisions of every healthy agent, named after its pods, with confidence 0.85–0.97', async () => {
    await until('decisions of all six agents', async () => {
      const { rows } = await lab.parts.pool.query<{ n: number }>(
        `SELECT count(DISTINCT agent_type)::int AS n FROM agent_decisions WHERE decision->>'action' = 'lab_activity'`,
      );
      return rows[0]?.n === 6;
    });
    const { rows } = await lab.parts.pool.query<{ agent_id: string; confidence: number }>(
      `SELECT agent_id, confidence FROM agent_decisions WHERE decision->>'action' = 'lab_activity' AND agent_type = 'requirements'`,
    );
    const pods = podsMatching(lab.parts.simulator.store, lab.parts.namespace, { app: 'requirements-agent' });
    const ids = new Set(pods.map((p) => `requirements-agent-${p.metadata.name.split('-').pop()}`));
    expect(rows.every((r) => ids.has(r.agent_id))).toBe(true);
    expect(rows.every((r) => r.confidence >= 0.85 && r.confidence <= 0.97)).toBe(true);
  });

  it('runs executions on the Grid that finish with a normal execution time, within MAX_PARALLEL_TESTS', async () => {
    await until('finished executions', async () => {
      const { rows } = await lab.parts.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM test_executions WHERE finished_at > now() - interval '10 seconds'`,
      );
      return (rows[0]?.n ?? 0) >= 3;
    });
    const { rows } = await lab.parts.pool.query<{ execution_time: number }>(
      `SELECT execution_time FROM test_executions WHERE finished_at > now() - interval '10 seconds'`,
    );
    expect(rows.every((r) => r.execution_time >= 40 && r.execution_time <= 110)).toBe(true);
    expect(lab.parts.grid.sessions().length).toBeLessThanOrEqual(2);
  });

  it('sends traffic to the backend', async () => {
    await until('backend requests', async () => {
      const text = await (await fetch(`${lab.parts.backend.url}/metrics`)).text();
      return /http_request_duration_seconds_count\{[^}]*route="\/api\/v1\/generate"[^}]*\} [1-9]/.test(text);
    });
  });

  it('lowers the generation confidence while stale cache entries exist, and restores it when they are cleared', async () => {
    await lab.parts.redis.hset('agent:generation:cache:t1', { stale: '1', prompt_hash: 'abc' });
    expect(await generationCacheStale(lab.parts.redis)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const low = await decisions('generation', 1_000);
    expect(low.n).toBeGreaterThan(0);
    expect(low.mean).toBeLessThan(0.7);
    await lab.parts.redis.del('agent:generation:cache:t1');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const back = await decisions('generation', 1_000);
    expect(back.mean).toBeGreaterThan(0.8);
  });

  it('makes generation decisions slow while its pods run at their CPU limit', async () => {
    const pods = podsMatching(lab.parts.simulator.store, lab.parts.namespace, { app: 'generation-agent' });
    for (const p of pods)
      lab.parts.simulator.setUsage(lab.parts.namespace, p.metadata.name, 'generation-agent', {
        cpu: '1950m',
        memory: '2Gi',
      });
    try {
      await until(
        'slow generation decisions',
        async () => ((await decisions('generation', 600)).max_ms ?? 0) > 60_000,
      );
    } finally {
      for (const p of pods)
        lab.parts.simulator.setUsage(lab.parts.namespace, p.metadata.name, 'generation-agent', {
          cpu: '300m',
          memory: '1Gi',
        });
    }
  });

  it('records long execution times while the Grid is saturated', async () => {
    const sessions = gridSessions(lab.parts.grid);
    const handles: string[] = [];
    for (let h = sessions.start(); h; h = sessions.start()) handles.push(h);
    try {
      await until('slow executions', async () => {
        const { rows } = await lab.parts.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM test_executions WHERE finished_at > now() - interval '3 seconds' AND execution_time > 300`,
        );
        return (rows[0]?.n ?? 0) >= 1;
      });
    } finally {
      for (const h of handles) sessions.end(h);
    }
    expect(lab.parts.grid.sessions().length).toBeLessThanOrEqual(2);
  });

  it('leaves executions running when their Grid node goes away', async () => {
    /** Running executions that started before `at` (a database time). */
    const runningSince = async (at: string) =>
      (
        await lab.parts.pool.query<{ id: string }>(
          `SELECT execution_id::text AS id FROM test_executions WHERE result = 'running' AND started_at < $1::timestamptz`,
          [at],
        )
      ).rows.map((r) => r.id);
    const now = async () =>
      (await lab.parts.pool.query<{ t: string }>('SELECT now()::text AS t')).rows[0]?.t as string;
    await until('executions in flight', async () => (await runningSince(await now())).length > 0);
    const cut = await now();
    for (const pod of podsMatching(lab.parts.simulator.store, lab.parts.namespace, { app: 'selenium-node' }))
      lab.parts.simulator.store.delete(PODS, lab.parts.namespace, pod.metadata.name);
    // A finish already under way when the nodes went may still commit: give it a moment, then those left
    // running can never finish (each would within 400 ms otherwise).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const orphaned = await runningSince(cut);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const still = new Set(await runningSince(cut));
    expect(orphaned.length).toBeGreaterThan(0);
    expect(orphaned.filter((id) => still.has(id))).toEqual(orphaned);
  });
});
