import { type Engine, type Finding, InputValidationError, type Plan } from '@aiwebtest/runbooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOpenRouterRateLimitRunbook,
  RATE_LIMIT_STATUS_MESSAGE,
} from '../../src/aiwebtest/openrouter-rate-limit';
import { metricSum, parseMetrics } from '../../src/aiwebtest/platform-checks';
import { generateThrough, readBackendHealth } from '../support/lab-backend';
import { resultOf, said, stepsOf } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 7 against the real lab: the OpenRouter double answering 429 for real, traffic through the real
// backend, and the lab's bridge that applies `kubectl set env` to the running backend.

beforeAll(async () => {
  harness = await startRunbookLab(createOpenRouterRateLimitRunbook);
  ({ lab, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;

const health = () => readBackendHealth(lab.env.backendUrl);

async function rateLimitErrors(): Promise<number> {
  const response = await fetch(`${lab.env.backendUrl}/metrics`);
  return metricSum(parseMetrics(await response.text()), 'openrouter_api_rate_limit_errors');
}

async function generate(prompt: string): Promise<number> {
  return (await generateThrough(lab.env.backendUrl, prompt)).status;
}

const steps = (runId: string) => stepsOf(engine, runId);

function start(mode: 'diagnose' | 'plan' | 'execute', input: Record<string, unknown> = {}) {
  return engine.start(
    'openrouter-rate-limit',
    { sampleInterval: '1500ms', ...input },
    { mode, actor: 'alice' },
  );
}

describe('openrouter-rate-limit', () => {
  it('refuses bad input naming the field', async () => {
    await expect(start('diagnose', { maxRequestsPerMinute: 0 })).rejects.toThrow(InputValidationError);
    await expect(start('diagnose', { sampleInterval: 'soon' })).rejects.toThrow(/sampleInterval/);
  });

  it('a healthy platform: no rate limiting, no change planned', async () => {
    const result = await start('plan');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(
      /^no OpenRouter rate limiting: 0 OpenRouter 429 answers .*no change needed$/,
    );
    const s = await steps(result.runId);
    expect([...s.values()].filter((x) => x.kind === 'act')).toEqual([]);
    expect(resultOf<Finding>(s, 'request-queue').status).toBe('ok');
  });

  it('diagnose: 429s from OpenRouter under traffic name the rate limit, and nothing changes', async () => {
    // A Retry-After of 0 lets the key be used again at once, so every request meets several 429s.
    lab.openRouter.faults.inject({ kind: 'rateLimit', retryAfter: '0s' });
    for (let i = 0; i < 6; i++) expect(await generate(`rate ${i}`)).toBe(200);
    expect(await rateLimitErrors()).toBeGreaterThan(10);

    const result = await start('diagnose');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^OpenRouter rate limit: \d+ 429 answers in the last minute \(limit 10\)/);
    const s = await steps(result.runId);
    expect(resultOf<Finding>(s, 'api-usage').status).toBe('fail');
    expect(s.get('enable-request-queue')?.status).toBe('skipped');
    expect((await health()).queue.enabled).toBe(false);
  });

  it('plan: exactly the queue variables', async () => {
    const result = await start('plan');
    const plan = resultOf<{ plan: Plan }>(await steps(result.runId), 'enable-request-queue').plan;
    const env = (name: string) => `spec.template.spec.containers[name=backend].env[name=${name}]`;
    // The lab's Deployment sends 60/min; the manual's limit is 50.
    expect(plan.changes).toEqual([
      expect.objectContaining({ field: env('OPENROUTER_QUEUE_ENABLED'), before: 'false', after: 'true' }),
      expect.objectContaining({
        field: env('OPENROUTER_MAX_REQUESTS_PER_MINUTE'),
        before: '60',
        after: '50',
      }),
    ]);
    expect(said(result)).toContain(`status page: "${RATE_LIMIT_STATUS_MESSAGE}"`);
    expect((await health()).queue.enabled).toBe(false);
  });

  it('execute: the real backend queues at 50/min, the throttle is verified, escalates while 429s persist', async () => {
    // Traffic while the runbook samples: once queued, the backend sends it to OpenRouter, which still answers 429.
    let running = true;
    const traffic: Promise<number>[] = [];
    const loop = (async () => {
      for (let i = 0; running; i++) {
        traffic.push(generate(`queued ${i}`));
        await new Promise((r) => setTimeout(r, 400));
      }
    })();
    const result = await start('execute').finally(() => {
      running = false;
    });
    await loop;
    expect(said(result)).toMatch(
      /^escalated: persistent rate limiting \(\d+ new 429 answers while throttled at 50\/min\): upgrade the OpenRouter API plan; if urgent, use multiple API keys/,
    );
    const h = await health();
    expect(h.queue.enabled).toBe(true);
    expect(h.config).toMatchObject({
      openrouter_queue_enabled: true,
      openrouter_max_requests_per_minute: 50,
    });
    const s = await steps(result.runId);
    expect(resultOf<Finding>(s, 'throttle-incoming').summary).toMatch(
      /^incoming LLM requests are throttled by the backend's queue: 50\/min to OpenRouter, 429 beyond 1000 queued/,
    );
    expect(s.get('notify-users')?.status).toBe('succeeded');
    // Every request is answered (OpenRouter's 429s fall back to Ollama), none refused. The backend's own rate
    // is raised for a moment so the queue drains fast, then set back to what the Deployment says.
    await lab.backend.reconfigure({
      OPENROUTER_QUEUE_ENABLED: 'true',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '6000',
    });
    expect(new Set(await Promise.all(traffic))).toEqual(new Set([200]));
    await lab.backend.reconfigure({
      OPENROUTER_QUEUE_ENABLED: 'true',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '50',
    });
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('execute once the limit lifts: queue already on, drains, done', async () => {
    lab.openRouter.faults.clearAll();
    // The gauge still holds the last minute's 429s: the runbook still sees the alert's condition.
    const result = await start('execute');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^OpenRouter rate limit: .*request queue enabled at 50\/min; queue 0 → 0/);
    const s = await steps(result.runId);
    expect(s.get('enable-request-queue')?.status).toBe('succeeded');
    expect(resultOf<Finding>(s, 'monitor-request-rate').status).toBe('ok');
  });

  it('escalates when the queue is beyond the reject threshold', async () => {
    // A burst the queue sends at 50/min: it waits in Redis. A threshold of 3 stands in for the manual's 1000.
    const burst = Array.from({ length: 8 }, (_, i) => generate(`burst ${i}`));
    const deadline = Date.now() + 5_000;
    while (((await health()).queue.length ?? 0) < 4 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const result = await start('diagnose', { queueRejectAbove: 3 });
    expect(said(result)).toMatch(
      /^escalated: request queue too large \(\d+ > 3\): reject new requests temporarily \(the backend answers 429 beyond 1000 queued\)/,
    );
    // Drain the burst quickly (the lab backend's own setting, not the Deployment's) so the file ends fast.
    await lab.backend.reconfigure({
      OPENROUTER_QUEUE_ENABLED: 'true',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '6000',
    });
    expect(new Set(await Promise.all(burst))).toEqual(new Set([200]));
  });
});
