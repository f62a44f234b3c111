import { type Engine, type Finding, InputValidationError, type Plan } from '@aiwebtest/runbooks';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiHighLatencyRunbook } from '../../src/aiwebtest/api-high-latency';
import { generateThrough, readBackendHealth } from '../support/lab-backend';
import { resultOf, said, stepsOf } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 8 against the real lab: a slow OpenRouter double (seconds, not the manual's 10 s: the threshold is an
// input), traffic through the real backend, slow agent decisions in the real database, and the lab's bridge
// that applies `kubectl set env` to the running backend.

let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;

/** Thresholds scaled down so a 1.5 s OpenRouter makes the incident within a test's time. */
const FAST = { p95AboveMs: 1000, openRouterSlowAfter: '1s', monitorAfter: '100ms' };

beforeAll(async () => {
  harness = await startRunbookLab(createApiHighLatencyRunbook);
  ({ lab, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

const health = () => readBackendHealth(lab.env.backendUrl);

async function generate(prompt: string): Promise<{ status: number; cached: boolean | null }> {
  const { status, cached } = await generateThrough(lab.env.backendUrl, prompt);
  return { status, cached };
}

const steps = (runId: string) => stepsOf(engine, runId);

function start(mode: 'diagnose' | 'plan' | 'execute', input: Record<string, unknown> = {}) {
  return engine.start('api-high-latency', input, { mode, actor: 'alice' });
}

function replicas(name: string): number | undefined {
  const d = lab.simulator.store.get(DEPLOYMENTS, lab.namespace, name) as unknown as {
    spec: { replicas?: number };
    status?: { readyReplicas?: number };
  };
  return d.status?.readyReplicas;
}

describe('api-high-latency', () => {
  it('refuses bad input naming the field', async () => {
    await expect(start('diagnose', { p95AboveMs: -1 })).rejects.toThrow(InputValidationError);
    await expect(start('diagnose', { openRouterSlowAfter: 'soon' })).rejects.toThrow(/openRouterSlowAfter/);
  });

  it('a healthy platform: says so and plans no change', async () => {
    const result = await start('plan');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^API latency is healthy: API p95 \d+ ms .*no change needed$/);
    const s = await steps(result.runId);
    expect([...s.values()].filter((x) => x.kind === 'act')).toEqual([]);
    // The manual's agent SQL ran unchanged against the seeded decisions.
    expect(resultOf(s, 'agent-processing').summary).toMatch(/Agent processing times/);
    // No pg_stat_statements in the lab: the fallback looked at the running queries.
    expect(resultOf(s, 'database-queries').data).toMatchObject({ available: false });
    expect(s.has('database-active-queries')).toBe(true);
    expect(resultOf(s, 'slowest-routes').summary).toMatch(/^no tracing backend \(Jaeger\)/);
  });

  it('diagnose: a slow OpenRouter under traffic is named the bottleneck, and nothing changes', async () => {
    lab.openRouter.faults.inject({ kind: 'latency', delay: '1500ms' });
    const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => generate(`slow ${i}`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);

    const result = await start('diagnose', FAST);
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^bottleneck: openrouter \(p95 \d+ ms \(slow above 1000 ms\)\)/);
    const s = await steps(result.runId);
    expect(resultOf(s, 'endpoint-latency').summary).toMatch(
      /^API p95 \d+ ms over the last minute \(above 1000 ms\); slowest route \/api\/v1\/generate/,
    );
    expect(resultOf(s, 'openrouter-latency').status).toBe('fail');
    expect(s.get('enable-caching')?.status).toBe('skipped');
    expect((await health()).config.openrouter_cache_enabled).toBe(false);
  });

  it('plan: exactly the cache switch', async () => {
    const result = await start('plan', FAST);
    const plan = resultOf<{ plan: Plan }>(await steps(result.runId), 'enable-caching').plan;
    // OPENROUTER_CACHE_TTL is already the manual's 300, so it is no change.
    expect(plan.changes).toEqual([
      expect.objectContaining({
        field: 'spec.template.spec.containers[name=backend].env[name=OPENROUTER_CACHE_ENABLED]',
        before: 'false',
        after: 'true',
      }),
    ]);
    expect((await health()).config.openrouter_cache_enabled).toBe(false);
  });

  it('execute: enables the real backend’s cache; a repeated request is answered from it, fast', async () => {
    const result = await start('execute', FAST);
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(
      /^bottleneck: openrouter .*OpenRouter response cache enabled \(TTL 300 s\); API p95/,
    );
    const s = await steps(result.runId);
    const after = resultOf<Finding<{ latencyMs: number }>>(s, 'latency-after-change');
    expect(after.data.latencyMs).toBeLessThan(500);
    expect((await health()).config).toMatchObject({
      openrouter_cache_enabled: true,
      openrouter_cache_ttl: 300,
    });
    await generate('cached twice');
    expect(await generate('cached twice')).toEqual({ status: 200, cached: true });
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('slow agents: scales the slowest agent to 3 replicas in the cluster', async () => {
    lab.openRouter.faults.clearAll();
    const { rows } = await lab.pool.query<{ id: string }>(
      `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, decision, created_at)
       SELECT 'generation-agent-7f9c', 'generation', 0.9, 25000, '{"test": "slow"}'::jsonb, now()
         FROM generate_series(1, 200) RETURNING id`,
    );
    try {
      // Every request counts as slow here (p95AboveMs 1): the agents are what the runbook must find.
      const result = await start('execute', {
        p95AboveMs: 1,
        openRouterSlowAfter: '1h',
        monitorAfter: '100ms',
      });
      expect(result.status).toBe('succeeded');
      expect(said(result)).toMatch(
        /^bottleneck: agents \(generation avg \d+ ms .*generation-agent scaled to 3/,
      );
      expect(replicas('generation-agent')).toBe(3);
    } finally {
      await lab.pool.query('DELETE FROM agent_decisions WHERE id = ANY($1::bigint[])', [
        rows.map((r) => r.id),
      ]);
    }
  });

  it('escalates when the latency has no bottleneck it can act on', async () => {
    const result = await start('diagnose', {
      p95AboveMs: 1,
      openRouterSlowAfter: '1h',
      agentSlowAfter: '1h',
      networkSlowAfterMs: 60_000,
    });
    expect(said(result)).toMatch(
      /^escalated: latency persists with no bottleneck found .*review application code for inefficiencies/,
    );
  });
});
