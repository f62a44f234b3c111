import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { hashToken } from '../../src/server/identity';
import { type PrometheusUnderTest, startPrometheus } from '../support/prometheus';
import { scaleRunbook, serverFixture } from './server-fixture';

const PROMETHEUS_DIR = fileURLToPath(new URL('../../../../deploy/prometheus/', import.meta.url));
const VIEWER_TOKEN = 'viewer-token-scrape';

interface ScrapeConfig {
  job_name: string;
  static_configs?: Array<{ targets: string[] }>;
}

/**
 * The shipped plain-host config (deploy/prometheus/prometheus-static.yml) with only what a test must change:
 * the target (this test's service), 1 s intervals, and no Alertmanager (none runs here).
 */
function shippedConfigFor(target: string): string {
  const config = parse(readFileSync(`${PROMETHEUS_DIR}prometheus-static.yml`, 'utf8')) as {
    global: Record<string, string>;
    alerting?: unknown;
    scrape_configs: ScrapeConfig[];
  };
  const job = config.scrape_configs.find((c) => c.job_name === 'runbook-service');
  if (!job?.static_configs) throw new Error('prometheus-static.yml has no static runbook-service job');
  job.static_configs = [{ targets: [target] }];
  config.global.scrape_interval = '1s';
  config.global.evaluation_interval = '1s';
  delete config.alerting;
  return stringify(config);
}

describe('a real Prometheus scraping the service with the shipped scrape config', () => {
  const service = serverFixture({
    schema: 'scrape',
    runbooks: () => [scaleRunbook()],
    tokens: [{ name: 'vera', sha256: hashToken(VIEWER_TOKEN), role: 'viewer' }],
    server: { metrics: { registry: new Registry() } },
  });
  let base: string;
  let prometheus: PrometheusUnderTest | undefined;

  beforeAll(async () => {
    base = `127.0.0.1:${service.port}`;
    prometheus = await startPrometheus(shippedConfigFor(base), {
      'runbook-service.rules.yml': readFileSync(`${PROMETHEUS_DIR}runbook-service.rules.yml`, 'utf8'),
    });
  });
  afterAll(async () => {
    await prometheus?.stop();
  });

  it('sees the service up and the runs it counted, by runbook, mode and outcome', async () => {
    const diagnose = await fetch(`http://${base}/api/v1/runbooks/scale-check/diagnose`, {
      method: 'POST',
      headers: { authorization: `Bearer ${VIEWER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { namespace: 'aiwebtest', replicas: 2 } }),
    });
    expect(diagnose.status).toBe(200);
    expect(((await diagnose.json()) as { run: { status: string } }).run.status).toBe('succeeded');

    const prom = prometheus as PrometheusUnderTest;
    const deadline = Date.now() + 30_000;
    let up: Awaited<ReturnType<PrometheusUnderTest['query']>> = [];
    let runs: typeof up = [];
    while (Date.now() < deadline) {
      up = await prom.query('up{job="runbook-service"}');
      runs = await prom.query('runbook_runs_total{job="runbook-service"}');
      if (up[0]?.value[1] === '1' && runs.length > 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(up, prom.output()).toEqual([
      {
        metric: { __name__: 'up', job: 'runbook-service', instance: base },
        value: [expect.any(Number), '1'],
      },
    ]);
    expect(runs).toEqual([
      {
        metric: {
          __name__: 'runbook_runs_total',
          job: 'runbook-service',
          instance: base,
          runbook: 'scale-check',
          mode: 'diagnose',
          outcome: 'succeeded',
        },
        value: [expect.any(Number), '1'],
      },
    ]);
    // The store-wide gauge the RunbookApprovalsPendingTooLong alert reads is scraped too.
    const pending = await prom.query('runbook_approvals_pending{job="runbook-service"}');
    expect(pending.map((s) => s.value[1])).toEqual(['0']);
  });

  it('loads the shipped alert rules, and none fires while the service is healthy', async () => {
    const prom = prometheus as PrometheusUnderTest;
    const response = await fetch(`${prom.url}/api/v1/rules`);
    const body = (await response.json()) as {
      data: {
        groups: Array<{
          name: string;
          rules: Array<{ name: string; health: string; state: string; lastEvaluation: string }>;
        }>;
      };
    };
    const group = body.data.groups.find((g) => g.name === 'runbook-service');
    expect(group?.rules.map((r) => r.name)).toEqual([
      'RunbookServiceDown',
      'RunbookServiceAbsent',
      'RunbookApprovalsPendingTooLong',
      'RunbookRunsFailing',
    ]);
    // Evaluated every second: judge them by an evaluation after `up` was scraped (the first test waited for
    // it); one from before the first scrape sees no target and rightly holds RunbookServiceAbsent pending.
    const scraped = Date.now();
    const deadline = scraped + 10_000;
    let rules = group?.rules ?? [];
    while (Date.now() < deadline && !rules.every((r) => Date.parse(r.lastEvaluation) > scraped)) {
      await new Promise((r) => setTimeout(r, 250));
      const again = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as typeof body;
      rules = again.data.groups.find((g) => g.name === 'runbook-service')?.rules ?? [];
    }
    expect(rules.map((r) => [r.name, r.health, r.state])).toEqual([
      ['RunbookServiceDown', 'ok', 'inactive'],
      ['RunbookServiceAbsent', 'ok', 'inactive'],
      ['RunbookApprovalsPendingTooLong', 'ok', 'inactive'],
      ['RunbookRunsFailing', 'ok', 'inactive'],
    ]);
  });
});
