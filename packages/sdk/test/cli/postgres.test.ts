import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/run-cli';
import { readState, writeFixtureState } from './fixtures/runbooks';
import { cli, FIXTURE_MODULE, tempDir } from './harness';

// The same CLI against PostgreSQL (RUNBOOK_DATABASE_URL), in a schema of its own that is dropped afterwards.
const url = process.env.RUNBOOK_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `cli_test_${process.pid}_${Date.now().toString(36)}`;
const dir = tempDir('postgres');
const env = { RUNBOOK_DATABASE_URL: url, RUNBOOK_STORE_SCHEMA: schema, RUNBOOK_MODULES: FIXTURE_MODULE };

afterAll(async () => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
  dir.dispose();
});

describe('with a PostgreSQL store', () => {
  it('runs, approves and lists runs in the configured schema', async () => {
    const stateFile = join(dir.path, 'state.json');
    writeFixtureState(stateFile, { cache: ['x'] });
    const waiting = await cli(
      ['run', 'purge-cache', '--yes', '--json', '--input', `stateFile=${stateFile}`],
      { env },
    );
    expect(waiting.stderr).toBe('');
    expect(waiting.code).toBe(ExitCode.WaitingApproval);
    const id = waiting.json().run.id;
    const approved = await cli(['approve', id, '--as', 'bob', '--yes'], { env });
    expect(approved.code).toBe(ExitCode.Ok);
    expect(readState(stateFile).cache).toEqual([]);

    const runs = await cli(['runs', '--json'], { env });
    expect(runs.json().runs.map((r: { id: string; status: string }) => [r.id, r.status])).toEqual([
      [id, 'succeeded'],
    ]);
    expect((await cli(['audit', 'verify'], { env })).code).toBe(ExitCode.Ok);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${schema}.runs`);
    await client.end();
    expect(rows[0].n).toBe(1);
  });

  it('an unreachable store is an error that does not show the URL’s password', async () => {
    const r = await cli(['runs'], {
      env: { RUNBOOK_DATABASE_URL: 'postgres://ops:hunter2-secret@127.0.0.1:1/db' },
    });
    expect(r.code).toBe(ExitCode.Failed);
    expect(r.stderr).toMatch(/^error: Cannot open the run store \(PostgreSQL at 127\.0\.0\.1:1\/db\): /);
    expect(r.stderr + r.stdout).not.toContain('hunter2');
    const bad = await cli(['runs', '--store-url', 'mysql://x']);
    expect(bad.code).toBe(ExitCode.Usage);
    expect(bad.stderr).toContain('expected a postgres:// or postgresql:// connection string');
  });
});
