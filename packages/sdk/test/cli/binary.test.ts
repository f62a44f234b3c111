import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readState, writeFixtureState } from './fixtures/runbooks';
import { tempDir } from './harness';

// The real entry (shebang, process.exitCode, store closing so the process ends) run as a child process
// from source through tsx, so the test does not depend on a build.
const sdk = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(sdk, 'node_modules', '.bin', 'tsx');
const main = join(sdk, 'src', 'cli', 'main.ts');
const dir = tempDir('binary');
afterAll(() => dir.dispose());

function runbook(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, [main, ...args], {
      cwd: sdk,
      env: { ...process.env, RUNBOOK_DATA_DIR: join(dir.path, 'store'), RUNBOOK_ACTOR: 'ci', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the runbook executable', () => {
  it('--help prints the commands and exit codes and exits 0', async () => {
    const r = await runbook(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: runbook \[options\] \[command\]/);
    expect(r.stdout).toContain('Exit codes:\n  0  succeeded');
    expect(r.stderr).toBe('');
  });

  it('loads a .ts runbook module, runs it against the embedded store, and exits with the run’s code', async () => {
    const stateFile = join(dir.path, 'state.json');
    writeFixtureState(stateFile, { replicas: 1, ready: 1 });
    const runbooks = './test/cli/fixtures/runbooks.ts';
    const refused = await runbook([
      'run',
      'scale-service',
      '--runbooks',
      runbooks,
      '--input',
      `stateFile=${stateFile}`,
      '--input',
      'replicas=2',
    ]);
    expect(refused.code).toBe(2); // stdin/stdout are pipes, not a terminal, and no --yes
    expect(refused.stderr).toContain('Pass --yes');

    const applied = await runbook(
      [
        'run',
        'scale-service',
        '--yes',
        '--json',
        '--input',
        `stateFile=${stateFile}`,
        '--input',
        'replicas=2',
      ],
      { RUNBOOK_MODULES: runbooks },
    );
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(JSON.parse(applied.stdout).run).toMatchObject({ status: 'succeeded', requestedBy: 'ci' });
    expect(readState(stateFile).replicas).toBe(2);
  });
});
