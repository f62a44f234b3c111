import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandIo, runLabCommand } from '../../src/lab/command';
import { dropLabDatabase } from '../../src/lab/database/lab-database';
import { type LabUp, labUp } from '../../src/lab/lab-up';

// `aiwebtest-lab` against a running lab (without the service: that is the end-to-end tests' part).
const database = `aiwebtest_lab_t_${Math.random().toString(16).slice(2, 10)}`;
let dir: string;
let up: LabUp;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-cli-'));
  up = await labUp({
    dir,
    database,
    resetDatabase: true,
    redisUrl: 'redis://127.0.0.1:6379/13',
    controlPort: 0,
    serve: false,
  });
}, 90_000);
afterAll(async () => {
  await up?.stop();
  await dropLabDatabase({ adminUrl: 'postgres://postgres@127.0.0.1:5432/postgres', database });
  await rm(dir, { recursive: true, force: true });
});

async function lab(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CommandIo = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: {} };
  const code = await runLabCommand(argv, io);
  return { code, stdout, stderr };
}

describe('aiwebtest-lab', () => {
  it('--help lists the commands and every scenario', async () => {
    const { code, stdout } = await lab('--help');
    expect(code).toBe(0);
    for (const word of [
      'up',
      'chaos',
      'heal',
      'health',
      'scenarios',
      'requirements-agent-down',
      'test-execution-slow',
    ])
      expect(stdout).toContain(word);
  });

  it('refuses bad usage with exit 2 and names what was wrong', async () => {
    expect(await lab('explode')).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('Unknown command "explode"'),
    });
    expect(await lab('chaos', '--dir', dir)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('needs a scenario'),
    });
    const unknown = await lab('chaos', 'meteor-strike', '--dir', dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      'Unknown scenario "meteor-strike": expected one of requirements-agent-down',
    );
    expect(await lab('health', '--bogus')).toMatchObject({ code: 2 });
  });

  it('refuses browser requests to the control API (a web page must not break the lab)', async () => {
    const response = await fetch(`${up.control.url}/chaos/requirements-agent-down`, {
      method: 'POST',
      headers: { origin: 'http://evil.example' },
    });
    expect(response.status).toBe(403);
    expect(up.control.active()).toEqual([]);
  });

  it('says plainly when no lab is running', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-none-'));
    try {
      const { code, stderr } = await lab('health', '--dir', empty);
      expect(code).toBe(1);
      expect(stderr).toContain(`no lab is running in ${empty}`);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('chaos breaks the lab for real, health says why, heal takes it back', async () => {
    // A lab just started is healthy once its agents have recorded their first decisions.
    let first = await lab('health', '--dir', dir);
    for (let i = 0; i < 100 && first.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      first = await lab('health', '--dir', dir);
    }
    expect(first.stdout).toMatch(/^healthy\n/);

    const chaos = await lab('chaos', 'requirements-agent-down', '--dir', dir);
    expect(chaos.code).toBe(0);
    expect(chaos.stdout).toContain('requirements-agent-down: injected');
    expect(chaos.stdout).toContain('agent-failure');

    let health = await lab('health', '--json', '--dir', dir);
    for (let i = 0; i < 50 && health.code === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      health = await lab('health', '--json', '--dir', dir);
    }
    expect(health.code).toBe(1);
    const report = JSON.parse(health.stdout) as {
      checks: { name: string; ok: boolean; detail: string }[];
      incidents: string[];
    };
    expect(report.incidents).toEqual(['requirements-agent-down']);
    expect(report.checks.find((c) => c.name === 'agent requirements-agent')).toMatchObject({
      ok: false,
      detail: expect.stringContaining('requirements-agent is down'),
    });
    const scenarios = await lab('scenarios', '--json', '--dir', dir);
    const listed = JSON.parse(scenarios.stdout) as { scenarios: { name: string; active: boolean }[] };
    expect(listed.scenarios.filter((s) => s.active).map((s) => s.name)).toEqual(['requirements-agent-down']);

    expect((await lab('heal', '--dir', dir)).stdout).toBe('healed: requirements-agent-down\n');
    // The undo deletes the crash-looping pods; their replacements start healthy.
    let healthy = await lab('health', '--dir', dir);
    for (let i = 0; i < 100 && healthy.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      healthy = await lab('health', '--dir', dir);
    }
    expect(healthy.code).toBe(0);
    expect((await lab('heal', '--dir', dir)).stdout).toBe('nothing to heal\n');
  });
});
