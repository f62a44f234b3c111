import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine, type Finding, InputValidationError, type Plan } from '@aiwebtest/runbooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAiWebTest } from '../../src/aiwebtest/environment';
import { createOpenRouterOutageRunbook, OUTAGE_STATUS_MESSAGE } from '../../src/aiwebtest/openrouter-outage';
import { freePort } from '../../src/lab/database/pgbouncer';
import { generateThrough, readBackendHealth } from '../support/lab-backend';
import { resultOf, said, stepsOf } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 6 against the real lab: the OpenRouter double taken down for real, traffic through the real backend
// so its breaker opens by itself, and the lab's bridge that applies `kubectl set env` to the running backend.
let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;
let probeUrl: string;
let prometheus: ChildProcess | undefined;

/** The real Prometheus (Debian package) scraping the lab's backend every second; resolves with its URL. */
async function startPrometheus(backendUrl: string): Promise<string> {
  const config = join(lab.dir, 'prometheus.yml');
  const target = new URL(backendUrl).host;
  await writeFile(
    config,
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: backend\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const port = await freePort();
  prometheus = spawn(
    '/usr/bin/prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(lab.dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await fetch(`${url}/api/v1/query?query=openrouter_api_up`)
      .then(async (r) => ((await r.json()) as { data?: { result?: unknown[] } }).data?.result?.length ?? 0)
      .catch(() => 0);
    if (ready > 0) return url;
    if (Date.now() > deadline) throw new Error('Prometheus did not scrape the backend within 20 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  harness = await startRunbookLab(createOpenRouterOutageRunbook);
  ({ lab, engine } = harness);
  probeUrl = `${lab.openRouter.url}/api/v1/health`;
}, 90_000);
afterAll(async () => {
  // Our Prometheus, by its own handle; its data directory goes with the lab's once it has exited.
  const child = prometheus;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await harness?.close();
});

const health = () => readBackendHealth(lab.env.backendUrl);

async function generate(prompt: string): Promise<{ status: number; provider: string | null }> {
  const { status, provider } = await generateThrough(lab.env.backendUrl, prompt);
  return { status, provider };
}

const steps = (runId: string) => stepsOf(engine, runId);

function start(mode: 'diagnose' | 'plan' | 'execute', input: Record<string, unknown> = {}) {
  return engine.start(
    'openrouter-outage',
    { openRouterHealthUrl: probeUrl, ...input },
    { mode, actor: 'alice' },
  );
}

describe('openrouter-outage', () => {
  it('refuses bad input naming the field', async () => {
    await expect(start('diagnose', { phase: 'sideways' })).rejects.toThrow(InputValidationError);
    await expect(start('diagnose', { openRouterHealthUrl: 'ftp://x' })).rejects.toThrow(
      /openRouterHealthUrl/,
    );
  });

  it('a healthy platform: says so and plans no change', async () => {
    for (const mode of ['diagnose', 'plan'] as const) {
      const result = await start(mode);
      expect(result.status).toBe('succeeded');
      expect(said(result)).toMatch(/^OpenRouter is healthy: OpenRouter API reachable: 200/);
      const s = await steps(result.runId);
      expect([...s.values()].filter((x) => x.kind === 'act')).toEqual([]);
      expect(resultOf<Finding>(s, 'circuit-breaker').status).toBe('ok');
    }
  });

  it('diagnose: an outage with traffic names the cause and changes nothing', async () => {
    lab.openRouter.faults.inject({ kind: 'outage', mode: 'refuse' });
    // Traffic through the backend: OpenRouter fails, Ollama answers, and the breaker opens by itself.
    for (let i = 0; i < 6; i++) expect((await generate(`outage ${i}`)).provider).toBe('ollama');
    expect((await health()).circuit_breakers.openrouter?.state).toBe('open');

    const result = await start('diagnose');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^OpenRouter outage: OpenRouter API unreachable: ECONNREFUSED/);
    const s = await steps(result.runId);
    const probe = resultOf(s, 'openrouter-status');
    expect(probe.status).toBe('fail');
    const breaker = resultOf(s, 'circuit-breaker');
    expect(breaker.summary).toContain('breakers openrouter open');
    const errors = resultOf(s, 'error-rate');
    expect(errors.status).toBe('fail');
    expect(errors.summary).toMatch(/^openrouter_api_up 0, [1-9]\d* OpenRouter errors/);
    expect(s.get('switch-to-fallback')?.status).toBe('skipped');
    expect(s.get('open-circuit-breaker')?.status).toBe('skipped');
    const h = await health();
    expect(h.config.openrouter_fallback).toBe(false);
    expect(h.circuit_breakers.openrouter?.forced).toBe('auto');
  });

  it('plan: exactly the env change and the forced breaker, nothing applied', async () => {
    const result = await start('plan');
    expect(result.status).toBe('succeeded');
    const s = await steps(result.runId);
    const env = resultOf<{ status: string; plan: Plan }>(s, 'switch-to-fallback').plan;
    // OLLAMA_URL is set to the backend's current value (the lab's Ollama), so it is no change.
    expect(env.changes).toEqual([
      expect.objectContaining({
        field: 'spec.template.spec.containers[name=backend].env[name=OPENROUTER_FALLBACK]',
        before: 'false',
        after: 'true',
      }),
    ]);
    const breaker = resultOf<{ plan: Plan }>(s, 'open-circuit-breaker').plan;
    expect(breaker.changes).toEqual([expect.objectContaining({ before: 'auto', after: 'open' })]);
    expect(said(result)).toContain(`status page: "${OUTAGE_STATUS_MESSAGE}"`);
    const h = await health();
    expect(h.config.openrouter_fallback).toBe(false);
    expect(h.circuit_breakers.openrouter?.forced).toBe('auto');
  });

  it('execute: switches the real backend to Ollama, forces the breaker open, notifies, verifies', async () => {
    const result = await start('execute');
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^OpenRouter outage: .*switched the backend to Ollama/);
    const s = await steps(result.runId);
    expect(s.get('switch-to-fallback')?.status).toBe('succeeded');
    expect(s.get('open-circuit-breaker')?.status).toBe('succeeded');
    expect(s.get('notify-users')?.status).toBe('succeeded');
    const h = await health();
    expect(h.config.openrouter_fallback).toBe(true);
    expect(h.circuit_breakers.openrouter?.forced).toBe('open');
    expect(h.provider_current).toBe('ollama');
    expect(await generate('after failover')).toEqual({ status: 200, provider: 'ollama' });
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('still out: stays on the fallback, and escalates once the outage outlasts its limit', async () => {
    const stay = await start('execute');
    expect(said(stay)).toMatch(/^OpenRouter still unreachable .*staying on the fallback/);
    const longer = await start('execute', { outageEscalateAfter: '1ms' });
    expect(said(longer)).toMatch(
      /^escalated: OpenRouter outage exceeds 1ms .*consider temporary service degradation; if persistent, contact OpenRouter support/,
    );
    expect((await health()).config.openrouter_fallback).toBe(true);
  });

  it('recover: once OpenRouter answers again, switches back and OpenRouter serves', async () => {
    lab.openRouter.faults.clearAll();
    const plan = await start('plan');
    expect(said(plan)).toMatch(/^OpenRouter answers again .*would switch back/);
    expect((await health()).config.openrouter_fallback).toBe(true);

    const started = await start('execute', { closedFor: '2s' });
    // Forcing the breaker closed is high risk: a second person approves it.
    expect(started.status).toBe('waiting_approval');
    await engine.approve(started.runId, { actor: 'bob' });
    const result = await engine.resume(started.runId);
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^OpenRouter recovered: switched back .*answered by openrouter/);
    let h = await health();
    expect(h.config.openrouter_fallback).toBe(false);
    expect(h.circuit_breakers.openrouter).toMatchObject({ forced: 'closed', state: 'closed' });
    // After closedFor the breaker judges by itself again, from closed.
    await new Promise((r) => setTimeout(r, 2500));
    h = await health();
    expect(h.circuit_breakers.openrouter).toMatchObject({ forced: 'auto', state: 'closed' });
    expect(h.provider_current).toBe('openrouter');
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('escalates when the fallback fails too', async () => {
    lab.openRouter.faults.inject({ kind: 'outage', mode: 'refuse' });
    lab.ollama.faults.inject({ kind: 'outage', mode: 'refuse' });
    try {
      const result = await start('execute', { phase: 'failover' });
      expect(said(result)).toMatch(/^escalated: fallback also fails .*queue requests for retry later/);
    } finally {
      lab.openRouter.faults.clearAll();
      lab.ollama.faults.clearAll();
    }
  });

  it('with Prometheus: the error-rate step is the manual’s PromQL, answered by a real Prometheus', async () => {
    const prometheusUrl = await startPrometheus(lab.env.backendUrl);
    const withPrometheus = connectAiWebTest({ ...lab.env, prometheusUrl });
    const promEngine = new Engine({
      store: harness.store,
      runbooks: [createOpenRouterOutageRunbook({ connect: () => withPrometheus })],
    });
    try {
      const result = await promEngine.start(
        'openrouter-outage',
        { openRouterHealthUrl: probeUrl },
        { mode: 'diagnose', actor: 'alice' },
      );
      const run = await promEngine.getRun(result.runId);
      const errors = run.steps.find((x) => x.name === 'error-rate')?.result as unknown as Finding<{
        query: string;
        samples: unknown[];
      }>;
      expect(errors.data.query).toBe('openrouter_api_errors_total');
      expect(errors.data.samples.length).toBeGreaterThan(0);
      // The earlier outages' errors, counted by the backend and scraped by Prometheus.
      expect(errors.status).toBe('warn');
      expect(errors.summary).toMatch(/^[1-9]\d* OpenRouter errors counted$/);
    } finally {
      await withPrometheus.close();
    }
  });
});
