import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkRoutedRunbooks, readServiceConfig } from '@aiwebtest/runbooks/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

// The Prometheus side of the AI-Web-Test lab (prometheus/): the manual's alerts, their promtool unit tests,
// the lab's Prometheus and Alertmanager configs and the runbook service's routing, checked with the real
// promtool, amtool, Prometheus and Alertmanager (Debian packages). A missing binary fails these tests.

const run = promisify(execFile);
const DIR = fileURLToPath(new URL('../prometheus/', import.meta.url));
const RULES = join(DIR, 'aiwebtest-rules.yml');
const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
const AMTOOL = process.env.AMTOOL ?? 'amtool';
const PROMETHEUS = process.env.PROMETHEUS ?? 'prometheus';
const ALERTMANAGER = process.env.ALERTMANAGER ?? 'prometheus-alertmanager';

/** The runbook ids of the manual's runbooks 1–13, each started by exactly one P0–P2 alert. */
const RUNBOOK_IDS = [
  'agent-failure',
  'generation-agent-failure',
  'execution-agent-failure',
  'postgres-connection-loss',
  'database-performance',
  'openrouter-outage',
  'openrouter-rate-limit',
  'api-high-latency',
  'test-execution-high-latency',
  'model-accuracy-drop',
  'data-drift',
  'security-breach',
  'system-failure',
] as const;

const INCIDENT_SEVERITIES = ['P0', 'P1', 'P2'];

/** Runs a tool; a missing binary rejects (ENOENT), which fails the test instead of skipping it. */
async function tool(program: string, args: string[], cwd = DIR): Promise<string> {
  try {
    const { stdout, stderr } = await run(program, args, { cwd, timeout: 20_000 });
    return `${stdout}${stderr}`;
  } catch (e) {
    const error = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (error.code === 'ENOENT') throw new Error(`${program} is not installed (or not on PATH)`);
    throw new Error(`${program} ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
  }
}

/**
 * Fills the `${NAME}` placeholders of a lab template. Every placeholder must be given and every value used,
 * so a renamed placeholder fails here rather than in the lab.
 */
function render(template: string, values: Record<string, string>): string {
  const found = new Set([...template.matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]));
  expect([...found].sort()).toEqual(Object.keys(values).sort());
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => values[name] as string);
}

/** A port that was free a moment ago: Prometheus and Alertmanager take a listen address, not port 0. */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** An HTTP server on a free port of 127.0.0.1; resolves with it and its `host:port`. */
async function listen(
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; hostPort: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('the server has no address');
  return { server, hostPort: `127.0.0.1:${address.port}` };
}

interface Daemon {
  child: ChildProcess;
  output(): string;
}

/** Starts a daemon and waits until `readyUrl` answers 200 (20 s at most). */
async function startDaemon(program: string, args: string[], readyUrl: string): Promise<Daemon> {
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let spawnError: Error | undefined;
  child.on('error', (e) => {
    spawnError = e;
  });
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (spawnError) throw new Error(`${program} could not start: ${spawnError.message}`);
    if (child.exitCode !== null)
      throw new Error(`${program} exited ${child.exitCode}:\n${output.slice(-2000)}`);
    const ready = await fetch(readyUrl).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { child, output: () => output };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${program} was not ready within 20 s:\n${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopDaemon(daemon: Daemon | undefined): Promise<void> {
  if (!daemon || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
  daemon.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
}

/** Polls `probe` until it returns a value (not undefined), for at most `ms`. */
async function eventually<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// What the tests read from Prometheus' and Alertmanager's APIs.
const AlertingRule = z.object({
  type: z.literal('alerting'),
  name: z.string(),
  query: z.string(),
  duration: z.number(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
});
type AlertingRule = z.infer<typeof AlertingRule>;
const RulesResponse = z.object({
  status: z.literal('success'),
  data: z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(AlertingRule) })) }),
});
const QueryResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    result: z.array(
      z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) }),
    ),
  }),
});
const TargetsResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    activeTargets: z.array(
      z.object({
        scrapePool: z.string(),
        health: z.string(),
        scrapeUrl: z.string(),
        scrapeInterval: z.string(),
      }),
    ),
  }),
});
const AmAlerts = z.array(
  z.object({
    labels: z.record(z.string(), z.string()),
    status: z.object({ state: z.string(), inhibitedBy: z.array(z.string()) }),
  }),
);
const WebhookBody = z.object({
  status: z.string(),
  alerts: z.array(z.object({ status: z.string(), labels: z.record(z.string(), z.string()) })),
});

describe('the AI-Web-Test alert rules (promtool)', () => {
  it('pass promtool check rules: thirteen incident alerts and three warnings', async () => {
    const out = await tool(PROMTOOL, ['check', 'rules', RULES]);
    expect(out).toContain('SUCCESS: 16 rules found');
  });

  it('pass their unit tests (promtool test rules): fire past the threshold after `for`, not on it, resolve', async () => {
    const out = await tool(PROMTOOL, ['test', 'rules', join(DIR, 'aiwebtest-rules.test.yml')]);
    expect(out).toContain('SUCCESS');
  });

  it('the unit tests catch a threshold that is off by the strictness of the comparison', async () => {
    // The same tests against a copy whose runbook 2 and 3 comparisons include the threshold: they must fail.
    const dir = await mkdtemp(join(tmpdir(), 'aiwebtest-rules-'));
    try {
      const rules = (await readFile(RULES, 'utf8'))
        .replace(
          'agent_confidence{agent="generation_agent"} < 0.7',
          'agent_confidence{agent="generation_agent"} <= 0.7',
        )
        .replace('test_execution_duration > 600', 'test_execution_duration >= 600');
      await writeFile(join(dir, 'aiwebtest-rules.yml'), rules);
      await writeFile(
        join(dir, 'aiwebtest-rules.test.yml'),
        await readFile(join(DIR, 'aiwebtest-rules.test.yml')),
      );
      const failure = await tool(PROMTOOL, ['test', 'rules', 'aiwebtest-rules.test.yml'], dir).then(
        () => 'passed',
        (e: Error) => e.message,
      );
      expect(failure).toContain('alertname: GenerationAgentLowConfidence');
      expect(failure).toContain('alertname: TestExecutionStuck');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// Concurrent: most of the time is waiting on scrapes, evaluations and group_wait, which can overlap.
describe.concurrent('the lab Prometheus (prometheus-lab.yml, rendered) with the rules', () => {
  let dir: string;
  let prometheus: Daemon | undefined;
  let url: string;
  let exporter: Server | undefined;
  let backend: Server | undefined;
  let rules: AlertingRule[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiwebtest-prometheus-'));
    // Stand-ins for the lab exporter (one agent down) and the backend (healthy): enough to prove the scrape
    // config, the jobs and the rules on real scraped samples.
    const lab = await listen((_req, res) => {
      res.setHeader('Content-Type', 'text/plain; version=0.0.4');
      res.end(
        'agent_health{agent="requirements_agent"} 0\nagent_health{agent="generation_agent"} 1\npg_up 1\n',
      );
    });
    exporter = lab.server;
    const api = await listen((_req, res) => {
      res.setHeader('Content-Type', 'text/plain; version=0.0.4');
      res.end('http_request_duration_p95 120\nopenrouter_api_up 1\nopenrouter_api_rate_limit_errors 0\n');
    });
    backend = api.server;
    const config = render(await readFile(join(DIR, 'prometheus-lab.yml'), 'utf8'), {
      AIWEBTEST_LAB_EXPORTER: lab.hostPort,
      AIWEBTEST_BACKEND: api.hostPort,
      // Nothing listens there: Prometheus only logs failed notifications.
      AIWEBTEST_ALERTMANAGER: `127.0.0.1:${await freePort()}`,
      AIWEBTEST_RULES_FILE: RULES,
    });
    await writeFile(join(dir, 'prometheus.yml'), config);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    prometheus = await startDaemon(
      PROMETHEUS,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      `${url}/-/ready`,
    );
    const body = RulesResponse.parse(await (await fetch(`${url}/api/v1/rules?type=alert`)).json());
    rules = body.data.groups.flatMap((g) => g.rules);
  }, 40_000);

  afterAll(async () => {
    await stopDaemon(prometheus);
    await new Promise((r) => exporter?.close(r) ?? r(undefined));
    await new Promise((r) => backend?.close(r) ?? r(undefined));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes promtool check config once rendered', async () => {
    const out = await tool(PROMTOOL, ['check', 'config', join(dir, 'prometheus.yml')]);
    expect(out).toContain('SUCCESS: 1 rule files found');
    expect(out).toContain('SUCCESS: 16 rules found');
  });

  it('puts each of the thirteen runbook ids on exactly one P0–P2 alert', () => {
    const incidents = rules.filter((r) => INCIDENT_SEVERITIES.includes(r.labels.severity ?? ''));
    expect(incidents).toHaveLength(13);
    for (const id of RUNBOOK_IDS) {
      expect(
        incidents.filter((r) => r.labels.runbook === id).map((r) => r.name),
        id,
      ).toHaveLength(1);
    }
    // The warnings forewarn of a runbook but are not its alert.
    const warnings = rules.filter((r) => r.labels.severity === 'warning').map((r) => r.name);
    expect(warnings.sort()).toEqual([
      'OpenRouterUsageHigh',
      'PgBouncerPoolSaturation',
      'SeleniumGridSaturation',
    ]);
    expect(rules).toHaveLength(16);
  });

  it('keeps the manual’s expressions and gives every alert its labels and annotations', () => {
    const byName = new Map(rules.map((r) => [r.name, r]));
    const manual: Record<string, string> = {
      AgentDown: 'agent_health{agent=~".+_agent"} == 0',
      GenerationAgentLowConfidence: 'agent_confidence{agent="generation_agent"} < 0.7',
      TestExecutionStuck: 'test_execution_duration > 600',
      PostgresDown: 'pg_up == 0',
      DatabaseSlow: 'http_request_duration_p95 > 5000',
      OpenRouterDown: 'openrouter_api_up == 0',
      OpenRouterRateLimited: 'openrouter_api_rate_limit_errors > 10',
      ApiHighLatency: 'http_request_duration_p95 > 2000',
      TestExecutionSlow: 'test_execution_duration_p95 > 300',
      ModelAccuracyLow: 'model_accuracy < 0.85',
      DataDriftDetected: 'model_data_drift_detected == 1',
      SecurityIncidentDetected: 'security_incident_detected == 1',
      SystemDown: 'system_health == 0',
    };
    for (const [name, expression] of Object.entries(manual)) {
      const rule = byName.get(name);
      expect(rule?.query, name).toContain(expression);
      expect(rule?.duration, name).toBe(30);
    }
    for (const rule of rules) {
      expect(rule.labels.namespace, rule.name).toBe('aiwebtest');
      expect(rule.annotations.runbook_url, rule.name).toBe(
        `http://127.0.0.1:8080/api/v1/runbooks/${rule.labels.runbook}`,
      );
      expect(rule.annotations.summary, rule.name).toBeTruthy();
      // A threshold's description says how far past it the value is; a 0/1 flag's value says nothing more.
      if (/[<>]/.test(rule.query)) expect(rule.annotations.description, rule.name).toContain('$value');
    }
    expect(byName.get('GenerationAgentLowConfidence')?.labels.agent).toBe('generation-agent');
    expect(byName.get('TestExecutionStuck')?.labels.agent).toBe('execution-agent');
  });

  it('scrapes the lab exporter and the backend every 5s, and turns a scraped agent_health 0 into AgentDown', async () => {
    // Service discovery hands the static targets over shortly after start.
    const targets = await eventually(
      async () => {
        const response = TargetsResponse.parse(await (await fetch(`${url}/api/v1/targets`)).json());
        return response.data.activeTargets.length >= 2 ? response.data.activeTargets : undefined;
      },
      10_000,
      'both scrape targets',
    );
    expect(targets.map((t) => [t.scrapePool, t.scrapeInterval]).sort()).toEqual([
      ['aiwebtest-backend', '5s'],
      ['aiwebtest-lab', '5s'],
    ]);
    // Pending (its `for` is 30s): the real scrape, the real rule, the agent label as a Deployment name.
    const pending = await eventually(
      async () => {
        const response = await fetch(
          `${url}/api/v1/query?query=${encodeURIComponent('ALERTS{alertname="AgentDown"}')}`,
        );
        const result = QueryResponse.parse(await response.json()).data.result;
        return result.length > 0 ? result : undefined;
      },
      20_000,
      'AgentDown to be pending',
    );
    expect(pending.map((s) => s.metric)).toEqual([
      expect.objectContaining({
        alertstate: 'pending',
        agent: 'requirements-agent',
        job: 'aiwebtest-lab',
        severity: 'P1',
        runbook: 'agent-failure',
        namespace: 'aiwebtest',
      }),
    ]);
  }, 30_000);

  it('service-lab.yaml parses as a service config and routes each incident alert to its own runbook', async () => {
    const config = readServiceConfig(join(DIR, 'service-lab.yaml'));
    expect(() => checkRoutedRunbooks(config.alerts, RUNBOOK_IDS)).not.toThrow();
    const routes = config.alerts?.routes ?? [];
    const incidents = rules.filter((r) => r.labels.severity !== 'warning');
    expect(routes.map((r) => r.match.alertname).sort()).toEqual(incidents.map((r) => r.name).sort());
    for (const route of routes) {
      const rule = incidents.find((r) => r.name === route.match.alertname);
      expect(route.runbook, route.name).toBe(rule?.labels.runbook);
      // Every label an input uses is on the alert: static on the rule, made by its expression, or carried by
      // the series (the rule's own annotations then name it, as `{{ $labels.model }}`).
      const used = [...JSON.stringify(route.input).matchAll(/\{\{\s*labels\.(\w+)\s*\}\}/g)].map(
        (m) => m[1] ?? '',
      );
      for (const label of used) {
        const made = rule?.query.includes(`label_replace(`) && rule.query.includes(`"${label}"`);
        const carried = JSON.stringify(rule?.annotations ?? {}).includes(`$labels.${label}`);
        expect(label in (rule?.labels ?? {}) || made || carried, `${route.name}: labels.${label}`).toBe(true);
      }
    }
    // Destructive or disruptive recoveries wait for a person; reversible ones run.
    expect(Object.fromEntries(routes.map((r) => [r.runbook, r.mode]))).toEqual({
      'agent-failure': 'execute',
      'generation-agent-failure': 'ask',
      'execution-agent-failure': 'ask',
      'postgres-connection-loss': 'ask',
      'database-performance': 'ask',
      'openrouter-outage': 'execute',
      'openrouter-rate-limit': 'execute',
      'api-high-latency': 'execute',
      'test-execution-high-latency': 'execute',
      'model-accuracy-drop': 'execute',
      'data-drift': 'execute',
      'security-breach': 'execute',
      'system-failure': 'ask',
    });
  });
});

// Concurrent like the Prometheus tests: the time is Alertmanager's group_wait.
describe.concurrent('the lab Alertmanager (alertmanager-lab.yml, rendered)', () => {
  let dir: string;
  let alertmanager: Daemon | undefined;
  let webhook: Server | undefined;
  const received: Array<{ url: string | undefined; headers: IncomingHttpHeaders; body: string }> = [];
  const TOKEN = 'lab-alertmanager-token-for-tests';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiwebtest-alertmanager-'));
    const service = await listen((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        received.push({ url: req.url, headers: req.headers, body });
        res.setHeader('Content-Type', 'application/json');
        res.end('{}');
      });
    });
    webhook = service.server;
    await writeFile(join(dir, 'token'), TOKEN, { mode: 0o600 });
    await writeFile(
      join(dir, 'alertmanager.yml'),
      render(await readFile(join(DIR, 'alertmanager-lab.yml'), 'utf8'), {
        RUNBOOK_SERVICE_URL: `http://${service.hostPort}`,
        RUNBOOK_ALERTMANAGER_TOKEN_FILE: join(dir, 'token'),
      }),
    );
  });

  afterAll(async () => {
    await stopDaemon(alertmanager);
    await new Promise((r) => webhook?.close(r) ?? r(undefined));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes amtool check-config once rendered', async () => {
    const out = await tool(AMTOOL, ['check-config', join(dir, 'alertmanager.yml')]);
    expect(out).toContain('SUCCESS');
    expect(out).toContain('2 inhibit rules');
  });

  it('sends alerts to the runbook webhook with the token, and mutes ApiHighLatency while DatabaseSlow fires', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    alertmanager = await startDaemon(
      ALERTMANAGER,
      [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        // One Alertmanager, no gossip: nothing else listening on the cluster port.
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      `${url}/-/ready`,
    );
    const latency = { namespace: 'aiwebtest', job: 'aiwebtest-backend', instance: 'backend' };
    const alerts = [
      { labels: { alertname: 'DatabaseSlow', severity: 'P2', runbook: 'database-performance', ...latency } },
      { labels: { alertname: 'ApiHighLatency', severity: 'P2', runbook: 'api-high-latency', ...latency } },
      {
        labels: {
          alertname: 'AgentDown',
          severity: 'P1',
          runbook: 'agent-failure',
          agent: 'requirements-agent',
          namespace: 'aiwebtest',
        },
      },
    ].map((a) => ({
      ...a,
      annotations: { summary: a.labels.alertname },
      startsAt: new Date().toISOString(),
    }));
    const posted = await fetch(`${url}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(alerts),
    });
    expect(posted.status).toBe(200);

    // group_wait is 5s: both uninhibited groups are notified shortly after.
    const notified = await eventually(
      async () => {
        const names = received.flatMap((r) =>
          WebhookBody.parse(JSON.parse(r.body)).alerts.map((a) => a.labels.alertname),
        );
        return names.includes('DatabaseSlow') && names.includes('AgentDown') ? names : undefined;
      },
      15_000,
      'the webhook to receive DatabaseSlow and AgentDown',
    );
    const state = AmAlerts.parse(await (await fetch(`${url}/api/v2/alerts`)).json());
    const api = state.find((a) => a.labels.alertname === 'ApiHighLatency');
    expect(api?.status.state).toBe('suppressed');
    expect(api?.status.inhibitedBy).toHaveLength(1);
    expect(notified).not.toContain('ApiHighLatency');
    for (const request of received) {
      expect(request.url).toBe('/api/v1/alerts/alertmanager');
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    }
  }, 30_000);
});
