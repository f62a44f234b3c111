import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineCheck, type Finding, type FindingStatus, type ReplayableCheck } from '@aiwebtest/runbooks';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { successRate } from '../../src/aiwebtest/agent-failure';
import { queryLatency } from '../../src/aiwebtest/database-performance';
import { type AiWebTest, connectAiWebTest } from '../../src/aiwebtest/environment';
import { untilGridReady } from '../../src/aiwebtest/execution-agent-failure';
import { reworded, sqlQueryOf } from '../../src/aiwebtest/executions-since';
import { decisionLog, generationQuality } from '../../src/aiwebtest/generation-agent-failure';
import { queueDrain, requestRate, throttle } from '../../src/aiwebtest/openrouter-rate-limit';
import {
  backendMetrics,
  metricSum,
  sampleRequest,
  seleniumGridStatus,
} from '../../src/aiwebtest/platform-checks';
import { pgbouncerCheck, poolUtilization } from '../../src/aiwebtest/postgres-connection-loss';
import { prometheusQuery } from '../../src/aiwebtest/prometheus-query';
import { unblockedFailedLogins } from '../../src/aiwebtest/security-breach';
import { tableCounts, tolerant } from '../../src/aiwebtest/system-failure';
import { newExecutionsP95 } from '../../src/aiwebtest/test-execution-high-latency';
import { freePort } from '../../src/lab/database/pgbouncer';
import { stepContext } from '../support/apply-action';
import { generateThrough } from '../support/lab-backend';
import { startTestLab, type TestLab } from '../support/test-lab';

// The pack's checks whose verdict a runbook tunes, run once for real on a lab (and a real Prometheus), then
// judged again from their observation: by the same check (the live finding, exactly) and by one built with
// another threshold. The lab's agents keep working meanwhile, so thresholds are set where the live status is
// certain, and the other one where the recorded figures cross it.

let lab: TestLab;
let platform: AiWebTest;
let prometheusUrl: string;
let prometheus: ChildProcess | undefined;
let prometheusDir: string;

/** Runs a replayable check once for real, keeping its observation as the engine does (through JSON). */
async function observe<T, O>(check: ReplayableCheck<T, O>): Promise<{ observation: O; finding: Finding<T> }> {
  const observation = JSON.parse(JSON.stringify(await check.read(stepContext()))) as O;
  return { observation, finding: check.judge(observation) };
}

/** The same check reproduces the live finding from the stored observation; `variant` decides `status`. */
function rejudge<T, O>(
  live: { observation: O; finding: Finding<T> },
  same: ReplayableCheck<T, O>,
  variant: ReplayableCheck<T, O>,
  status: FindingStatus,
): Finding<T> {
  const stored = () => JSON.parse(JSON.stringify(live.observation)) as O;
  expect(same.judge(stored())).toEqual(live.finding);
  const replayed = variant.judge(stored());
  expect(replayed.status).not.toBe(live.finding.status);
  expect(replayed.status).toBe(status);
  return replayed;
}

/** The real Prometheus (Debian package), scraping nothing: constant expressions are all these checks ask. */
async function startPrometheus(): Promise<string> {
  prometheusDir = await mkdtemp(join(tmpdir(), 'replay-prometheus-'));
  const config = join(prometheusDir, 'prometheus.yml');
  await writeFile(config, 'global:\n  scrape_interval: 15s\n');
  const port = await freePort();
  prometheus = spawn(
    '/usr/bin/prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(prometheusDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (
    !(await fetch(`${url}/-/ready`)
      .then((r) => r.ok)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error('Prometheus did not start within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return url;
}

beforeAll(async () => {
  [lab, prometheusUrl] = await Promise.all([startTestLab(), startPrometheus()]);
  platform = connectAiWebTest(lab.env);
}, 90_000);

afterAll(async () => {
  const child = prometheus;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (prometheusDir) await rm(prometheusDir, { recursive: true, force: true });
  await platform?.close();
  await lab?.close();
});

describe('metric and endpoint checks', () => {
  it('prometheusQuery: the recorded samples, judged by the runbook’s judge with another limit', async () => {
    const check = (limit: number) =>
      prometheusQuery({
        url: prometheusUrl,
        query: 'vector(5)',
        judge: (samples) => {
          const value = samples[0]?.value ?? Number.NaN;
          return value > limit
            ? { status: 'fail', summary: `value ${value} above ${limit}` }
            : { status: 'ok', summary: `value ${value}` };
        },
      });
    const live = await observe(check(10));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.samples).toEqual([{ labels: {}, value: '5' }]);
    expect(live.observation.graph?.[0]?.points.length).toBeGreaterThan(1);
    const replayed = rejudge(live, check(10), check(1), 'fail');
    expect(replayed.summary).toBe('value 5 above 1');
    expect(replayed.evidence.map((e) => e.kind)).toEqual(['table', 'series']);
  });

  it('sampleRequest and backendMetrics: the recorded answer and samples, against other expectations', async () => {
    const request = (expectedProvider: string) =>
      sampleRequest({
        backendUrl: lab.env.backendUrl,
        agent: 'generation_agent',
        prompt: 'replay me',
        expectedProvider,
      });
    const answered = await observe(request('openrouter'));
    expect(answered.finding.status).toBe('ok');
    expect(answered.observation).toMatchObject({ httpStatus: 200, provider: 'openrouter', error: null });
    rejudge(answered, request('openrouter'), request('ollama'), 'warn');

    await generateThrough(lab.env.backendUrl, `replay ${Date.now()}`);
    const metrics = (max: number) =>
      backendMetrics(lab.env.backendUrl, (samples) => {
        const calls = metricSum(samples, 'openrouter_api_requests_total');
        return calls > max
          ? { status: 'warn', summary: `${calls} OpenRouter calls, more than ${max}` }
          : { status: 'ok', summary: `${calls} OpenRouter calls` };
      });
    const live = await observe(metrics(1e12));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.samples.length).toBeGreaterThan(0);
    rejudge(live, metrics(1e12), metrics(0), 'warn');
  });

  it('seleniumGridStatus and untilGridReady: the recorded slots, against another maxUtilization', async () => {
    const started = lab.grid.occupy(10);
    try {
      const grid = (maxUtilization: number) => seleniumGridStatus(lab.env.seleniumUrl, maxUtilization);
      const live = await observe(grid(1));
      expect(live.finding.status).toBe('ok');
      expect(live.observation.grid.sessions).toBeGreaterThanOrEqual(started);
      const busy = live.observation.grid.utilization;
      rejudge(live, grid(1), grid(busy / 2), 'warn');

      const waited = (maxUtilization: number) => untilGridReady(grid(maxUtilization), 5_000);
      const ready = await observe(waited(1));
      expect(ready.finding.status).toBe('ok');
      rejudge(ready, waited(1), waited(ready.observation.grid.utilization / 2), 'warn');
    } finally {
      lab.grid.release(started);
    }
  });

  it('queueDrain, requestRate and throttle: the recorded rate and queue, against other limits', async () => {
    const drain = (maxPerMinute: number) => queueDrain(lab.env.backendUrl, 1_000, maxPerMinute);
    const sampling = observe(drain(1e9));
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 2; i++) await generateThrough(lab.env.backendUrl, `drain ${Date.now()} ${i}`);
    const live = await sampling;
    expect(live.finding.status).toBe('ok');
    const rate = live.finding.data.requestsPerMinute ?? 0;
    expect(rate).toBeGreaterThan(0);
    rejudge(live, drain(1e9), drain(rate / 2), 'warn');

    const measured = (max: number) => requestRate(live.finding.data, max);
    const judged = await observe(measured(rate + 1));
    expect(judged.finding.status).toBe('ok');
    rejudge(judged, measured(rate + 1), measured(rate), 'warn');

    await lab.backend.reconfigure({
      OPENROUTER_QUEUE_ENABLED: 'true',
      OPENROUTER_MAX_REQUESTS_PER_MINUTE: '50',
    });
    try {
      const throttled = (max: number) => throttle(lab.env.backendUrl, max);
      const seen = await observe(throttled(50));
      expect(seen.finding.status).toBe('ok');
      expect(seen.observation).toMatchObject({ reported: true, queueEnabled: true, ratePerMinute: 50 });
      rejudge(seen, throttled(50), throttled(40), 'warn');
    } finally {
      await lab.backend.reconfigure({});
    }
  });
});

describe('database checks', () => {
  it('successRate, decisionLog and generationQuality: the recorded decisions, against other confidences', async () => {
    const since = new Date(Date.now() + 30 * 60_000).toISOString();
    // Decisions an hour ahead: the newest, and the only ones after `since`, whatever the lab's agents record.
    await lab.pool.query(
      `INSERT INTO agent_decisions (agent_id, agent_type, confidence, execution_time_ms, created_at)
       SELECT 'generation-replay', 'generation', c, 100, now() + interval '1 hour'
         FROM unnest(ARRAY[0.9, 0.8, 0.7]::float8[]) AS c`,
    );
    const rate = (minRate: number) =>
      successRate(platform, { agentType: 'generation', window: '1h', minConfidence: 0.7, minRate });
    const live = await observe(rate(0));
    expect(live.finding.status).toBe('ok');
    rejudge(live, rate(0), rate(1.01), 'warn');

    const log = (minConfidence: number) =>
      decisionLog(platform, { limit: 3, minConfidence, slowAfterMs: 60_000 });
    const logged = await observe(log(0.75));
    expect(logged.finding.data).toMatchObject({ decisions: 3, slow: 0 });
    expect(logged.finding.status).toBe('ok');
    rejudge(logged, log(0.75), log(0.85), 'fail');

    const quality = (target: number) =>
      generationQuality(platform, { since, count: 3, target, timeoutMs: 5_000 });
    const after = await observe(quality(0.8));
    expect(after.observation).toMatchObject({ decisions: 3, since });
    expect(after.finding.status).toBe('ok');
    rejudge(after, quality(0.8), quality(0.9), 'fail');
  });

  it('newExecutionsP95, queryLatency and tableCounts: the recorded figures, against other targets', async () => {
    await lab.pool.query(
      `INSERT INTO test_executions (test_id, result, started_at, finished_at, execution_time, browser, created_at)
       SELECT test_id, 'passed', now() + interval '1 hour', now() + interval '61 minutes', 100, 'chrome',
              now() + interval '1 hour'
         FROM test_cases ORDER BY test_id LIMIT 1`,
    );
    const p95 = (targetP95: number) =>
      newExecutionsP95(sqlQueryOf(platform), { targetP95, minExecutions: 1, timeoutMs: 5_000 });
    const live = await observe(p95(1e9));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.executions).toBeGreaterThanOrEqual(1);
    rejudge(live, p95(1e9), p95(0), 'fail');

    const latency = (targetMs: number) => queryLatency(platform.db, targetMs);
    const timed = await observe(latency(60_000));
    expect(timed.observation.samples).toHaveLength(5);
    rejudge(timed, latency(60_000), latency(0), 'fail');

    const counts = (expected: number) =>
      tableCounts({
        url: lab.databaseUrl,
        where: 'the lab database',
        expected: { users: expected, test_cases: expected, test_executions: expected },
        compare: 'at-least',
      });
    const counted = await observe(counts(0));
    expect(counted.finding.status).toBe('ok');
    expect(counted.observation.error).toBeNull();
    rejudge(counted, counts(0), counts(1e9), 'fail');
  });

  it('unblockedFailedLogins: the recorded failures, against another attack rate', async () => {
    await lab.pool.query(
      `INSERT INTO audit_logs (username, action, resource, ip_address, success, created_at)
       SELECT 'alice', 'login_failed', 'auth', '203.0.113.77', false, now() FROM generate_series(1, 5)`,
    );
    const check = (attackRate: number) => unblockedFailedLogins(platform, attackRate);
    const live = await observe(check(1_000_000));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.byAddress['203.0.113.77']).toBe(5);
    rejudge(live, check(1_000_000), check(2), 'fail');
  });

  it('reworded: a replayable check stays replayable, re-worded after its judgement', async () => {
    const check = (warn: number) =>
      reworded(
        platform.db.sqlCheck({ name: 'Value', sql: 'SELECT 3 AS value', thresholds: { warn } }),
        (f) => ({
          ...f,
          summary: `reworded: ${f.summary}`,
        }),
      );
    const live = await observe(check(10));
    expect(live.finding).toMatchObject({ status: 'ok', summary: 'reworded: Value: value 3' });
    const replayed = rejudge(live, check(10), check(3), 'warn');
    expect(replayed.summary).toBe('reworded: Value: value 3 (≥ warn 3)');
  });
});

describe('wrappers of SDK checks', () => {
  it('tolerant: the inner check’s observation, judged by another threshold', async () => {
    const ping = (warnAfter: number) => tolerant(platform.redis.ping({ warnAfter, failAfter: 60_000 }));
    const live = await observe(ping(30_000));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.error).toBeNull();
    rejudge(live, ping(30_000), ping(0), 'warn');
  });

  it('tolerant: a judge that throws is a fail finding, as a run() that threw was', async () => {
    const broken = tolerant(
      defineCheck({
        kind: 'test.broken-judge',
        read: async () => ({ n: 1 }),
        judge: (): Finding<null> => {
          throw new Error('bad judge\nsecond line');
        },
      }),
    );
    expect(await broken.run(stepContext())).toMatchObject({
      status: 'fail',
      summary: 'could not be read: bad judge',
    });
  });

  it('pgbouncerCheck and poolUtilization: the recorded pools, against another maxActive', async () => {
    // A client of our own through PgBouncer: at least one active client connection.
    const client = new pg.Client({ connectionString: lab.env.databaseUrl });
    await client.connect();
    try {
      await client.query('SELECT 1');
      const database = new URL(lab.env.databaseUrl).pathname.slice(1);
      const check = (maxActive: number) =>
        poolUtilization(
          pgbouncerCheck(platform.pgbouncer.pools({ database, warnAt: 1, maxWait: '1h' }), 'SHOW POOLS'),
          maxActive,
        );
      const live = await observe(check(1_000));
      expect(live.finding.status).toBe('ok');
      expect(live.observation.down).toBeNull();
      const replayed = rejudge(live, check(1_000), check(0), 'warn');
      expect(replayed.summary).toMatch(/^\d+ active client connections \(normal 10-0\), \d+ waiting: above/);
    } finally {
      await client.end();
    }
  });
});
