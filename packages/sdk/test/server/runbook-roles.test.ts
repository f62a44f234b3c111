import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../src/core/errors';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { ServerOptions } from '../../src/server/options';
import { FIXTURE_MODULE, tempDir } from '../cli/harness';
import { fixRunbook, World } from '../support/runbooks';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { listen } from './http-client';

const TOKENS = { vera: 'roles-viewer-vera', erin: 'roles-editor-erin', ada: 'roles-admin-ada' } as const;
const GRANTS: ServerOptions['tokens'] = [
  { name: 'vera', sha256: hashToken(TOKENS.vera), role: 'viewer' },
  { name: 'erin', sha256: hashToken(TOKENS.erin), role: 'editor' },
  { name: 'ada', sha256: hashToken(TOKENS.ada), role: 'admin' },
];

describe('runbookRoles', () => {
  let sut: StoreUnderTest;
  let engine: Engine;
  let app: FastifyInstance | undefined;
  let client: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('roles'));
    const world = new World();
    engine = new Engine({
      store: sut.store,
      leaseTtl: '5s',
      runbooks: [fixRunbook(world, 'fix-low'), fixRunbook(world, 'fix-high', { risk: 'high' })],
    });
    app = createServer({
      engine,
      tokens: GRANTS,
      // fix-high: only admins execute it; fix-low: viewers may plan it.
      runbookRoles: { 'fix-high': { execute: 'admin' }, 'fix-low': { plan: 'viewer' } },
    });
    client = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sut?.dispose();
  });

  it('createServer refuses a key naming no loaded runbook, naming the key and the loaded runbooks', () => {
    let thrown: unknown;
    try {
      createServer({ engine, tokens: GRANTS, runbookRoles: { 'fix-hihg': { execute: 'admin' } } });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InputValidationError);
    const error = thrown as InputValidationError;
    expect(error.issues).toEqual([
      {
        path: 'runbookRoles.fix-hihg',
        message: expect.stringContaining('no runbook "fix-hihg" is loaded'),
      },
    ]);
    expect(error.message).toContain('loaded: fix-high, fix-low');
  });

  async function runsOf(runbookId: string) {
    return (await sut.store.listRuns({ runbookId, limit: 100 })).map((r) => [r.mode, r.requestedBy]);
  }

  it('an override really raises the role needed: an editor cannot execute fix-high, an admin can', async () => {
    const body = { runbookId: 'fix-high', mode: 'execute', input: { key: 'roles-a', value: 'v' } };
    const refused = await client.call('POST', '/api/v1/runs', { token: TOKENS.erin, body });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('admin');
    expect(await runsOf('fix-high')).toEqual([]);

    const accepted = await client.call('POST', '/api/v1/runs', { token: TOKENS.ada, body });
    expect(accepted.status).toBe(202);
    expect(await runsOf('fix-high')).toEqual([['execute', 'ada']]);
    // Other modes of fix-high keep their defaults: an editor still plans it.
    const planned = await client.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { ...body, mode: 'plan' },
    });
    expect(planned.status).toBe(200);
  });

  it('an override really lowers the role needed: a viewer may plan fix-low, not fix-high', async () => {
    const plan = (runbookId: string) =>
      client.call('POST', '/api/v1/runs', {
        token: TOKENS.vera,
        body: { runbookId, mode: 'plan', input: { key: 'roles-b', value: 'v' } },
      });
    const low = await plan('fix-low');
    expect(low.status).toBe(200);
    expect(low.body).toMatchObject({ run: { runbookId: 'fix-low', mode: 'plan', requestedBy: 'vera' } });
    const high = await plan('fix-high');
    expect(high.status).toBe(403);
    expect(await runsOf('fix-low')).toEqual([['plan', 'vera']]);
    expect((await runsOf('fix-high')).filter(([, by]) => by === 'vera')).toEqual([]);
  });
});

// `runbook serve` as operators run it (as in test/cli/serve.test.ts): the real entry in a child process.
const sdk = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(sdk, 'node_modules', '.bin', 'tsx');
const main = join(sdk, 'src', 'cli', 'main.ts');

describe('runbook serve --config with runbookRoles', () => {
  const dir = tempDir('roles');
  afterAll(() => dir.dispose());

  it('exits 2 naming a key that is no loaded runbook, before opening the store', async () => {
    const tokens = join(dir.path, 'tokens.json');
    writeFileSync(
      tokens,
      JSON.stringify({ tokens: [{ name: 'ci-bot', sha256: hashToken('roles-cli-token'), role: 'admin' }] }),
    );
    const config = join(dir.path, 'service.yaml');
    writeFileSync(config, 'runbookRoles:\n  purge-cahce: { execute: admin }\n');
    const store = join(dir.path, 'store');
    const child = spawn(
      tsx,
      [main, 'serve', '--port', '0', '--config', config, '--tokens-file', tokens, '--data-dir', store],
      {
        cwd: sdk,
        env: { ...process.env, RUNBOOK_ACTOR: 'ci', RUNBOOK_MODULES: FIXTURE_MODULE },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    clearTimeout(timer);
    expect(code).toBe(2);
    expect(stderr).toContain(
      'runbookRoles.purge-cahce: no runbook "purge-cahce" is loaded, so its roles would apply to nothing; loaded: purge-cache, scale-service',
    );
    expect(stdout).not.toContain('listening');
    expect(existsSync(store)).toBe(false);
  }, 90_000);
});
