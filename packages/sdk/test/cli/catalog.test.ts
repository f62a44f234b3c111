import { describe, expect, it } from 'vitest';
import { exitCodeForError, exitCodeForStatus, UsageError } from '../../src/cli/exit-codes';
import { EXIT_CODE_TABLE, ExitCode } from '../../src/cli/run-cli';
import {
  ApprovalError,
  InputValidationError,
  InvalidStateError,
  NotFoundError,
  RunbookError,
} from '../../src/index';
import { cli, FIXTURE_MODULE } from './harness';

const withFixture = { env: { RUNBOOK_MODULES: FIXTURE_MODULE } };

describe('list and describe', () => {
  it('list --json gives id, severity, title and triggers of every runbook, once each', async () => {
    const r = await cli(['list', '--json'], withFixture);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.json().runbooks).toEqual([
      { id: 'purge-cache', severity: 'P1', title: 'Purge the checkout cache', triggers: [], tags: [] },
      {
        id: 'scale-service',
        severity: 'P2',
        title: 'Scale the checkout service',
        triggers: [{ kind: 'alert', match: { alertname: 'CheckoutDegraded' } }],
        tags: ['component:checkout', 'fixture'],
      },
    ]);
  });

  it('list prints aligned columns for people', async () => {
    const r = await cli(['list', '--runbooks', FIXTURE_MODULE]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+SEVERITY\s+TITLE\s+TRIGGERS$/);
    expect(lines[2]).toMatch(
      /^scale-service\s+P2\s+Scale the checkout service\s+alert alertname=CheckoutDegraded$/,
    );
    expect(lines[1]?.indexOf('P1')).toBe(lines[0]?.indexOf('SEVERITY'));
  });

  it('describe --json gives the input schema as JSON Schema', async () => {
    const r = await cli(['describe', 'scale-service', '--json'], withFixture);
    expect(r.code).toBe(0);
    const doc = r.json();
    expect(doc).toMatchObject({
      id: 'scale-service',
      title: 'Scale the checkout service',
      description: 'Checks readiness, then scales the service to the requested replicas.',
      severity: 'P2',
      triggers: [{ kind: 'alert', match: { alertname: 'CheckoutDegraded' } }],
      tags: ['component:checkout', 'fixture'],
    });
    expect(doc.inputSchema.type).toBe('object');
    expect(doc.inputSchema.required).toEqual(['stateFile', 'replicas']);
    expect(doc.inputSchema.properties.stateFile).toMatchObject({
      type: 'string',
      description: 'Path of the JSON state file',
    });
    expect(doc.inputSchema.properties.replicas).toMatchObject({ type: 'integer', minimum: 0, maximum: 10 });
    expect(doc.inputSchema.properties.labels.properties.team).toMatchObject({ type: 'string' });
  });

  it('describe lists the input fields, nested ones dotted as --input takes them', async () => {
    const r = await cli(['describe', 'scale-service'], withFixture);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Triggers: alert alertname=CheckoutDegraded');
    expect(r.stdout).toMatch(/replicas\s+integer \(≥0, ≤10\)\s+required/);
    expect(r.stdout).toMatch(/labels\.team\s+string\s+required/);
  });

  it('an unknown runbook exits 6 and names the loaded ones', async () => {
    const r = await cli(['describe', 'nope'], withFixture);
    expect(r.code).toBe(ExitCode.Refused);
    expect(r.stderr).toBe(
      'error: Runbook "nope" not found. Loaded runbooks: purge-cache, scale-service. See `runbook list`.\n',
    );
  });
});

describe('loading runbook modules', () => {
  it('without any module it says how to name one', async () => {
    const r = await cli(['list'], { env: { RUNBOOK_MODULES: undefined } });
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toMatch(/^error: No runbook modules given: pass --runbooks <module>.*RUNBOOK_MODULES/);
  });

  it('a module path is relative to the working directory; a missing one is named', async () => {
    const cwd = new URL('.', import.meta.url).pathname;
    const ok = await cli(['list', '--json', '--runbooks', './fixtures/runbooks.ts'], { cwd });
    expect(ok.code).toBe(0);
    expect(ok.json().runbooks).toHaveLength(2);
    const missing = await cli(['list', '--runbooks', './fixtures/missing.ts'], { cwd });
    expect(missing.code).toBe(ExitCode.Usage);
    expect(missing.stderr).toContain('Cannot load runbook module "./fixtures/missing.ts"');
    expect(missing.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a package name is resolved from the working directory', async () => {
    // zod resolves but exports no runbooks: the error names the spec tried.
    const r = await cli(['list', '--runbooks', 'zod', '--runbooks', './fixtures/empty.ts'], {
      cwd: new URL('.', import.meta.url).pathname,
    });
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toContain('No runbooks found in zod, ./fixtures/empty.ts');
    const unknown = await cli(['list', '--runbooks', '@aiwebtest/no-such-pack']);
    expect(unknown.code).toBe(ExitCode.Usage);
    expect(unknown.stderr).toContain('Cannot load runbook module "@aiwebtest/no-such-pack"');
  });

  it('two different runbooks with one id are refused, naming both modules', async () => {
    const r = await cli(
      ['list', '--runbooks', './fixtures/runbooks.ts', '--runbooks', './fixtures/duplicate.ts'],
      {
        cwd: new URL('.', import.meta.url).pathname,
      },
    );
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toBe(
      'error: Two different runbooks have the id "scale-service" (in ./fixtures/runbooks.ts and in ./fixtures/duplicate.ts); ids must be unique.\n',
    );
  });

  it('RUNBOOK_MODULES takes a comma-separated list', async () => {
    const r = await cli(['list', '--json'], {
      env: { RUNBOOK_MODULES: ` ${FIXTURE_MODULE} , ${FIXTURE_MODULE}` },
    });
    expect(r.code).toBe(0);
    expect(r.json().runbooks.map((x: { id: string }) => x.id)).toEqual(['purge-cache', 'scale-service']);
  });
});

describe('help, usage and exit codes', () => {
  it('the exit code table is stable and printed in --help', async () => {
    expect(EXIT_CODE_TABLE.map((e) => e.code)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(ExitCode).toEqual({
      Ok: 0,
      Failed: 1,
      Usage: 2,
      WaitingApproval: 3,
      Escalated: 4,
      Cancelled: 5,
      Refused: 6,
    });
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const e of EXIT_CODE_TABLE) expect(r.stdout).toContain(`  ${e.code}  ${e.meaning}`);
    expect(r.stdout).toContain('RUNBOOK_DATABASE_URL');
  });

  it('every command has --help with the exit codes', async () => {
    const commands = [
      'init',
      'list',
      'describe',
      'diagnose',
      'plan',
      'run',
      'runs',
      'show',
      'report',
      'record',
      'replay',
      'approve',
      'reject',
      'resume',
      'cancel',
    ];
    for (const command of [...commands.map((c) => [c]), ['audit', 'verify']]) {
      const r = await cli([...command, '--help']);
      expect(r.code, command.join(' ')).toBe(0);
      expect(r.stdout).toContain(`Usage: runbook ${command.join(' ')}`);
      expect(r.stdout).toContain('--json');
      expect(r.stdout).toContain('Exit codes:');
    }
    expect((await cli(['run', '--help'])).stdout).toContain('--yes');
    expect((await cli(['approve', '--help'])).stdout).toMatch(
      /--break-glass[\s\S]*--reason|--reason[\s\S]*--break-glass/,
    );
  });

  it('usage errors exit 2', async () => {
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(ExitCode.Usage);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect((await cli(['describe'])).code).toBe(ExitCode.Usage);
    expect((await cli(['runs', '--limit', '0'])).code).toBe(ExitCode.Usage);
    expect((await cli(['runs', '--status', 'sleeping'])).code).toBe(ExitCode.Usage);
    expect((await cli(['list', '--bogus'])).code).toBe(ExitCode.Usage);
    const json = await cli(['runs', '--limit', 'x', '--json']);
    expect(json.json()).toEqual({
      error: {
        code: 'USAGE',
        message: "option '--limit <n>' argument 'x' is invalid. expected a whole number ≥ 1.",
      },
      exitCode: 2,
    });
  });

  it('maps run statuses and errors to codes', () => {
    expect(exitCodeForStatus('succeeded')).toBe(0);
    expect(exitCodeForStatus('failed')).toBe(1);
    expect(exitCodeForStatus('waiting_approval')).toBe(3);
    expect(exitCodeForStatus('escalated')).toBe(4);
    expect(exitCodeForStatus('cancelled')).toBe(5);
    expect(exitCodeForError(new UsageError('x'))).toBe(2);
    expect(exitCodeForError(new InputValidationError('input', [{ path: 'a', message: 'b' }]))).toBe(2);
    expect(exitCodeForError(new NotFoundError('Run x', ''))).toBe(6);
    expect(exitCodeForError(new InvalidStateError('ended'))).toBe(6);
    expect(exitCodeForError(new ApprovalError('FOUR_EYES', 'no'))).toBe(6);
    expect(exitCodeForError(new RunbookError('TIMEOUT', 'slow'))).toBe(1);
    expect(exitCodeForError(new Error('boom'))).toBe(1);
  });
});
