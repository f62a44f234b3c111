import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runLabCommand } from './command';
import { openLab } from './lab';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runLabCommand(argv, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env: { AIWEBTEST_LAB_DIR: dir },
  });
  return { code, stdout, stderr };
}

describe('aiwebtest-lab', () => {
  it('breaks, shows and heals an agent in the lab named by AIWEBTEST_LAB_DIR', async () => {
    expect(await run('break', 'requirements-agent', '--fault', 'bad-config')).toMatchObject({
      code: 0,
      stdout: 'requirements-agent: broken (bad-config), 0/2 pods ready\n',
    });
    const status = await run('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/requirements-agent\s+0\/2\s+CrashLoopBackOff \(bad-config\)/);
    expect(status.stdout).toMatch(/generation-agent\s+2\/2\s+Running/);

    const json = JSON.parse((await run('status', '--json')).stdout);
    expect(json.agents['requirements-agent']).toMatchObject({ readyReplicas: 0, fault: 'bad-config' });

    expect((await run('heal', 'requirements-agent')).stdout).toBe(
      'requirements-agent: healed, 2/2 pods ready\n',
    );
    expect((await openLab(dir).readAgent('requirements-agent')).fault).toBeNull();
  });

  it('defaults the fault to crash-loop-after-oom and honours --dir', async () => {
    const other = join(dir, 'other');
    expect((await run('break', 'evolution-agent', '--dir', other)).code).toBe(0);
    expect((await openLab(other).readAgent('evolution-agent')).fault).toBe('crash-loop-after-oom');
    expect((await openLab(dir).readAgent('evolution-agent')).fault).toBeNull();
  });

  it('prints help', async () => {
    const help = await run('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: aiwebtest-lab');
  });

  it.each([
    [
      ['break', 'requirements_agent'],
      /Unknown agent "requirements_agent": expected one of requirements-agent, generation-agent/,
    ],
    [['break'], /"break" needs an agent: one of requirements-agent/],
    [['heal', 'requirements-agent', 'generation-agent'], /takes one agent/],
    [
      ['break', 'requirements-agent', '--fault', 'meltdown'],
      /Unknown fault "meltdown": expected one of crash-loop-after-oom, bad-config/,
    ],
    [['status', '--fault', 'bad-config'], /--fault applies to "break" only/],
    [['restart', 'requirements-agent'], /Unknown command "restart"/],
    [[], /Missing command/],
    [['status', '--verbose'], /Unknown option '--verbose'/],
  ])('refuses %j with exit code 2', async (argv, message) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('reports a corrupt state file with exit code 1', async () => {
    await writeFile(join(dir, 'state.json'), '[]', 'utf8');
    const result = await run('status');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Lab state file ${join(dir, 'state.json')} is invalid at (root)`);
  });
});
