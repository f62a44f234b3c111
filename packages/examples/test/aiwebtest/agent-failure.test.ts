import { type Engine, InputValidationError, type Plan } from '@aiwebtest/runbooks';
import { DEPLOYMENTS, PODS, REPLICASETS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentFailureRunbook } from '../../src/aiwebtest/agent-failure';
import type { AiWebTest } from '../../src/aiwebtest/environment';
import { runbooks } from '../../src/index';
import { generateThrough, readBackendHealth } from '../support/lab-backend';
import { findingOf, stepsOf as stepsIn } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';
import { until } from '../support/until';

// One lab for the file; each test breaks a different agent, since restart budgets (3 an hour per
// Deployment) live in the one store.
let harness: RunbookLab;
let lab: TestLab;
let platform: AiWebTest;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createAgentFailureRunbook);
  ({ lab, platform, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

interface Obj {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { name: string }[];
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const deployment = (name: string) =>
  lab.simulator.store.list(DEPLOYMENTS, lab.namespace).items.find((d) => d.metadata.name === name) as Obj;
const revision = (name: string) =>
  deployment(name).metadata.annotations?.['deployment.kubernetes.io/revision'];
const restartedAt = (name: string) =>
  (deployment(name).spec as { template: Obj }).template.metadata.annotations?.[
    'kubectl.kubernetes.io/restartedAt'
  ];
const readyReplicas = (name: string) =>
  (deployment(name).status as { readyReplicas?: number }).readyReplicas ?? 0;
const podsOf = (agent: string) =>
  (lab.simulator.store.list(PODS, lab.namespace).items as Obj[]).filter(
    (p) => p.metadata.labels?.app === agent,
  );

/** The pod-template-hash of the ReplicaSet the Deployment runs now. */
function currentHash(agent: string): string {
  const rev = revision(agent);
  const rs = (lab.simulator.store.list(REPLICASETS, lab.namespace).items as Obj[]).find(
    (r) =>
      r.metadata.ownerReferences?.some((o) => o.name === agent) &&
      r.metadata.annotations?.['deployment.kubernetes.io/revision'] === rev,
  );
  const hash = rs?.metadata.labels?.['pod-template-hash'];
  if (!hash) throw new Error(`no current ReplicaSet of ${agent}`);
  return hash;
}

const cls = (agent: string) =>
  agent
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');

/** Crash-loops the agent's pods matching `selector`, and waits until the Deployment has no ready pod. */
async function crashLoop(agent: string, selector: string) {
  const fault = lab.simulator.faults.inject({
    kind: 'crashLoop',
    namespace: lab.namespace,
    selector,
    message: `${cls(agent)} is not responding`,
  });
  await until(`${agent} down`, () => readyReplicas(agent) === 0);
  return fault;
}

const stepsOf = (runId: string) => stepsIn(engine, runId);

describe('agent-failure on the lab', () => {
  it('is exported in the pack with its alert and severity', () => {
    expect(runbooks.find((r) => r.id === 'agent-failure')).toMatchObject({
      severity: 'P1',
      triggers: [{ kind: 'alert', match: { alertname: 'AgentDown' } }],
      tags: ['component: agents', 'runbook: 1'],
    });
  });

  it('diagnose: names the crash loop and the agent’s last words, and changes nothing', async () => {
    const agent = 'requirements-agent';
    // Scoped to the current pods' template hash: a rollout restart's new pods do not match it.
    const fault = await crashLoop(agent, `app=${agent},pod-template-hash=${currentHash(agent)}`);
    try {
      const before = { revision: revision(agent), restartedAt: restartedAt(agent) };

      const result = await engine.start('agent-failure', { agent }, { mode: 'diagnose', actor: 'alice' });

      expect(result.status).toBe('succeeded');
      const steps = await stepsOf(result.runId);
      expect([...steps.keys()]).toEqual([
        'pod-status',
        'logs',
        'agent-metrics',
        'openrouter',
        'revisions',
        'restart',
      ]);
      const pods = findingOf(steps, 'pod-status');
      expect(pods.status).toBe('fail');
      expect(pods.summary).toContain('0/2 pods ready');
      expect(pods.summary).toMatch(/CrashLoopBackOff|Error/);
      expect(JSON.stringify(findingOf(steps, 'logs').evidence)).toContain(
        'RequirementsAgent is not responding',
      );
      // The lab has no Prometheus: the metric step says so instead of guessing.
      expect(findingOf(steps, 'agent-metrics').status).toBe('unknown');
      expect(findingOf(steps, 'openrouter')).toMatchObject({
        status: 'ok',
        data: { down: false, breaker: 'closed' },
      });
      expect(steps.get('restart')?.status).toBe('skipped');
      expect(result.outcome).toMatchObject({ kind: 'done' });
      expect((result.outcome as { summary: string }).summary).toMatch(
        /^requirements-agent is down: 0\/2 pods ready.*plan or execute this runbook to restart it$/,
      );
      expect({ revision: revision(agent), restartedAt: restartedAt(agent) }).toEqual(before);
      expect(readyReplicas(agent)).toBe(0);
    } finally {
      fault.clear();
    }
  });

  it('plan: exactly the restartedAt change, the rollback fallback named, the cluster unchanged', async () => {
    const agent = 'execution-agent';
    const fault = await crashLoop(agent, `app=${agent},pod-template-hash=${currentHash(agent)}`);
    try {
      const before = { revision: revision(agent), restartedAt: restartedAt(agent) };

      const result = await engine.start('agent-failure', { agent }, { mode: 'plan', actor: 'alice' });

      expect(result.status).toBe('succeeded');
      const restart = (await stepsOf(result.runId)).get('restart')?.result as unknown as {
        status: string;
        plan: Plan;
      };
      expect(restart.status).toBe('planned');
      expect(restart.plan).toMatchObject({
        action: 'k8s.rollout-restart',
        target: `k8s:aiwebtest/deployment/${agent}`,
        risk: 'medium',
        destructive: false,
      });
      expect(restart.plan.changes).toHaveLength(1);
      expect(restart.plan.changes[0]).toMatchObject({
        field: 'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
        before: null,
      });
      // A fresh Deployment has a single revision: nothing to roll back to.
      expect(result.outcome).toEqual({
        kind: 'done',
        summary: `would ${restart.plan.summary}; if it does not cure it, page on-call (no previous revision)`,
      });
      expect({ revision: revision(agent), restartedAt: restartedAt(agent) }).toEqual(before);
    } finally {
      fault.clear();
    }
  });

  it('execute: a crash loop of the current pods is cured by the restart, verified, and audited', async () => {
    const agent = 'requirements-agent';
    const oldPods = podsOf(agent).map((p) => p.metadata.name);
    const fault = await crashLoop(agent, `app=${agent},pod-template-hash=${currentHash(agent)}`);
    try {
      const result = await engine.start('agent-failure', { agent }, { mode: 'execute', actor: 'alice' });

      const steps = await stepsOf(result.runId);
      expect(result.error ?? null).toBeNull();
      expect(result.status).toBe('succeeded');
      expect([...steps.keys()]).toEqual([
        'pod-status',
        'logs',
        'agent-metrics',
        'openrouter',
        'revisions',
        'restart',
        'wait-ready',
        'verify-health',
        'sample-request',
        'success-rate',
      ]);
      expect(steps.get('restart')?.result).toMatchObject({
        status: 'applied',
        verification: { status: 'ok' },
      });
      expect(findingOf(steps, 'wait-ready').status).toBe('ok');
      expect(findingOf(steps, 'verify-health')).toMatchObject({ status: 'ok' });
      expect(findingOf(steps, 'verify-health').summary).toContain('2/2 pods ready');
      expect(findingOf(steps, 'sample-request')).toMatchObject({
        status: 'ok',
        data: { httpStatus: 200, provider: 'openrouter' },
      });
      // The seed's requirements decisions are confident.
      expect(['ok', 'unknown']).toContain(findingOf(steps, 'success-rate').status);
      expect((result.outcome as { summary: string }).summary).toMatch(
        /^restarted deployment\/requirements-agent: 2\/2 pods ready/,
      );
      // In the cluster: new pods, all ready, the old crash-looping ones gone.
      expect(readyReplicas(agent)).toBe(2);
      expect(restartedAt(agent)).toBeDefined();
      const now = podsOf(agent).map((p) => p.metadata.name);
      expect(now.some((n) => oldPods.includes(n))).toBe(false);
      expect(await engine.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      fault.clear();
    }
  });

  it('execute: a bad release the restart does not cure is rolled back after a second person approves', async () => {
    const agent = 'analysis-agent';
    // A bad release: a new revision whose pods (label release=1.4.3-bad) crash whatever is done to them.
    const apps = platform.k8s.cluster.apps;
    const live = await apps.readNamespacedDeployment({ name: agent, namespace: lab.namespace });
    const template = live.spec?.template;
    if (!template?.metadata || !template.spec?.containers[0]) throw new Error('no template');
    template.metadata.labels = { ...template.metadata.labels, release: '1.4.3-bad' };
    template.spec.containers[0].image = `ghcr.io/aiwebtest/${agent}:1.4.3-bad`;
    await apps.replaceNamespacedDeployment({ name: agent, namespace: lab.namespace, body: live });
    // The rolling update keeps the old pods while the new one crash-loops: the release is stuck, the alert fires.
    const fault = lab.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: lab.namespace,
      selector: `app=${agent},release=1.4.3-bad`,
      message: 'AnalysisAgent is not responding',
    });
    await until('a crash-looping pod of the bad release', () =>
      podsOf(agent).some(
        (p) =>
          p.metadata.labels?.release === '1.4.3-bad' &&
          ((p.status as { containerStatuses?: { restartCount: number }[] }).containerStatuses?.[0]
            ?.restartCount ?? 0) > 0,
      ),
    );
    try {
      const badRevision = Number(revision(agent));

      const first = await engine.start('agent-failure', { agent }, { mode: 'execute', actor: 'alice' });

      expect(first.status).toBe('waiting_approval');
      let steps = await stepsOf(first.runId);
      expect(steps.get('restart')).toMatchObject({
        status: 'failed',
        result: { status: 'verification-failed', verification: { status: 'fail' } },
      });
      expect(steps.get('rollback')?.status).toBe('waiting_approval');
      await expect(engine.approve(first.runId, { actor: 'alice' })).rejects.toThrow();
      await engine.approve(first.runId, { actor: 'bob' });
      const result = await engine.resume(first.runId);

      expect(result.status).toBe('succeeded');
      steps = await stepsOf(first.runId);
      expect(steps.get('rollback')?.result).toMatchObject({
        status: 'applied',
        plan: { action: 'k8s.rollout-undo', risk: 'high' },
      });
      expect(findingOf(steps, 'rollback-health').status).toBe('ok');
      expect((result.outcome as { summary: string }).summary).toContain(
        `rolled back to revision ${badRevision - 1}`,
      );
      // The Deployment runs the good template again: no bad label or image, every pod ready.
      const template = (
        deployment(agent).spec as { template: Obj & { spec: { containers: { image: string }[] } } }
      ).template;
      expect(template.metadata.labels?.release).toBeUndefined();
      expect(template.spec.containers[0]?.image).toBe(`ghcr.io/aiwebtest/${agent}:1.4.2`);
      expect(readyReplicas(agent)).toBe(2);
      expect(await engine.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      fault.clear();
    }
  });

  it('execute: a fault that survives the restart with no previous revision pages on-call; the 4th restart in an hour is refused', async () => {
    const agent = 'evolution-agent';
    const fault = await crashLoop(agent, `app=${agent}`);
    try {
      const result = await engine.start('agent-failure', { agent }, { mode: 'execute', actor: 'alice' });

      expect(result.status).toBe('escalated');
      expect(result.outcome).toMatchObject({ kind: 'escalate', severity: 'P1' });
      expect((result.outcome as { reason: string }).reason).toMatch(
        /^restart did not cure evolution-agent \(.*\) and there is no previous revision to roll back to: page on-call engineer$/,
      );
      expect(readyReplicas(agent)).toBe(0);

      // Two more runs spend the budget (their "previous" is now the first restart's revision; the fault
      // follows the app label, so those rollbacks would not help either: decline them).
      for (let i = 0; i < 2; i++) {
        const r = await engine.start('agent-failure', { agent }, { mode: 'execute', actor: 'alice' });
        expect(r.status).toBe('waiting_approval');
        await engine.cancel(r.runId, { actor: 'alice', reason: 'the rollback would not help' });
      }
      const lastRestart = restartedAt(agent);

      const fourth = await engine.start('agent-failure', { agent }, { mode: 'execute', actor: 'alice' });

      expect(fourth.status).toBe('escalated');
      expect((fourth.outcome as { reason: string }).reason).toMatch(
        /^restart of evolution-agent failed after 3 attempts: page on-call engineer/,
      );
      expect(restartedAt(agent)).toBe(lastRestart);
    } finally {
      fault.clear();
    }
  });

  it('a healthy agent: says so and plans no change', async () => {
    const result = await engine.start(
      'agent-failure',
      { agent: 'generation-agent' },
      { mode: 'plan', actor: 'alice' },
    );

    expect(result.status).toBe('succeeded');
    expect(result.outcome).toMatchObject({ kind: 'done' });
    expect((result.outcome as { summary: string }).summary).toMatch(
      /^generation-agent is healthy: 2\/2 pods ready.*OpenRouter API reachable: breaker closed.*no restart needed$/,
    );
    expect([...(await stepsOf(result.runId)).keys()]).toEqual([
      'pod-status',
      'logs',
      'agent-metrics',
      'openrouter',
    ]);
  });

  it('an OpenRouter outage with healthy pods is sent to the openrouter-outage runbook, without a restart', async () => {
    const outage = lab.openRouter.faults.inject({ kind: 'outage' });
    try {
      // Agents' calls through the backend fail until its breaker opens.
      await until(
        'the backend’s openrouter breaker to open',
        async () => {
          await generateThrough(lab.env.backendUrl, 'Test user login', 'observation_agent').catch(() => {});
          const h = await readBackendHealth(lab.env.backendUrl);
          return h.circuit_breakers.openrouter?.state === 'open';
        },
        15_000,
      );
      const before = restartedAt('observation-agent');

      const result = await engine.start(
        'agent-failure',
        { agent: 'observation-agent' },
        { mode: 'execute', actor: 'alice' },
      );

      expect(result.status).toBe('escalated');
      expect(result.outcome).toMatchObject({ kind: 'escalate', to: 'openrouter-outage' });
      expect((result.outcome as { reason: string }).reason).toMatch(
        /^OpenRouter API is down: switch to the fallback model \(run the openrouter-outage runbook\)/,
      );
      const steps = await stepsOf(result.runId);
      expect(findingOf(steps, 'openrouter')).toMatchObject({
        status: 'fail',
        data: { down: true, breaker: 'open' },
      });
      expect(findingOf(steps, 'openrouter').summary).toMatch(/^OpenRouter API down: breaker open/);
      expect(steps.has('restart')).toBe(false);
      expect(restartedAt('observation-agent')).toBe(before);
    } finally {
      outage.clear();
    }
  });

  it('refuses bad input before anything runs, naming the field', async () => {
    const error = await engine
      .start('agent-failure', { agent: 'requirements_agent' }, { mode: 'diagnose', actor: 'alice' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputValidationError);
    expect((error as InputValidationError).issues.map((i) => i.path)).toEqual(['agent']);
    expect((error as Error).message).toContain('expected one of requirements-agent');
  });
});
