import { type Engine, InputValidationError, type Plan } from '@aiwebtest/runbooks';
import { DEPLOYMENTS, PODS } from '@aiwebtest/runbooks/testing';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AiWebTest } from '../../src/aiwebtest/environment';
import {
  createGenerationAgentFailureRunbook,
  GENERATION_CACHE_PREFIX,
  STALE_FIELD,
} from '../../src/aiwebtest/generation-agent-failure';
import { GENERATION_CACHE_PATTERN, STALE_FIELD as LAB_STALE_FIELD } from '../../src/lab/activity';
import { type Injection, insertLowConfidenceDecisions } from '../../src/lab/database/chaos';
import { appendAgentLogs } from '../../src/lab/platform/agent-logs';
import { findingOf, stepsOf as stepsIn } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

const AGENT = 'generation-agent';
let harness: RunbookLab;
let lab: TestLab;
let platform: AiWebTest;
let engine: Engine;
let redis: Redis;

beforeAll(async () => {
  harness = await startRunbookLab(createGenerationAgentFailureRunbook);
  ({ lab, platform, engine } = harness);
  redis = new Redis(lab.env.redisUrl);
}, 90_000);
afterAll(async () => {
  await redis?.quit();
  await harness?.close();
});

interface Obj {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: { conditions?: { type: string; status: string }[]; readyReplicas?: number };
}
const deployment = () =>
  lab.simulator.store.list(DEPLOYMENTS, lab.namespace).items.find((d) => d.metadata.name === AGENT) as Obj;
const replicas = () => (deployment().spec as { replicas: number }).replicas;
const readyPods = () =>
  (lab.simulator.store.list(PODS, lab.namespace).items as Obj[]).filter(
    (p) =>
      p.metadata.labels?.app === AGENT &&
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  );
const cacheKeys = () => redis.keys(`${GENERATION_CACHE_PREFIX}*`);

/**
 * The generation agent at work, as the lab's activity loop does it (src/lab/activity.ts, not yet started by
 * startLab): every ready pod records a decision per tick, of low confidence while the cache holds stale
 * entries, or always when the model itself is bad.
 */
function emulateAgent(mode: 'cache-driven' | 'bad-model') {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const stale = (await cacheKeys()).length > 0;
      const low = mode === 'bad-model' || stale;
      const pods = readyPods().map((p) => p.metadata.name);
      if (pods.length)
        await lab.pool.query(
          `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, decision)
           SELECT p, 'generation', $2::float8, 3500, '{"action":"test_emulated"}'::jsonb FROM unnest($1::text[]) AS p`,
          [pods, low ? 0.55 : 0.92],
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The incident: stale cache entries, low-confidence decisions, ERROR lines; with `pinCpu`, pods at their CPU limit. */
async function injectIncident({ pinCpu }: { pinCpu: boolean }) {
  const low: Injection = await insertLowConfidenceDecisions({
    url: lab.databaseUrl,
    agentType: 'generation',
    count: 10,
    confidence: 0.5,
  });
  cleanups.push(() => low.stop());
  const write = redis.multi();
  for (let i = 0; i < 5; i++)
    write.hset(`${GENERATION_CACHE_PREFIX}prompt-${i}`, {
      [STALE_FIELD]: '1',
      model: 'anthropic/claude-3.5-sonnet',
    });
  await write.exec();
  cleanups.push(async () => {
    const keys = await cacheKeys();
    if (keys.length) await redis.del(...keys);
  });
  appendAgentLogs(lab.simulator, { namespace: lab.namespace, modes: { [AGENT]: 'degraded' }, tick: 1 });
  if (pinCpu)
    for (const pod of readyPods())
      lab.simulator.setUsage(lab.namespace, pod.metadata.name, AGENT, { cpu: '1950m', memory: '1200Mi' });
}

const stepsOf = (runId: string) => stepsIn(engine, runId);

describe('generation-agent-failure on the lab', () => {
  it('is triggered by GenerationAgentLowConfidence, P2', () => {
    const runbook = createGenerationAgentFailureRunbook({ connect: () => platform });
    expect(runbook).toMatchObject({
      id: 'generation-agent-failure',
      severity: 'P2',
      triggers: [{ kind: 'alert', match: { alertname: 'GenerationAgentLowConfidence' } }],
      tags: ['component: agents', 'runbook: 2'],
    });
  });

  it('looks for stale entries where the lab’s agents keep them', () => {
    expect(GENERATION_CACHE_PATTERN).toBe(`${GENERATION_CACHE_PREFIX}*`);
    expect(LAB_STALE_FIELD).toBe(STALE_FIELD);
  });

  it('diagnose: names low confidence, CPU at its limit, stale cache and ERROR lines; changes nothing', async () => {
    await injectIncident({ pinCpu: true });
    // Another agent's cache and the backend's queue share the Redis database: FLUSHDB would take them too.
    await redis.set('agent:requirements:cache:abc', 'kept', 'EX', 600);
    await redis.rpush('agent:requests:queue', 'job-1');
    cleanups.push(() => redis.del('agent:requirements:cache:abc', 'agent:requests:queue'));

    const result = await engine.start('generation-agent-failure', {}, { mode: 'diagnose', actor: 'alice' });

    expect(result.status).toBe('succeeded');
    const steps = await stepsOf(result.runId);
    expect([...steps.keys()]).toEqual([
      'resource-usage',
      'error-logs',
      'openrouter',
      'openrouter-rate-limits',
      'decision-logs',
      'stale-cache',
      'replicas',
      'scale-up',
      'clear-cache',
      'restart',
    ]);
    expect(findingOf(steps, 'resource-usage').status).toBe('warn');
    expect(findingOf(steps, 'resource-usage').summary).toMatch(/limit/);
    expect(findingOf(steps, 'error-logs').status).toBe('warn');
    expect(JSON.stringify(findingOf(steps, 'error-logs').evidence)).toContain('429 Too Many Requests');
    expect(findingOf(steps, 'openrouter-rate-limits').status).toBe('unknown'); // no Prometheus in this lab
    expect(findingOf(steps, 'decision-logs')).toMatchObject({
      status: 'fail',
      summary: 'low generation quality: mean confidence 0.50 of the last 10 decisions, below 0.7',
      data: { decisions: 10, meanConfidence: 0.5 },
    });
    expect(findingOf(steps, 'stale-cache')).toMatchObject({
      status: 'warn',
      summary: `stale data in the generation agent cache: 5 of 5 entries under ${GENERATION_CACHE_PREFIX} marked stale`,
    });
    for (const act of ['scale-up', 'clear-cache', 'restart']) expect(steps.get(act)?.status).toBe('skipped');
    expect((result.outcome as { summary: string }).summary).toMatch(
      /^generation agent degraded: low generation quality: mean confidence 0\.50.*resource constrained.*stale data/,
    );
    expect(replicas()).toBe(2);
    expect(await cacheKeys()).toHaveLength(5);
    expect(await redis.exists('agent:requirements:cache:abc', 'agent:requests:queue')).toBe(2);
  });

  it('plan: scale 2 → 3, delete exactly the agent’s cache keys, restart; nothing changes', async () => {
    await injectIncident({ pinCpu: true });

    const result = await engine.start('generation-agent-failure', {}, { mode: 'plan', actor: 'alice' });

    expect(result.status).toBe('succeeded');
    const steps = await stepsOf(result.runId);
    const plan = (name: string) =>
      (steps.get(name)?.result as unknown as { status: string; plan: Plan } | undefined)?.plan as Plan;
    expect(steps.get('scale-up')?.result).toMatchObject({ status: 'planned' });
    expect(plan('scale-up').changes).toEqual([
      { target: `k8s:aiwebtest/deployment/${AGENT}`, field: 'spec.replicas', before: 2, after: 3 },
    ]);
    // A cache refills from its source: the SDK does not count deleting it as destructive (no approval).
    expect(plan('clear-cache')).toMatchObject({ action: 'redis.clear-cache', destructive: false });
    expect(plan('clear-cache').summary).toContain(GENERATION_CACHE_PREFIX);
    expect(plan('restart')).toMatchObject({ action: 'k8s.rollout-restart' });
    expect(result.outcome).toEqual({
      kind: 'done',
      summary: `would ${[plan('scale-up'), plan('clear-cache'), plan('restart')].map((p) => p.summary).join('; then ')}`,
    });
    expect(replicas()).toBe(2);
    expect(await cacheKeys()).toHaveLength(5);
  });

  it('execute: scales up, clears only the agent’s cache, restarts; new decisions ≥ 0.85', async () => {
    await injectIncident({ pinCpu: true });
    await redis.set('agent:requirements:cache:abc', 'kept', 'EX', 600);
    await redis.rpush('agent:requests:queue', 'job-1');
    cleanups.push(() => redis.del('agent:requirements:cache:abc', 'agent:requests:queue'));
    cleanups.push(emulateAgent('cache-driven'));

    const result = await engine.start('generation-agent-failure', {}, { mode: 'execute', actor: 'alice' });

    const steps = await stepsOf(result.runId);
    expect(steps.get('scale-up')?.result).toMatchObject({
      status: 'applied',
      verification: { status: 'ok' },
    });
    expect(result.error ?? null).toBeNull();
    expect(result.status).toBe('succeeded');
    expect(steps.get('clear-cache')?.result).toMatchObject({
      status: 'applied',
      verification: { status: 'ok' },
    });
    expect(steps.get('restart')?.result).toMatchObject({ status: 'applied' });
    expect(findingOf(steps, 'verify-quality').status).toBe('ok');
    expect(findingOf(steps, 'verify-quality').summary).toMatch(
      /^generation quality restored: mean confidence 0\.9/,
    );
    expect(findingOf(steps, 'verify-resources').status).toBe('ok');
    expect((result.outcome as { summary: string }).summary).toMatch(/generation quality restored/);
    // In the lab: 3 ready replicas, the agent's cache gone, the neighbours' keys kept, good decisions again.
    expect(replicas()).toBe(3);
    expect(readyPods()).toHaveLength(3);
    expect(await cacheKeys()).toEqual([]);
    expect(await redis.get('agent:requirements:cache:abc')).toBe('kept');
    expect(await redis.llen('agent:requests:queue')).toBe(1);
    const restart = steps.get('restart')?.result as unknown as { applied: { appliedAt: string } } | undefined;
    const since = restart?.applied.appliedAt;
    const { rows } = await lab.pool.query<{ mean: number }>(
      `SELECT avg(confidence)::float8 AS mean FROM agent_decisions WHERE agent_type = 'generation' AND created_at > $1`,
      [since],
    );
    expect(rows[0]?.mean).toBeGreaterThanOrEqual(0.85);
    expect(await engine.verifyAudit()).toMatchObject({ ok: true });
  });

  it('a healthy agent: says so and plans no change', async () => {
    const stop = emulateAgent('cache-driven');
    await new Promise((r) => setTimeout(r, 800));
    await stop();

    const result = await engine.start('generation-agent-failure', {}, { mode: 'plan', actor: 'alice' });

    expect(result.status).toBe('succeeded');
    expect((result.outcome as { summary: string }).summary).toMatch(
      /^generation agent healthy: mean confidence 0\.92 of the last 10 generation decisions; .*no change needed$/,
    );
    expect([...(await stepsOf(result.runId)).keys()]).not.toContain('restart');
  });

  it('execute: confidence that stays low after the recovery escalates to the model check', async () => {
    await injectIncident({ pinCpu: false });
    cleanups.push(emulateAgent('bad-model'));

    const result = await engine.start(
      'generation-agent-failure',
      { verifyTimeout: '5s' },
      { mode: 'execute', actor: 'alice' },
    );

    expect(result.status).toBe('escalated');
    expect((result.outcome as { reason: string }).reason).toMatch(
      /^confidence remains low: mean 0\.55 of \d+ new decisions \(< 0\.85\): check OpenRouter API model status \(.*\); if it is a model issue, switch to a different model version$/,
    );
    const steps = await stepsOf(result.runId);
    // Not resource constrained: no scaling, and the finding says why.
    expect(findingOf(steps, 'scale-up-skipped').summary).toMatch(/^skipped: not resource constrained/);
    expect(steps.has('scale-up')).toBe(false);
    expect(steps.get('clear-cache')?.result).toMatchObject({ status: 'applied' });
    expect(await cacheKeys()).toEqual([]);
  });

  it('refuses bad input before anything runs, naming the field', async () => {
    const error = await engine
      .start('generation-agent-failure', { minConfidence: 2 }, { mode: 'diagnose', actor: 'alice' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect((error as InputValidationError).issues.map((i) => i.path)).toEqual(['minConfidence']);
  });
});
