import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Engine,
  type Finding,
  InputValidationError,
  openStore,
  type Plan,
  type RunStore,
  type StepRecord,
} from '@aiwebtest/runbooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAgentFailureRunbook } from '../src/aiwebtest/agent-failure';
import { runbooks } from '../src/index';
import { type Lab, openLab } from '../src/lab/lab';
import { RESTARTED_AT_FIELD } from '../src/lab/steps';

// One embedded store for the file (it takes seconds to open). Budgets live in the store, so each test that
// restarts uses its own agent.
let store: RunStore;
let labDir: string;
let lab: Lab;
let engine: Engine;

beforeAll(async () => {
  store = await openStore({ dataDir: ':memory:' });
});
afterAll(async () => {
  await store?.close();
});
beforeEach(async () => {
  labDir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-run-'));
  lab = openLab(labDir);
  engine = new Engine({ store, runbooks: [createAgentFailureRunbook({ labDir })] });
});
afterEach(async () => {
  await rm(labDir, { recursive: true, force: true });
});

async function stepsOf(runId: string): Promise<Map<string, StepRecord>> {
  const { steps } = await engine.getRun(runId);
  return new Map(steps.map((s) => [s.name, s]));
}

describe('agent-failure', () => {
  it('is exported in the pack with its trigger and severity', () => {
    const runbook = runbooks.find((r) => r.id === 'agent-failure');
    expect(runbook).toMatchObject({
      title: 'Agent failure recovery',
      severity: 'P1',
      triggers: [{ kind: 'alert', match: { alertname: 'AgentDown' } }],
    });
  });

  it('diagnose: a broken agent fails the pod check, shows its logs, and changes nothing', async () => {
    await lab.breakAgent('requirements-agent');
    const before = await readFile(lab.file, 'utf8');

    const result = await engine.start(
      'agent-failure',
      { agent: 'requirements-agent' },
      { mode: 'diagnose', actor: 'alice' },
    );

    expect(result.status).toBe('succeeded');
    const steps = await stepsOf(result.runId);
    const pods = steps.get('pods')?.result as unknown as Finding;
    expect(pods.status).toBe('fail');
    expect(pods.summary).toBe('deployment/requirements-agent: 0/2 pods ready, pods crash-looping');
    expect(pods.evidence[0]).toMatchObject({
      kind: 'table',
      columns: ['pod', 'ready', 'status'],
      rows: [
        ['requirements-agent-0', '0/1', 'CrashLoopBackOff'],
        ['requirements-agent-1', '0/1', 'CrashLoopBackOff'],
      ],
    });
    const logs = steps.get('logs')?.result as unknown as Finding;
    expect(logs.status).toBe('warn');
    expect(logs.evidence[0]).toMatchObject({ kind: 'log' });
    expect(JSON.stringify(logs.evidence)).toContain('RequirementsAgent is not responding');
    expect(steps.get('restart')?.status).toBe('skipped');
    expect(await readFile(lab.file, 'utf8')).toBe(before);
  });

  it('plan: exactly the restartedAt annotation change, and the lab unchanged', async () => {
    await lab.breakAgent('requirements-agent');
    const before = await readFile(lab.file, 'utf8');

    const result = await engine.start(
      'agent-failure',
      { agent: 'requirements-agent' },
      { mode: 'plan', actor: 'alice' },
    );

    expect(result.status).toBe('succeeded');
    const restart = (await stepsOf(result.runId)).get('restart')?.result as unknown as {
      status: string;
      plan: Plan;
    };
    expect(restart.status).toBe('planned');
    const { plan } = restart;
    expect(plan).toMatchObject({
      action: 'lab.rollout-restart',
      target: 'lab:aiwebtest/deployment/requirements-agent',
      risk: 'medium',
      destructive: false,
    });
    expect(plan.changes).toEqual([
      {
        target: 'lab:aiwebtest/deployment/requirements-agent',
        field: RESTARTED_AT_FIELD,
        before: null,
        after: (plan.params as { restartedAt: string }).restartedAt,
      },
    ]);
    expect(Date.parse(plan.changes[0]?.after as string)).not.toBeNaN();
    expect(result.outcome).toEqual({ kind: 'done', summary: `would ${plan.summary}` });
    expect(await readFile(lab.file, 'utf8')).toBe(before);
  });

  it('execute: restarts with the planned timestamp, verifies the pods, and ends done', async () => {
    await lab.breakAgent('requirements-agent', 'crash-loop-after-oom');

    const result = await engine.start(
      'agent-failure',
      { agent: 'requirements-agent' },
      { mode: 'execute', actor: 'alice' },
    );

    expect(result.status).toBe('succeeded');
    const restart = (await stepsOf(result.runId)).get('restart')?.result as unknown as {
      status: string;
      plan: Plan<{ restartedAt: string }>;
      verification: Finding;
    };
    expect(restart.status).toBe('applied');
    expect(restart.verification.status).toBe('ok');
    const planned = restart.plan.params.restartedAt;
    const agent = (JSON.parse(await readFile(lab.file, 'utf8')) as { agents: Record<string, unknown> })
      .agents['requirements-agent'];
    expect(agent).toMatchObject({ restartedAt: planned, readyReplicas: 2, replicas: 2, fault: null });
    expect(result.outcome).toMatchObject({ kind: 'done' });
    expect((result.outcome as { summary: string }).summary).toContain(`restartedAt ${planned}`);
  });

  it("execute: a 'bad-config' fault survives the restart, verify fails, and the run escalates", async () => {
    await lab.breakAgent('generation-agent', 'bad-config');

    const result = await engine.start(
      'agent-failure',
      { agent: 'generation-agent' },
      { mode: 'execute', actor: 'alice' },
    );

    expect(result.status).toBe('escalated');
    expect(result.outcome).toEqual({
      kind: 'escalate',
      reason: 'page on-call: agent still down after restart',
    });
    expect(result.error).toMatchObject({ code: 'VERIFICATION_FAILED' });
    const restart = (await stepsOf(result.runId)).get('restart');
    expect(restart?.status).toBe('failed');
    expect(restart?.result).toMatchObject({
      status: 'verification-failed',
      verification: { status: 'fail' },
    });
    // The restart happened (and cannot be undone); the pods are still down.
    expect(await lab.readAgent('generation-agent')).toMatchObject({ readyReplicas: 0, fault: 'bad-config' });
    expect((await lab.readAgent('generation-agent')).restartedAt).not.toBeNull();
  });

  it('execute: after 3 restarts in an hour the budget is spent and the run escalates without restarting', async () => {
    await lab.breakAgent('execution-agent', 'bad-config');
    for (let i = 0; i < 3; i++) {
      const r = await engine.start(
        'agent-failure',
        { agent: 'execution-agent' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(r.error).toMatchObject({ code: 'VERIFICATION_FAILED' });
    }
    const lastRestart = (await lab.readAgent('execution-agent')).restartedAt;

    const result = await engine.start(
      'agent-failure',
      { agent: 'execution-agent' },
      { mode: 'execute', actor: 'alice' },
    );

    expect(result.status).toBe('escalated');
    expect(result.error).toMatchObject({ code: 'BUDGET_EXHAUSTED' });
    expect((await lab.readAgent('execution-agent')).restartedAt).toBe(lastRestart);
  });

  it('execute: a healthy agent ends done without a restart', async () => {
    const result = await engine.start(
      'agent-failure',
      { agent: 'observation-agent' },
      { mode: 'execute', actor: 'alice' },
    );

    expect(result.status).toBe('succeeded');
    expect(result.outcome).toEqual({
      kind: 'done',
      summary:
        'observation-agent is healthy: deployment/observation-agent: 2/2 pods ready; no restart needed',
    });
    const steps = await stepsOf(result.runId);
    expect([...steps.keys()]).toEqual(['pods', 'logs']);
    expect((await lab.readAgent('observation-agent')).restartedAt).toBeNull();
  });

  it('refuses bad input before anything runs, naming the field', async () => {
    const error = await engine
      .start('agent-failure', { agent: 'requirements_agent' }, { mode: 'diagnose', actor: 'alice' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect((error as InputValidationError).issues.map((i) => i.path)).toEqual(['agent']);
    expect((error as Error).message).toContain('agent:');
  });

  it('fails clearly on a namespace the lab does not have', async () => {
    const result = await engine.start(
      'agent-failure',
      { agent: 'analysis-agent', namespace: 'staging' },
      { mode: 'diagnose', actor: 'alice' },
    );
    expect(result.status).toBe('failed');
    expect(result.error?.message).toContain('Namespace "staging" does not exist in the lab');
  });
});
