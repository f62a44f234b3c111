import type { Check } from '@aiwebtest/runbooks';
import {
  type KubernetesSimulator,
  type OllamaDouble,
  type OpenRouterDouble,
  startKubernetesSimulator,
  startOllamaDouble,
  startOpenRouterDouble,
} from '@aiwebtest/runbooks/testing';
import { Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backendHealth,
  backendMetrics,
  histogramQuantile,
  httpProbe,
  metricSum,
  parseMetrics,
  sampleRequest,
  seleniumGridStatus,
} from '../../src/aiwebtest/platform-checks';
import { type Backend, startBackend } from '../../src/lab/backend';
import { freePort } from '../../src/lab/database/pgbouncer';
import { platformManifests } from '../../src/lab/platform/manifests';
import { type SeleniumGridDouble, startSeleniumGridDouble } from '../../src/lab/platform/selenium-grid';
import { stepContext } from '../support/apply-action';
import { leaseRedisDb, type RedisDbLease } from '../support/redis-db';

// The checks against the real pieces they read: the sample backend (on the real PostgreSQL and Redis, with the
// SDK's OpenRouter and Ollama doubles), the Selenium Grid double on the Kubernetes simulator, and prom-client's
// own exposition for the metric parsing.
const redisPrefix = 'platform-checks:';
let redis: RedisDbLease;
let openRouter: OpenRouterDouble;
let ollama: OllamaDouble;
let backend: Backend;
let sim: KubernetesSimulator;
let grid: SeleniumGridDouble;

beforeAll(async () => {
  [openRouter, ollama, sim, redis] = await Promise.all([
    startOpenRouterDouble({ keys: ['sk-or-test'] }),
    startOllamaDouble({}),
    startKubernetesSimulator({}),
    leaseRedisDb(),
  ]);
  backend = await startBackend({
    databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: redis.url,
    redisPrefix,
    openRouterUrl: openRouter.baseUrl,
    apiKey: 'sk-or-test',
    ollamaUrl: ollama.url,
  });
  sim.apply(...platformManifests());
  await sim.settle({ timeoutMs: 15_000 });
  grid = await startSeleniumGridDouble({ simulator: sim, namespace: 'aiwebtest' });
}, 60_000);
afterAll(async () => {
  await grid?.close();
  await backend?.close();
  await Promise.allSettled([openRouter?.close(), ollama?.close(), sim?.close()]);
  await redis?.release();
});

function run<T>(check: Check<T>) {
  return check.run(stepContext());
}

describe('parseMetrics and histogramQuantile', () => {
  it('read prom-client’s exposition: labels with escapes, counters, and quantiles as Prometheus computes them', async () => {
    const registry = new Registry();
    const h = new Histogram({
      name: 'req_seconds',
      help: 'x',
      labelNames: ['route'],
      buckets: [0.1, 0.5, 1, 2],
      registers: [registry],
    });
    // 10 observations on /a: 9 fast, 1 very slow; 4 on /b "quoted", all between 1 and 2 s.
    for (let i = 0; i < 9; i++) h.observe({ route: '/a' }, 0.05);
    h.observe({ route: '/a' }, 3);
    for (let i = 0; i < 4; i++) h.observe({ route: '/b "quoted"' }, 1.5);
    const samples = parseMetrics(await registry.metrics());

    expect(metricSum(samples, 'req_seconds_count')).toBe(14);
    expect(metricSum(samples, 'req_seconds_count', { route: '/b "quoted"' })).toBe(4);
    const q = histogramQuantile(samples, 'req_seconds', 0.95, 'route');
    // /a: rank 9.5 falls in the +Inf bucket → the highest finite bound, as histogram_quantile answers.
    expect(q.get('/a')).toEqual({ quantile: 2, count: 10 });
    // /b: all 4 in (1, 2] → 1 + (2 - 1) * 3.8 / 4.
    expect(q.get('/b "quoted"')?.quantile).toBeCloseTo(1.95, 5);
    // Without grouping, every series adds up.
    expect(histogramQuantile(samples, 'req_seconds', 0.5).get('')?.count).toBe(14);
  });

  it('skips comments and lines that are not samples', () => {
    expect(
      parseMetrics('# HELP x y\n# TYPE x gauge\nx 1\nnot a sample line at all\ny{a="b"} NaN\nz +Inf\n'),
    ).toEqual([
      { name: 'x', labels: {}, value: 1 },
      { name: 'z', labels: {}, value: Number.POSITIVE_INFINITY },
    ]);
  });
});

describe('backend checks', () => {
  it('backendHealth: ok with every breaker closed; warn naming the open breaker once OpenRouter fails', async () => {
    const ok = await run(backendHealth(backend.url));
    expect(ok.status).toBe('ok');
    expect(ok.summary).toBe('backend ok: provider openrouter, every breaker closed');
    expect(ok.data.health?.circuit_breakers.openrouter?.state).toBe('closed');

    const fault = openRouter.faults.inject({ kind: 'outage', mode: 'refuse' });
    try {
      for (let i = 0; i < 6; i++)
        await run(sampleRequest({ backendUrl: backend.url, agent: 'a', prompt: `p${i}` }));
      const degraded = await run(backendHealth(backend.url));
      expect(degraded.status).toBe('warn');
      expect(degraded.summary).toBe('backend degraded: provider ollama, breakers openrouter open');
      expect(degraded.evidence[0]).toMatchObject({ kind: 'table', title: 'circuit breakers' });
    } finally {
      fault.clear();
    }
  });

  it('sampleRequest: warn naming the fallback provider; fail with the backend’s message on bad input', async () => {
    const viaFallback = await run(
      sampleRequest({ backendUrl: backend.url, agent: 'generation_agent', prompt: 'hello' }),
    );
    // The breaker opened in the previous test is still open: Ollama answers.
    expect(viaFallback.status).toBe('warn');
    expect(viaFallback.summary).toMatch(/^sample request answered by ollama \(fallback\), \d+ ms$/);
    const expected = await run(
      sampleRequest({
        backendUrl: backend.url,
        agent: 'generation_agent',
        prompt: 'hi',
        expectedProvider: 'ollama',
      }),
    );
    expect(expected.status).toBe('ok');
    const bad = await run(sampleRequest({ backendUrl: backend.url, agent: 'Not An Agent', prompt: 'x' }));
    expect(bad.status).toBe('fail');
    expect(bad.summary).toMatch(/^sample request failed: agent: expected an agent name/);
  });

  it('backendMetrics: the judge decides from the samples; the shown metrics are the evidence', async () => {
    const found = await run(
      backendMetrics(
        backend.url,
        (s) => ({ status: 'warn', summary: `${metricSum(s, 'openrouter_api_errors_total')} errors` }),
        ['openrouter_api_up'],
      ),
    );
    expect(found.status).toBe('warn');
    expect(Number(found.summary.split(' ')[0])).toBeGreaterThan(0);
    expect(found.evidence[0]).toMatchObject({ kind: 'table', rows: [['openrouter_api_up', '', 0]] });
  });

  it('an unreachable backend is a fail naming the reason, never a throw', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    expect((await run(backendHealth(url))).summary).toBe('backend unreachable: ECONNREFUSED');
    expect((await run(backendMetrics(url, () => ({ status: 'ok', summary: '' })))).summary).toBe(
      'backend /metrics unreachable: ECONNREFUSED',
    );
    expect((await run(sampleRequest({ backendUrl: url, agent: 'a', prompt: 'x' }))).summary).toBe(
      'sample request got no answer: ECONNREFUSED',
    );
  });
});

describe('httpProbe', () => {
  it('ok on the OpenRouter double’s health, fail naming the reason during its outage; credentials hidden', async () => {
    const url = `${openRouter.url}/api/v1/health`;
    expect((await run(httpProbe(url, 'OpenRouter API'))).summary).toMatch(
      /^OpenRouter API reachable: 200 in \d+ ms$/,
    );
    const fault = openRouter.faults.inject({ kind: 'outage', mode: 'refuse' });
    try {
      const down = await run(httpProbe(url.replace('http://', 'http://user:secret@'), 'OpenRouter API'));
      expect(down.status).toBe('fail');
      expect(down.summary).toBe('OpenRouter API unreachable: ECONNREFUSED');
      expect(JSON.stringify(down)).not.toContain('secret');
    } finally {
      fault.clear();
    }
  });
});

describe('seleniumGridStatus', () => {
  it('ok when ready, warn above the utilization limit, fail when unreachable', async () => {
    const idle = await run(seleniumGridStatus(grid.url));
    expect(idle.status).toBe('ok');
    expect(idle.data).toMatchObject({ reachable: true, ready: true, sessions: 0 });
    const slots = idle.data.slots;
    expect(slots).toBeGreaterThan(0);

    grid.occupy(slots);
    try {
      const full = await run(seleniumGridStatus(grid.url));
      // Every slot taken makes the Grid say ready:false: saturation, not an outage.
      expect(full.status).toBe('warn');
      expect(full.summary).toBe(
        `Selenium Grid saturated: ${slots}/${slots} slots busy (100%) on ${idle.data.nodes} nodes`,
      );
    } finally {
      grid.release();
    }
    const gone = await run(seleniumGridStatus(`http://127.0.0.1:${await freePort()}`));
    expect(gone).toMatchObject({ status: 'fail', summary: 'Selenium hub unreachable: ECONNREFUSED' });
  });
});
