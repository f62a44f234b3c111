import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultLabDir, isLabStateError, type Lab, LabStateError, openLab } from './lab';
import { AGENT_NAMES, initialLabState } from './state';

let dir: string;
let lab: Lab;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-'));
  lab = openLab(dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('openLab', () => {
  it('starts with every agent healthy and writes nothing on read', async () => {
    const state = await lab.readState();
    expect(Object.keys(state.agents)).toEqual([...AGENT_NAMES]);
    for (const agent of Object.values(state.agents)) {
      expect(agent).toMatchObject({ replicas: 2, readyReplicas: 2, restartedAt: null, fault: null });
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('breaks an agent: no ready pods, the fault and its log lines, written atomically', async () => {
    const broken = await lab.breakAgent('requirements-agent');
    expect(broken).toMatchObject({ readyReplicas: 0, fault: 'crash-loop-after-oom' });
    expect(broken.logs.join('\n')).toContain('RequirementsAgent is not responding');
    // Only the state file remains: the temp file was renamed over it.
    expect(await readdir(dir)).toEqual(['state.json']);
    const onDisk = JSON.parse(await readFile(lab.file, 'utf8'));
    expect(onDisk.agents['requirements-agent'].fault).toBe('crash-loop-after-oom');
    expect(onDisk.agents['generation-agent'].fault).toBeNull();
  });

  it('restart sets restartedAt and clears a transient fault', async () => {
    await lab.breakAgent('generation-agent', 'crash-loop-after-oom');
    const at = '2026-01-02T03:04:05.000Z';
    const restarted = await lab.restartAgent('generation-agent', at);
    expect(restarted).toMatchObject({ restartedAt: at, readyReplicas: 2, fault: null });
  });

  it('restart leaves a bad-config fault in place', async () => {
    await lab.breakAgent('execution-agent', 'bad-config');
    const restarted = await lab.restartAgent('execution-agent', '2026-01-02T03:04:05.000Z');
    expect(restarted).toMatchObject({
      restartedAt: '2026-01-02T03:04:05.000Z',
      readyReplicas: 0,
      fault: 'bad-config',
    });
    expect(restarted.logs.at(-1)).toContain('Back-off restarting failed container');
  });

  it('heal makes every pod ready and keeps restartedAt', async () => {
    await lab.breakAgent('analysis-agent', 'bad-config');
    await lab.restartAgent('analysis-agent', '2026-01-02T03:04:05.000Z');
    expect(await lab.healAgent('analysis-agent')).toMatchObject({
      readyReplicas: 2,
      fault: null,
      restartedAt: '2026-01-02T03:04:05.000Z',
    });
  });

  it('loses no change when writers race (a break during a restart, six breaks at once)', async () => {
    await Promise.all(AGENT_NAMES.map((name) => openLab(dir).breakAgent(name)));
    const state = await lab.readState();
    expect(AGENT_NAMES.filter((name) => state.agents[name].fault !== null)).toEqual([...AGENT_NAMES]);
    expect((await readdir(dir)).sort()).toEqual(['state.json']); // no lock or temp file left behind
  });

  it('keeps a bounded number of log lines', async () => {
    for (let i = 0; i < 60; i++) await lab.breakAgent('evolution-agent');
    expect((await lab.readAgent('evolution-agent')).logs).toHaveLength(200);
  });

  it('resolves the default directory from AIWEBTEST_LAB_DIR, else .runbook/lab', () => {
    expect(defaultLabDir({ AIWEBTEST_LAB_DIR: dir })).toBe(dir);
    expect(defaultLabDir({})).toBe(join(process.cwd(), '.runbook/lab'));
  });
});

describe('a corrupt state file', () => {
  it('that is not JSON: names the file', async () => {
    await writeFile(lab.file, '{"version": 1,', 'utf8');
    const error = await lab.readState().catch((e: unknown) => e);
    expect(isLabStateError(error)).toBe(true);
    expect((error as LabStateError).message).toContain(lab.file);
    expect((error as LabStateError).field).toBe('(root)');
    expect((error as LabStateError).message).toMatch(/not valid JSON/);
  });

  it('with a wrong field: names the file and the field', async () => {
    const state = initialLabState();
    const bad = {
      ...state,
      agents: {
        ...state.agents,
        'observation-agent': { ...state.agents['observation-agent'], readyReplicas: 'two' },
      },
    };
    await writeFile(lab.file, JSON.stringify(bad), 'utf8');
    await expect(lab.readAgent('observation-agent')).rejects.toThrow(LabStateError);
    await expect(lab.readState()).rejects.toThrow(
      `Lab state file ${lab.file} is invalid at agents.observation-agent.readyReplicas`,
    );
  });

  it('with a missing agent or an impossible count: names that field', async () => {
    const state = initialLabState();
    const { 'evolution-agent': _, ...missing } = state.agents;
    await writeFile(lab.file, JSON.stringify({ ...state, agents: missing }), 'utf8');
    await expect(lab.readState()).rejects.toMatchObject({ field: 'agents.evolution-agent' });

    const tooMany = { ...state.agents['evolution-agent'], readyReplicas: 5 };
    await writeFile(
      lab.file,
      JSON.stringify({ ...state, agents: { ...state.agents, 'evolution-agent': tooMany } }),
      'utf8',
    );
    await expect(lab.readState()).rejects.toMatchObject({ field: 'agents.evolution-agent.readyReplicas' });
  });

  it('is not overwritten by a change', async () => {
    await writeFile(lab.file, 'garbage', 'utf8');
    await expect(lab.breakAgent('requirements-agent')).rejects.toThrow(LabStateError);
    expect(await readFile(lab.file, 'utf8')).toBe('garbage');
  });
});
