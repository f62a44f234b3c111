/**
 * Starts a real runbook service for the e2e tests: the built SDK CLI (`packages/sdk/dist/cli/main.js
 * serve`) as a child process on 127.0.0.1 port 0, the embedded store in a temp dir, the component tests'
 * runbooks (src/test/runbooks.mjs) and a tokens file with the Grafana app's token and an admin token.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The built CLI; `pnpm --filter @aiwebtest/runbooks build` makes it. */
export const CLI = join(packageDir, '..', 'sdk', 'dist', 'cli', 'main.js');
/** The runbooks module the service loads by default: the component tests' three. */
export const RUNBOOKS_MODULE = join(packageDir, 'src', 'test', 'runbooks.mjs');
/** Those three and the browser tests' own (a destructive `purge-queue`). */
export const BROWSER_RUNBOOKS_MODULE = join(packageDir, 'e2e', 'runbooks.mjs');

/** A running service. */
export interface RunbookService {
  url: string;
  /** The `"grafana": true` token (role admin, so the Grafana org role decides). */
  grafanaToken: string;
  /** A personal admin token, for a test to read the store through the API. */
  adminToken: string;
  /** The test runbooks' world (JSON), which applied plans change: read it to see their effect. */
  worldFile: string;
  /** `GET /api/v1/<path>` with the admin token; throws on a non-2xx answer. */
  get<T>(path: string): Promise<T>;
  /** `POST /api/v1/<path>` with the admin token and a JSON body; throws on a non-2xx answer. */
  post<T>(path: string, body: unknown): Promise<T>;
  stop(): Promise<void>;
}

const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');

/** Starts `runbook serve`; fails with the child's output if it is not listening within 90 s (the e2e files share 2 cores with other work: start-up alone can take a minute then). */
export async function startService(options: { runbooksModule?: string } = {}): Promise<RunbookService> {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: build the SDK first (cd packages/sdk && pnpm build)`);
  const dir = mkdtempSync(join(tmpdir(), 'runbooks-app-e2e-'));
  const grafanaToken = randomBytes(32).toString('hex');
  const adminToken = randomBytes(32).toString('hex');
  const tokensFile = join(dir, 'tokens.json');
  const worldFile = join(dir, 'world.json');
  writeFileSync(
    tokensFile,
    JSON.stringify({
      tokens: [
        { name: 'grafana', sha256: sha256(grafanaToken), role: 'admin', grafana: true },
        { name: 'e2e-admin', sha256: sha256(adminToken), role: 'admin' },
      ],
    }),
  );
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--runbooks',
      options.runbooksModule ?? RUNBOOKS_MODULE,
      '--data-dir',
      join(dir, 'store'),
      '--port',
      '0',
    ],
    {
      cwd: packageDir,
      env: {
        ...process.env,
        RUNBOOK_TOKENS_FILE: tokensFile,
        RUNBOOK_TEST_WORLD: worldFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));

  const cleanup = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 90_000;
  for (;;) {
    const match = /runbook service listening on (http:\/\/\S+)/.exec(output);
    if (match?.[1]) {
      const url = match[1].replace(/\/$/, '');
      const get = async <T>(path: string): Promise<T> => {
        const response = await fetch(`${url}/api/v1/${path}`, {
          headers: { authorization: `Bearer ${adminToken}` },
        });
        if (!response.ok) throw new Error(`GET /api/v1/${path}: ${response.status} ${await response.text()}`);
        return (await response.json()) as T;
      };
      const post = async <T>(path: string, body: unknown): Promise<T> => {
        const response = await fetch(`${url}/api/v1/${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (!response.ok)
          throw new Error(`POST /api/v1/${path}: ${response.status} ${await response.text()}`);
        return (await response.json()) as T;
      };
      return { url, grafanaToken, adminToken, worldFile, get, post, stop: cleanup };
    }
    if (gone || Date.now() > deadline) {
      await cleanup();
      throw new Error(`runbook serve did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
