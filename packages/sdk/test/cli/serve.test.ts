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
