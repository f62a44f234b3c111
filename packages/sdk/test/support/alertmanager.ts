import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import type { AlertRouting } from '../../src/server/alert-routing';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { Role, ServerOptions } from '../../src/server/options';
import { openStore } from '../../src/store/open-store';
import type { RunStore } from '../../src/store/run-store';
import { listen } from '../server/http-client';
import { freePort } from './postgres-cluster';
import { POSTGRES_URL } from './stores';

/** The Debian package's Alertmanager. Tests that need it fail when it is missing. */
export const ALERTMANAGER_BIN = process.env.RUNBOOK_TEST_ALERTMANAGER ?? '/usr/bin/prometheus-alertmanager';
/** The sample config the tests prove (deploy/alertmanager/alertmanager.yml). */
export const SAMPLE_CONFIG = new URL('../../../../deploy/alertmanager/alertmanager.yml', import.meta.url);
const SAMPLE_URL = 'http://runbook-service.aiwebtest.svc:8080/api/v1/alerts/alertmanager';
const SAMPLE_CREDENTIALS = '/etc/alertmanager/secrets/runbook-service-token/token';

/**
 * Bearer tokens of the webhook tests: `am` is what Alertmanager posts with (an Alertmanager token, editor),
 * `amViewer` an Alertmanager token granted only viewer, `grafana` the Grafana app's token (admin); the
 * others are personal tokens.
 */
export const ALERT_TOKENS = {
  vera: 'alerts-viewer-vera',
  erin: 'alerts-editor-erin',
  ada: 'alerts-admin-ada',
  am: 'alerts-editor-am',
  amViewer: 'alerts-viewer-am',
  grafana: 'alerts-grafana-app',
};
const GRANTS: Record<keyof typeof ALERT_TOKENS, { role: Role; alertmanager?: true; grafana?: true }> = {
  vera: { role: 'viewer' },
  erin: { role: 'editor' },
  ada: { role: 'admin' },
  am: { role: 'editor', alertmanager: true },
  amViewer: { role: 'viewer', alertmanager: true },
  grafana: { role: 'admin', grafana: true },
};

const AgentInput = z.object({
  agent: z.string().regex(/^[a-z_]+$/, 'must be an agent name (lowercase letters and "_")'),
  namespace: z.string().min(1),
});

/** Runbooks routed from alerts: a diagnosis (checks only) and a restart (needs editor to execute). */
export function alertRunbooks() {
  const pods = (agent: string) =>
    defineCheck({
      kind: 'test.pods',
      run: async () => finding('fail', `${agent} has no ready pod`, { ready: 0 }),
    });
  return [
    defineRunbook({
      id: 'agent-diagnose',
      title: 'Diagnose an agent',
      severity: 'P2',
      input: AgentInput,
      async run({ input, step }) {
        await step.check('pods', pods(input.agent));
      },
    }),
    defineRunbook({
      id: 'agent-restart',
      title: 'Restart an agent',
      severity: 'P1',
      input: AgentInput,
      async run({ input, step }) {
        await step.check('pods', pods(input.agent));
      },
    }),
  ];
}

/** Critical AgentDown of an `_agent`: restart with approval; any other AgentDown: diagnose. */
export const ALERT_ROUTING: AlertRouting = {
  routes: [
    {
      name: 'agent-down-critical',
      match: { alertname: 'AgentDown', severity: 'critical' },
      matchRegex: { agent: '.*_agent' },
      runbook: 'agent-restart',
      input: { agent: '{{ labels.agent }}', namespace: 'aiwebtest' },
      mode: 'ask',
    },
    {
      name: 'agent-down',
      match: { alertname: 'AgentDown' },
      runbook: 'agent-diagnose',
      input: { agent: '{{labels.agent}}', namespace: 'aiwebtest' },
      mode: 'diagnose',
    },
  ],
};

/**
 * A service with the alert runbooks and routing over a PostgreSQL store schema, listening on a free port;
 * `options` for createServer (the body limits, …).
 */
export async function alertService(
  schema: string,
  routing: AlertRouting = ALERT_ROUTING,
  options: Omit<ServerOptions, 'engine' | 'alerts' | 'tokens'> = {},
) {
  const store: RunStore = await openStore({ url: POSTGRES_URL, schema });
  const engine = new Engine({ store, runbooks: alertRunbooks() });
  let app: FastifyInstance | undefined;
  try {
    app = createServer({
      engine,
      alerts: routing,
      ...options,
      tokens: Object.entries(ALERT_TOKENS).map(([name, token]) => ({
        name,
        sha256: hashToken(token),
        ...GRANTS[name as keyof typeof ALERT_TOKENS],
      })),
    });
    const client = await listen(app);
    const server = app;
    return {
      engine,
      store,
      ...client,
      async close() {
        await server.close();
        await store.close();
      },
    };
  } catch (e) {
    await app?.close();
    await store.close();
    throw e;
  }
}

/** A running Alertmanager of a test's own. */
export interface TestAlertmanager {
  url: string;
  /** `POST /api/v2/alerts`: what Prometheus does when a rule fires or resolves. */
  postAlerts(alerts: unknown[]): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the real Alertmanager with the sample config, where only the webhook URL, the credentials file and
 * the timings (so that a test takes seconds, not minutes) are replaced. No clustering; its own storage dir.
 */
export async function startAlertmanager(options: {
  webhookUrl: string;
  token: string;
}): Promise<TestAlertmanager> {
  if (!existsSync(ALERTMANAGER_BIN)) {
    throw new Error(`${ALERTMANAGER_BIN} is missing: install the prometheus-alertmanager Debian package.`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'runbook-alertmanager-'));
  const credentials = join(dir, 'token');
  writeFileSync(credentials, options.token, { mode: 0o600 });
  const replace = (text: string, from: string | RegExp, to: string) => {
    const out = text.replaceAll(from, to);
    if (out === text) throw new Error(`the sample config no longer has ${String(from)}; update the test`);
    return out;
  };
  let config = readFileSync(SAMPLE_CONFIG, 'utf8');
  config = replace(config, SAMPLE_URL, options.webhookUrl);
  config = replace(config, SAMPLE_CREDENTIALS, credentials);
  config = replace(config, /group_wait: \d+[smh]/g, 'group_wait: 1s');
  config = replace(config, /group_interval: \d+[smh]/g, 'group_interval: 1s');
  const configFile = join(dir, 'alertmanager.yml');
  writeFileSync(configFile, config);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    ALERTMANAGER_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`Alertmanager did not become ready:\n${output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    async postAlerts(alerts) {
      const response = await fetch(`${url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
      });
      if (!response.ok)
        throw new Error(`Alertmanager refused the alerts: ${response.status} ${await response.text()}`);
    },
    stop,
  };
}

/** Polls `probe` until it returns a value, or fails after `timeoutMs` saying what it waited for. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
