import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/run-cli';
import { readState, writeFixtureState } from './fixtures/runbooks';
import { cliWithStore, tempDir } from './harness';

// One embedded store for the file: opening a fresh PGlite data dir costs seconds, reopening it half a second.
const dir = tempDir('runs');
const cli = cliWithStore(join(dir.path, 'store'));
const stateFile = join(dir.path, 'state.json');
const scaleTo3 = ['scale-service', '--input', `stateFile=${stateFile}`, '--input', 'replicas=3'];

async function runCount(): Promise<number> {
  const r = await cli(['runs', '--json', '--limit', '1000']);
  expect(r.code).toBe(0);
  return r.json().runs.length;
}

beforeAll(() => writeFixtureState(stateFile, { replicas: 2, ready: 1 }));
afterAll(() => dir.dispose());

describe('diagnose and plan apply nothing', () => {
  it('diagnose shows each finding with its evidence, skips the action, and exits 0', async () => {
    const r = await cli(['diagnose', ...scaleTo3]);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('scale-service (diagnose): succeeded');
    expect(r.stdout).toMatch(/Findings:\n {2}! status\s+check\s+warn: 1\/2 ready/);
    // the table evidence as aligned columns, the log as lines, the text inline
    expect(r.stdout).toMatch(/ {8}name {14}ready {2}cache entries\n {8}checkout-service {2}false {2}3\n/);
    expect(r.stdout).toMatch(/recent log:\n {8}started\n {8}cache holds 3 keys\n/);
    expect(r.stdout).toContain('note: state read from the fixture file');
    expect(r.stdout).toMatch(
      /Not applied \(diagnose mode\):\n.*scale\s+act\s+skipped in diagnose mode: fixture\.scale on fixture:service\/checkout/,
    );
    expect(r.stdout).not.toContain('▶'); // no progress without a terminal
    expect(readState(stateFile).replicas).toBe(2);
  });

  it('plan shows each change before → after with risk and hash, and exits 0 without applying', async () => {
    const r = await cli(['plan', ...scaleTo3]);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toContain('scale-service (plan): succeeded');
    expect(r.stdout).toMatch(/scale\s+act\s+planned: Scale checkout from 2 to 3 replicas/);
    expect(r.stdout).toMatch(
      /fixture\.scale on fixture:service\/checkout {2}\(risk low; plan [0-9a-f]{12}\)/,
    );
    expect(r.stdout).toContain('fixture:service/checkout spec.replicas: 2 → 3');
    expect(readState(stateFile).replicas).toBe(2);

    const json = (await cli(['plan', ...scaleTo3, '--json'])).json();
    expect(json.run).toMatchObject({ mode: 'plan', status: 'succeeded', requestedBy: 'alice' });
    const scale = json.steps.find((s: { name: string }) => s.name === 'scale');
    expect(scale.result.status).toBe('planned');
    expect(scale.result.plan.changes).toEqual([
      { target: 'fixture:service/checkout', field: 'spec.replicas', before: 2, after: 3 },
    ]);
    expect(readState(stateFile).replicas).toBe(2);
  });
});

describe('run', () => {
  it('refuses to execute without a terminal and without --yes (exit 2, no run)', async () => {
    const before = await runCount();
    const r = await cli(['run', ...scaleTo3]);
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toMatch(/^error: Not applying anything: there is no terminal.*Pass --yes/);
    expect(r.stdout).toBe('');
    expect(await runCount()).toBe(before);
    expect(readState(stateFile).replicas).toBe(2);
  });

  it('bad input exits 2, names each field and what was expected, and creates no run', async () => {
    const before = await runCount();
    const r = await cli([
      'run',
      'scale-service',
      '--yes',
      '--input',
      'replicas=eleven',
      '--input',
      'labels.team=7',
    ]);
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toContain('error: Invalid input for runbook "scale-service":');
    expect(r.stderr).toMatch(/ {2}stateFile: Invalid input: expected string, received undefined\n/);
    expect(r.stderr).toMatch(/ {2}replicas: Invalid input: expected number, received string\n/);
    expect(r.stderr).toContain('Nothing was run.');
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const json = await cli([
      'diagnose',
      'scale-service',
      '--json',
      '--input',
      `stateFile=${stateFile}`,
      '--input',
      'replicas=99',
    ]);
    expect(json.code).toBe(ExitCode.Usage);
    expect(json.json()).toEqual({
      error: {
        code: 'INVALID_INPUT',
        message: expect.stringContaining('replicas'),
        issues: [{ path: 'replicas', message: expect.stringContaining('<=10') }],
      },
      exitCode: 2,
    });
    expect(await runCount()).toBe(before);
  });

  it('a misspelt input name is refused, not dropped in favour of a default', async () => {
    const before = await runCount();
    const r = await cli([
      'run',
      'scale-service',
      '--yes',
      '--input',
      `stateFile=${stateFile}`,
      '--input',
      'replica=3',
    ]);
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toMatch(/ {2}replica: unknown field; this runbook takes: /);
    expect(await runCount()).toBe(before);
  });

  it('run --yes applies the plan, verifies it, and exits 0', async () => {
    const r = await cli(['run', ...scaleTo3, '--input', 'labels.team=core', '--yes', '--json']);
    expect(r.code).toBe(ExitCode.Ok);
    expect(readState(stateFile)).toMatchObject({ replicas: 3, ready: 3 });
    const doc = r.json();
    expect(doc.exitCode).toBe(0);
    expect(doc.pendingApproval).toBeNull();
    expect(doc.run).toMatchObject({
      runbookId: 'scale-service',
      mode: 'execute',
      status: 'succeeded',
      input: { stateFile, replicas: 3, labels: { team: 'core' } },
      outcome: { kind: 'done', summary: 'checkout runs 3 replicas' },
    });
    expect(doc.steps.map((s: { name: string; status: string }) => [s.name, s.status])).toEqual([
      ['status', 'succeeded'],
      ['scale', 'succeeded'],
    ]);
    expect(doc.steps[1].result).toMatchObject({ status: 'applied', verification: { status: 'ok' } });
  });

  it('on a terminal it shows progress and the plan, asks Apply? [y/N], and applies on "y"', async () => {
    writeFixtureState(stateFile, { replicas: 2, ready: 2 });
    const r = await cli(['run', ...scaleTo3], { tty: true, stdin: 'y\n' });
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toMatch(
      /^▶ status \(check\)\n✔ status {2}ok: 2\/2 ready {2}\(\d+ms\)\n▶ scale \(act\)\n/,
    );
    expect(r.stdout).toContain('Plan for step "scale":\n  Scale checkout from 2 to 3 replicas\n');
    expect(r.stdout).toContain('fixture:service/checkout spec.replicas: 2 → 3\nApply? [y/N]   confirmed\n');
    expect(r.stdout).toMatch(/✔ scale {2}applied: Scale checkout from 2 to 3 replicas/);
    expect(r.stdout).toContain('scale-service (execute): succeeded');
    expect(readState(stateFile).replicas).toBe(3);
  });

  it('on a terminal, answering no (or nothing) cancels the run: exit 5, nothing applied', async () => {
    writeFixtureState(stateFile, { replicas: 2, ready: 2 });
    const no = await cli(['run', ...scaleTo3], { tty: true, stdin: 'n\n' });
    expect(no.code).toBe(ExitCode.Cancelled);
    expect(no.stdout).toContain('declined: the plan is not applied');
    expect(no.stdout).toContain('scale-service (execute): cancelled');
    expect(no.stdout).toMatch(
      /error: CANCELLED: Run cancelled: the operator declined plan [0-9a-f]{12} of step "scale"/,
    );
    const eof = await cli(['run', ...scaleTo3, '--json'], { tty: true, stdin: '' });
    expect(eof.code).toBe(ExitCode.Cancelled);
    expect(eof.json().run.status).toBe('cancelled'); // progress and prompt went to stderr, JSON alone on stdout
    expect(eof.stderr).toContain('Apply? [y/N]');
    expect(readState(stateFile).replicas).toBe(2);
  });
});

describe('runs, show, audit', () => {
  it('runs filters by status and runbook, newest first', async () => {
    const all = (await cli(['runs', '--json'])).json().runs;
    expect(all.length).toBeGreaterThanOrEqual(6);
    const cancelled = await cli([
      'runs',
      '--json',
      '--status',
      'cancelled',
      '--runbook',
      'scale-service',
      '--limit',
      '1',
    ]);
    expect(cancelled.json().runs).toHaveLength(1);
    expect(cancelled.json().runs[0]).toMatchObject({ status: 'cancelled', runbookId: 'scale-service' });
    expect(cancelled.json().runs[0].id).toBe(
      all.find((x: { status: string }) => x.status === 'cancelled').id,
    );
    const human = await cli(['runs', '--limit', '2']);
    expect(human.stdout).toMatch(/^RUN\s+RUNBOOK\s+MODE\s+STATUS\s+BY\s+CREATED\s+TOOK\n/);
    expect(human.stdout.trim().split('\n')).toHaveLength(3);
    expect((await cli(['runs', '--runbook', 'nothing-here'])).stdout).toBe('No runs.\n');
  });

  it('show --json has the run, its steps and approvals; show renders evidence and plans', async () => {
    const [latest] = (
      await cli(['runs', '--json', '--status', 'succeeded', '--runbook', 'scale-service', '--limit', '1'])
    ).json().runs;
    const json = await cli(['show', latest.id, '--json']);
    expect(json.code).toBe(0);
    const detail = json.json();
    expect(detail.run.id).toBe(latest.id);
    expect(detail.steps.map((s: { name: string; kind: string }) => `${s.name}:${s.kind}`)).toEqual([
      'status:check',
      'scale:act',
    ]);
    expect(detail.steps[0].result.evidence[0]).toMatchObject({
      kind: 'table',
      columns: ['name', 'ready', 'cache entries'],
    });
    expect(detail.approvals).toEqual([]);

    const human = await cli(['show', latest.id]);
    expect(human.stdout).toMatch(new RegExp(`^Run ${latest.id} {2}scale-service {2}execute {2}succeeded\n`));
    expect(human.stdout).toContain('  outcome: checkout runs 3 replicas');
    expect(human.stdout).toMatch(/✔ status\s+check\s+ok: 2\/2 ready/);
    expect(human.stdout).toMatch(/name {14}ready {2}cache entries/);
    expect(human.stdout).toContain('fixture:service/checkout spec.replicas: 2 → 3');
    expect(human.stdout).toContain('verified: ok: 3 replicas');
  });

  it('an unknown run is not found (exit 6); resuming an ended run is refused (exit 6)', async () => {
    const missing = await cli(['show', 'run_nope']);
    expect(missing.code).toBe(ExitCode.Refused);
    expect(missing.stderr).toBe('error: Run run_nope not found. List runs with `runbook runs`.\n');
    const [ended] = (await cli(['runs', '--json', '--status', 'succeeded', '--limit', '1'])).json().runs;
    const resume = await cli(['resume', ended.id, '--yes']);
    expect(resume.code).toBe(ExitCode.Refused);
    expect(resume.stderr).toContain(`Run ${ended.id} already ended (succeeded)`);
  });

  it('audit verify reports an intact chain and exits 0', async () => {
    const r = await cli(['audit', 'verify', '--json']);
    expect(r.code).toBe(0);
    const v = r.json();
    expect(v.ok).toBe(true);
    expect(v.entries).toBeGreaterThan(10);
    expect(v.headHash).toMatch(/^[0-9a-f]{64}$/);
    expect(v.problems).toEqual([]);
    const human = await cli(['audit', 'verify']);
    expect(human.stdout).toBe(
      `Audit log: ${v.entries} entries, head ${v.headHash}\nOK: the hash chain is intact.\n`,
    );
  });
});

describe('interrupting', () => {
  it('Ctrl-C (the interrupt signal) cancels the run being executed: exit 5, status cancelled', async () => {
    const slow = new URL('./fixtures/slow.ts', import.meta.url).pathname;
    const interrupt = new AbortController();
    const started = Date.now();
    const r = await cli(['run', 'wait-for-drain', '--yes', '--runbooks', slow], {
      tty: true,
      signal: interrupt.signal,
      onStdout: (chunk) => {
        if (chunk.startsWith('▶ drain (sleep)')) interrupt.abort();
      },
    });
    expect(r.code).toBe(ExitCode.Cancelled);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.stdout).toContain('wait-for-drain (execute): cancelled');
    expect(r.stdout).toContain('error: CANCELLED: Run cancelled: the caller aborted.');
    const [run] = (await cli(['runs', '--json', '--runbook', 'wait-for-drain'])).json().runs;
    expect(run.status).toBe('cancelled');
  });
});

describe('the embedded store', () => {
  it('is never created by commands that only read or decide on runs', async () => {
    const nowhere = join(dir.path, 'nowhere');
    const env = { RUNBOOK_DATA_DIR: nowhere };
    const runs = await cli(['runs'], { env });
    expect(runs.code).toBe(ExitCode.Ok);
    expect(runs.stdout).toBe('No runs.\n');
    const show = await cli(['show', 'run_abc'], { env });
    expect(show.code).toBe(ExitCode.Refused);
    expect(show.stderr).toContain(`Embedded store ${nowhere} not found`);
    expect(existsSync(nowhere)).toBe(false);
  });

  it('takes an explicit --data-dir over RUNBOOK_DATABASE_URL, and refuses both flags at once', async () => {
    const env = { RUNBOOK_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    expect((await cli(['runs', '--data-dir', join(dir.path, 'store')], { env })).code).toBe(ExitCode.Ok);
    const both = await cli(['runs', '--data-dir', 'x', '--store-url', 'postgres://a@b/c']);
    expect(both.code).toBe(ExitCode.Usage);
  });

  it('is used by one process at a time; a lock left by a dead process is taken over', async () => {
    const lock = `${join(dir.path, 'store')}.lock`;
    writeFileSync(lock, String(process.pid)); // a live process holds it
    const busy = await cli(['runs']);
    expect(busy.code).toBe(ExitCode.Failed);
    expect(busy.stderr).toBe(
      `error: The embedded store ${join(dir.path, 'store')} is in use by another runbook process (pid ${process.pid}). Wait for it to finish, or keep runs in PostgreSQL (--store-url / RUNBOOK_DATABASE_URL) to use several processes at once.\n`,
    );
    writeFileSync(lock, '2147483646'); // no such process
    expect((await cli(['runs'])).code).toBe(ExitCode.Ok);
    expect(existsSync(lock)).toBe(false);
  });
});
