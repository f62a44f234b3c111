import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/server/identity';
import { readState, writeFixtureState } from './fixtures/runbooks';
import { FIXTURE_MODULE, tempDir } from './harness';

// `runbook serve` as operators run it: the real entry (main.ts, its signal handling and exit code) in a
// child process through tsx, over real HTTP, with an embedded store in a temporary directory.
const sdk = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(sdk, 'node_modules', '.bin', 'tsx');
const main = join(sdk, 'src', 'cli', 'main.ts');
const dir = tempDir('serve');
afterAll(() => dir.dispose());

const TOKEN = 'serve-test-admin-token';

interface Child {
  process: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(tsx, [main, 'serve', ...args], {
    cwd: sdk,
    env: { ...process.env, RUNBOOK_ACTOR: 'ci', RUNBOOK_MODULES: FIXTURE_MODULE, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  return { process: child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Waits for the "listening on <url>" line and returns the base URL. */
async function listening(child: Child, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void child.exited.then((c) => (exitCode = c));
  while (Date.now() < deadline) {
    const match = /runbook service listening on (http:\/\/\S+)/.exec(child.stdout());
    if (match?.[1]) return match[1];
    if (exitCode !== undefined) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not listening (exit ${exitCode}):\n${child.stdout()}\n${child.stderr()}`);
}

async function call(base: string, method: string, path: string, body?: unknown, token = TOKEN) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON bodies loosely
  return { status: response.status, body: (await response.json()) as any };
}

function tokensFile(name: string, content: unknown): string {
  const path = join(dir.path, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('runbook serve', () => {
  it('serves the API with tokens, executes queued runs in its worker, and shuts down on SIGTERM', async () => {
    const tokens = tokensFile('tokens.json', {
      tokens: [{ name: 'ci-bot', sha256: hashToken(TOKEN), role: 'admin' }],
    });
    const stateFile = join(dir.path, 'state.json');
    writeFixtureState(stateFile, { replicas: 1, ready: 1 });
    const child = start(['--port', '0', '--data-dir', join(dir.path, 'store')], {
      RUNBOOK_TOKENS_FILE: tokens,
    });
    try {
      const base = await listening(child);
      expect(child.stdout()).toContain(`(OpenAPI: ${base}/api/v1/openapi.json)`);

      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });

      const unauthenticated = await call(base, 'GET', '/api/v1/runbooks', undefined, 'wrong-token');
      expect(unauthenticated.status).toBe(401);
      const catalog = await call(base, 'GET', '/api/v1/runbooks');
      expect(catalog.status).toBe(200);
      expect(catalog.body.runbooks.map((r: { id: string }) => r.id).sort()).toEqual([
        'purge-cache',
        'scale-service',
      ]);

      const started = await call(base, 'POST', '/api/v1/runs', {
        runbookId: 'scale-service',
        mode: 'execute',
        input: { stateFile, replicas: 3 },
      });
      expect(started.status).toBe(202);
      const runId: string = started.body.runId;
      let status = '';
      for (let i = 0; i < 100 && status !== 'succeeded'; i++) {
        const run = await call(base, 'GET', `/api/v1/runs/${runId}`);
        expect(run.status).toBe(200);
        status = run.body.run.status;
        if (['failed', 'cancelled', 'escalated'].includes(status)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(status).toBe('succeeded');
      expect(readState(stateFile).replicas).toBe(3);
      // One readable line per request, naming it and its status.
      expect(child.stdout()).toMatch(/INFO {2}GET \/api\/v1\/runbooks 200 /);

      child.process.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      expect(child.stdout()).toContain('stopped');
      await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    } finally {
      child.process.kill('SIGKILL');
    }
  }, 120_000);

  it('refuses to start without tokens (usage error, nothing opened)', async () => {
    const child = start(['--port', '0', '--data-dir', join(dir.path, 'no-tokens-store')]);
    expect(await child.exited).toBe(2);
    expect(child.stderr()).toContain('No tokens: the service never runs without authentication');
    expect(child.stderr()).toContain('--tokens-file');
    expect(child.stdout()).not.toContain('listening');
    expect(existsSync(join(dir.path, 'no-tokens-store'))).toBe(false);
  }, 60_000);

  it('refuses a tokens file with bad fields, naming each field', async () => {
    const bad = tokensFile('bad-tokens.json', {
      tokens: [{ name: 'ci', sha256: 'not-a-hash', role: 'root' }],
    });
    const child = start(['--port', '0', '--tokens-file', bad, '--data-dir', join(dir.path, 'bad-store')]);
    expect(await child.exited).toBe(2);
    expect(child.stderr()).toContain(`error: Invalid tokens file ${bad}:`);
    expect(child.stderr()).toContain('tokens.0.sha256: must be the SHA-256 of the token as 64 hex digits');
    expect(child.stderr()).toContain('tokens.0.role:');
  }, 60_000);

  it('refuses a bad --lease-ttl, --poll-interval or --shutdown-grace with exit 2 naming the flag, before opening the store', async () => {
    const tokens = tokensFile('timing-tokens.json', {
      tokens: [{ name: 'ci-bot', sha256: hashToken(TOKEN), role: 'admin' }],
    });
    const store = join(dir.path, 'timing-store');
    const cases: [string[], RegExp][] = [
      [
        ['--lease-ttl', '30'],
        /option '--lease-ttl <duration>' argument '30' is invalid\. expected a duration such as "500ms", "30s"/,
      ],
      [
        ['--lease-ttl', '100ms'],
        /option '--lease-ttl <duration>' argument '100ms' is invalid\. expected a duration from 1s to 1h/,
      ],
      [['--poll-interval', 'soon'], /option '--poll-interval <duration>' argument 'soon' is invalid/],
      [['--shutdown-grace', '-5s'], /option '--shutdown-grace <duration>' argument '-5s' is invalid/],
    ];
    const children = cases.map(([args]) =>
      start(['--port', '0', '--data-dir', store, ...args], { RUNBOOK_TOKENS_FILE: tokens }),
    );
    for (const [i, child] of children.entries()) {
      expect(await child.exited).toBe(2);
      expect(child.stderr()).toMatch((cases[i] as [string[], RegExp])[1]);
      expect(child.stdout()).not.toContain('listening');
    }
    expect(existsSync(store)).toBe(false);
  }, 60_000);

  it("refuses a token that is both the Grafana app's and Alertmanager's, naming the field", async () => {
    const both = start([
      '--tokens-file',
      tokensFile('both-kinds.json', {
        tokens: [{ name: 'am', sha256: hashToken(TOKEN), role: 'editor', grafana: true, alertmanager: true }],
      }),
      '--data-dir',
      join(dir.path, 'both-kinds-store'),
    ]);
    expect(await both.exited).toBe(2);
    expect(both.stderr()).toContain('tokens.0.alertmanager: cannot be true together with "grafana": true');
    expect(existsSync(join(dir.path, 'both-kinds-store'))).toBe(false);
  });

  it('refuses an empty token list, a plain token, and a file that is not JSON', async () => {
    const empty = start(['--tokens-file', tokensFile('empty.json', { tokens: [] })]);
    expect(await empty.exited).toBe(2);
    expect(empty.stderr()).toContain('tokens: must list at least one token');

    const plain = start([
      '--tokens-file',
      tokensFile('plain.json', { tokens: [{ name: 'ci', token: 'secret', role: 'admin' }] }),
    ]);
    expect(await plain.exited).toBe(2);
    expect(plain.stderr()).toContain('tokens.0.sha256:');
    expect(plain.stderr()).toMatch(/tokens\.0: Unrecognized key: "token"/);

    const notJson = start(['--tokens-file', tokensFile('broken.json', '{tokens: [')]);
    expect(await notJson.exited).toBe(2);
    expect(notJson.stderr()).toMatch(/error: The tokens file .*broken\.json is not JSON/);
  }, 60_000);
});

describe('runbook serve with the Grafana app token', () => {
  const GRAFANA_TOKEN = 'serve-test-grafana-app-token';

  it('accepts "grafana": true in the tokens file: the token is valid only with X-Grafana-Context', async () => {
    const bad = start([
      '--tokens-file',
      tokensFile('bad-grafana.json', {
        tokens: [{ name: 'grafana', sha256: hashToken(GRAFANA_TOKEN), role: 'editor', grafana: 'yes' }],
      }),
    ]);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('tokens.0.grafana:');

    const tokens = tokensFile('grafana-tokens.json', {
      tokens: [
        { name: 'ci-bot', sha256: hashToken(TOKEN), role: 'admin' },
        { name: 'grafana', sha256: hashToken(GRAFANA_TOKEN), role: 'editor', grafana: true },
      ],
    });
    const stateFile = join(dir.path, 'grafana-state.json');
    writeFixtureState(stateFile);
    const child = start(['--port', '0', '--data-dir', join(dir.path, 'grafana-store')], {
      RUNBOOK_TOKENS_FILE: tokens,
    });
    try {
      const base = await listening(child);
      const asGrafana = (headers: Record<string, string>) =>
        fetch(`${base}/api/v1/runs`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${GRAFANA_TOKEN}`,
            'content-type': 'application/json',
            ...headers,
          },
          body: JSON.stringify({ runbookId: 'purge-cache', mode: 'plan', input: { stateFile } }),
        });
      const without = await asGrafana({});
      expect(without.status).toBe(401);
      expect(((await without.json()) as { error: { code: string } }).error.code).toBe(
        'GRAFANA_CONTEXT_REQUIRED',
      );

      const context = JSON.stringify({
        UserID: 7,
        Login: 'grace',
        OrgID: 1,
        OrgRole: 'Admin',
        OrgName: 'Main',
      });
      const planned = await asGrafana({ 'x-grafana-context': context });
      const body = (await planned.json()) as { run?: { requestedBy: string } };
      expect(planned.status, JSON.stringify(body)).toBe(200);
      expect(body.run?.requestedBy).toBe('grace');
      child.process.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    } finally {
      child.process.kill('SIGKILL');
    }
  }, 120_000);
});

describe('runbook serve --config', () => {
  // Alertmanager's webhook takes only an Alertmanager token ("alertmanager": true).
  const AM_TOKEN = 'serve-test-alertmanager-token';
  const admin = () =>
    tokensFile('config-tokens.json', {
      tokens: [
        { name: 'ci-bot', sha256: hashToken(TOKEN), role: 'admin' },
        { name: 'alertmanager', sha256: hashToken(AM_TOKEN), role: 'editor', alertmanager: true },
      ],
    });

  it('refuses a bad service config with exit 2, naming each field, before opening the store', async () => {
    const bad = join(dir.path, 'bad-service.yaml');
    writeFileSync(
      bad,
      [
        'alerts:',
        '  routes:',
        '    - name: Checkout Degraded',
        '      runbook: purge-cache',
        '      mode: yolo',
        '      input: { stateFile: "{{ env.HOME }}" }',
        'runbookRole: {}',
      ].join('\n'),
    );
    const child = start(['--port', '0', '--config', bad, '--data-dir', join(dir.path, 'bad-config-store')], {
      RUNBOOK_TOKENS_FILE: admin(),
    });
    expect(await child.exited).toBe(2);
    expect(child.stderr()).toContain(`error: Invalid service config ${bad}:`);
    expect(child.stderr()).toContain(
      'alerts.routes.0.name: must be 1 to 63 lowercase letters, digits or "-"',
    );
    expect(child.stderr()).toContain('alerts.routes.0.mode:');
    expect(child.stderr()).toContain(
      'alerts.routes.0.input.stateFile: {{ env.HOME }} is not a known placeholder',
    );
    expect(child.stderr()).toContain('  runbookRole: unknown key; check its spelling');

    const unknownRunbook = join(dir.path, 'unknown-runbook.yaml');
    writeFileSync(
      unknownRunbook,
      'alerts:\n  routes:\n    - { name: checkout, runbook: restart-checkout }\n',
    );
    const second = start(['--port', '0', '--data-dir', join(dir.path, 'bad-config-store')], {
      RUNBOOK_TOKENS_FILE: admin(),
      RUNBOOK_SERVICE_CONFIG: unknownRunbook,
    });
    expect(await second.exited).toBe(2);
    expect(second.stderr()).toContain('alerts.routes.0.runbook: no runbook "restart-checkout" is loaded');
    expect(existsSync(join(dir.path, 'bad-config-store'))).toBe(false);
  }, 60_000);

  it('routes an Alertmanager notification to a run with a good config', async () => {
    const stateFile = join(dir.path, 'alert-state.json');
    writeFixtureState(stateFile, { replicas: 1, ready: 1 });
    const config = join(dir.path, 'service.yaml');
    writeFileSync(
      config,
      [
        'runbookRoles:',
        '  purge-cache: { diagnose: editor }',
        'alerts:',
        '  routes:',
        '    - name: checkout-degraded',
        '      match: { alertname: CheckoutDegraded }',
        '      runbook: purge-cache',
        '      input: { stateFile: "{{ annotations.state_file }}" }',
        '      mode: diagnose',
      ].join('\n'),
    );
    const child = start(['--port', '0', '--config', config, '--data-dir', join(dir.path, 'config-store')], {
      RUNBOOK_TOKENS_FILE: admin(),
    });
    try {
      const base = await listening(child);
      const posted = await call(
        base,
        'POST',
        '/api/v1/alerts/alertmanager',
        {
          version: '4',
          groupKey: '{}:{alertname="CheckoutDegraded"}',
          status: 'firing',
          receiver: 'runbooks',
          externalURL: 'http://alertmanager:9093',
          alerts: [
            {
              status: 'firing',
              labels: { alertname: 'CheckoutDegraded' },
              annotations: { state_file: stateFile },
              startsAt: '2026-11-27T10:00:00Z',
              endsAt: '0001-01-01T00:00:00Z',
              generatorURL: '',
              fingerprint: 'c0ffee',
            },
          ],
        },
        AM_TOKEN,
      );
      expect(posted.status).toBe(200);
      expect(posted.body.runs).toEqual([
        { fingerprint: 'c0ffee', route: 'checkout-degraded', runId: expect.any(String), created: true },
      ]);
      const runId: string = posted.body.runs[0].runId;
      const alerts = await call(base, 'GET', '/api/v1/alerts');
      expect(alerts.body.alerts).toEqual([expect.objectContaining({ fingerprint: 'c0ffee', runId })]);
      let run = await call(base, 'GET', `/api/v1/runs/${runId}`);
      for (let i = 0; i < 100 && run.body.run.status === 'queued'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        run = await call(base, 'GET', `/api/v1/runs/${runId}`);
      }
      // The worker ran the diagnosis: the run's steps are the alert's diagnosis.
      expect(run.body.run).toMatchObject({
        runbookId: 'purge-cache',
        mode: 'diagnose',
        requestedBy: 'alertmanager',
        status: 'succeeded',
      });
      expect(run.body.steps.map((s: { name: string }) => s.name)).toContain('status');
      child.process.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    } finally {
      child.process.kill('SIGKILL');
    }
  }, 120_000);
});
