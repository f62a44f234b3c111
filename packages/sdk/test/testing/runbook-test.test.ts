import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { z } from 'zod';
import {
  defineAction,
  defineCheck,
  defineRunbook,
  type Finding,
  finding,
  InputValidationError,
  openStore,
  type RunStore,
  verifyAuditChain,
} from '../../src';
import { type Kubernetes, kubernetes, RESTARTED_AT_ANNOTATION } from '../../src/kubernetes';
import {
  CONFIGMAPS,
  DEPLOYMENTS,
  type KubernetesSimulator,
  PODS,
  type RunbookTestRun,
  runRunbook,
  startKubernetesSimulator,
  TEST_APPROVER,
} from '../../src/testing';
import { agentFailure } from '../kubernetes/docs-example-runbook';

// The testing kit's showcase: whole runbooks run with `runRunbook` against the in-process Kubernetes
// simulator, each in a fresh in-memory store, asserted on through the RunbookTestRun it returns.
//
// The test between the docs markers at the end is meant for TESTING.md ("Testing a runbook in a few
// lines", shown as `agent-failure.kit.test.ts`, importing from the package and `./agent-failure`, the
// runbook of KUBERNETES.md). It is complete on its own: its own simulator, no helper of this file.

const NS = 'aiwebtest';
let sim: KubernetesSimulator;
let k8s: Kubernetes;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  // A crashed container restarts after 100 ms instead of a kubelet's 10 s to 5 min.
  sim = await startKubernetesSimulator({
    contextName: 'lab',
    namespace: NS,
    cluster: { crashBackoff: '100ms' },
  });
  k8s = kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'lab', namespaces: [NS] });
});

afterEach(() => {
  for (const clear of cleanups.splice(0)) clear();
});

afterAll(async () => {
  await sim?.close();
});

/** Looks at the agent's pods; when they are not ready, restarts its Deployment and tells the channel. */
function agentRecovery(k8s: Kubernetes) {
  return defineRunbook({
    id: 'agent-recovery',
    title: 'Agent recovery',
    severity: 'P1',
    input: z.object({ agent: z.string().min(1) }),
    async run({ input, step }) {
      const pods = await step.check('pods', k8s.podStatus({ namespace: NS, selector: `app=${input.agent}` }));
      if (pods.status === 'ok') return step.done('agent healthy');
      const restart = await step.act(
        'restart',
        k8s.rolloutRestart({ namespace: NS, name: input.agent, timeout: '10s' }),
      );
      if (restart.status !== 'applied') return step.done(`restart ${restart.status}`);
      await step.notify('tell', { channel: 'slack:#incidents', message: `restarted ${input.agent}` });
      return step.done('restarted');
    },
  });
}

/** Replaces the agent's ConfigMap with known-good values (high risk, destructive), then restarts it. */
function configReset(k8s: Kubernetes) {
  return defineRunbook({
    id: 'config-reset',
    title: 'Agent configuration reset',
    severity: 'P2',
    input: z.object({ agent: z.string().min(1), settings: z.record(z.string(), z.string()) }),
    async run({ input, step }) {
      const manifest = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `${input.agent}-config`, namespace: NS },
        data: input.settings,
      };
      await step.act('reset-config', k8s.applyManifests({ manifests: [manifest] }));
      await step.act('restart', k8s.rolloutRestart({ namespace: NS, name: input.agent, timeout: '10s' }));
      return step.done('configuration reset');
    },
  });
}

/** Seeds a two-replica agent with its ConfigMap and waits until its pods run. */
async function deployAgent(name: string): Promise<void> {
  sim.apply(
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `${name}-config`, namespace: NS },
      data: { LOG_LEVEL: 'debug' },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: NS, labels: { app: name } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'agent', image: `aiwebtest/${name}:1.0` }] },
        },
      },
    },
  );
  await sim.settle();
}

/** Seeds an agent whose current pods crash-loop (the pods a restart creates start clean). */
async function deployCrashingAgent(name: string): Promise<void> {
  await deployAgent(name);
  const podsOf = () => sim.store.list(PODS, NS).items.filter((p) => p.metadata.labels?.app === name);
  const hash = podsOf()[0]?.metadata.labels?.['pod-template-hash'];
  const fault = sim.faults.inject({
    kind: 'crashLoop',
    namespace: NS,
    selector: `app=${name},pod-template-hash=${hash}`,
  });
  cleanups.push(() => fault.clear());
  await vi.waitFor(
    () => expect(podsOf().every((p) => JSON.stringify(p.status).includes('CrashLoopBackOff'))).toBe(true),
    { timeout: 5_000, interval: 20 },
  );
}

const annotationsOf = (name: string) =>
  (
    sim.store.get(DEPLOYMENTS, NS, name).spec as {
      template: { metadata: { annotations?: Record<string, string> } };
    }
  ).template.metadata.annotations ?? {};
const configOf = (name: string) => sim.store.get(CONFIGMAPS, NS, `${name}-config`).data;

describe('runRunbook against the Kubernetes simulator', () => {
  it('restarts a crash-looping agent: findings, the restart applied and seen in the cluster, the audit trail', async () => {
    await deployCrashingAgent('requirements-agent');

    const run = await runRunbook(agentRecovery(k8s), { input: { agent: 'requirements-agent' } });

    run.expectStatus('succeeded');
    expect(run.outcome).toEqual({ kind: 'done', summary: 'restarted' });
    run.expectFinding('pods', 'fail');
    run.expectApplied('restart');
    expect(run.applied).toEqual(['restart']);
    expect(run.approvalsAsked).toEqual([]); // medium risk: the default policy asks for no approval
    expect(run.notifications).toEqual([
      { step: 'tell', channel: 'slack:#incidents', message: 'restarted requirements-agent' },
    ]);
    // The restart as planned is what the cluster now has.
    const [change] = run.plan('restart').changes;
    expect(change?.field).toBe(`spec.template.metadata.annotations["${RESTARTED_AT_ANNOTATION}"]`);
    expect(annotationsOf('requirements-agent')[RESTARTED_AT_ANNOTATION]).toBe(change?.after);
    // The audit trail, as the engine wrote it.
    run.expectAudit('step.check', 'pods');
    expect(run.expectAudit('action.applied', 'restart').data).toMatchObject({
      action: 'k8s.rollout-restart',
    });
    expect(run.auditEntries.map((e) => e.kind)).toEqual([
      'run.created',
      'step.check',
      'action.applying',
      'action.applied',
      'step.notify',
      'run.succeeded',
    ]);
    // The run and its steps exactly as stored, for a recording.
    expect(run.steps.map((s) => [s.seq, s.name, s.kind, s.status])).toEqual([
      [1, 'pods', 'check', 'succeeded'],
      [2, 'restart', 'act', 'succeeded'],
      [3, 'tell', 'notify', 'succeeded'],
    ]);
    expect(run.run).toMatchObject({
      id: run.runId,
      runbookId: 'agent-recovery',
      mode: 'execute',
      requestedBy: 'test',
    });
  });

  it('ends done without acting when the agent is healthy', async () => {
    await deployAgent('healthy-agent');
    const run = await runRunbook(agentRecovery(k8s), { input: { agent: 'healthy-agent' } });
    run.expectStatus('succeeded');
    run.expectFinding('pods', 'ok');
    run.expectNotReached('restart');
    // Not reached is not "not applied": that assertion names what to use instead.
    expect(() => run.expectNotApplied('restart')).toThrow(
      `expectNotApplied: step "restart" never ran; if that is what you expect, use expectNotReached('restart'). The run's act steps: none.`,
    );
    expect(run.steps.map((s) => s.name)).toEqual(['pods']);
    // A store of its own: its audit chain starts here, whatever ran before in this file.
    expect(run.audit[0]).toMatchObject({ seq: 1, entry: expect.stringContaining('"kind":"run.created"') });
  });

  it('skips the actions in diagnose mode and only plans them in plan mode; the cluster is unchanged', async () => {
    await deployCrashingAgent('execution-agent');
    const version = sim.store.get(DEPLOYMENTS, NS, 'execution-agent').metadata.resourceVersion;

    const diagnosed = await runRunbook(agentRecovery(k8s), {
      input: { agent: 'execution-agent' },
      mode: 'diagnose',
    });
    diagnosed.expectStatus('succeeded');
    diagnosed.expectFinding('pods', 'fail');
    diagnosed.expectNotApplied('restart');
    diagnosed.expectAudit('step.act.skipped', 'restart');
    expect(diagnosed.outcome).toEqual({ kind: 'done', summary: 'restart skipped' });
    expect(diagnosed.plans).toEqual({});

    const planned = await runRunbook(agentRecovery(k8s), {
      input: { agent: 'execution-agent' },
      mode: 'plan',
    });
    planned.expectNotApplied('restart');
    planned.expectAudit('plan.recorded', 'restart');
    expect(planned.plan('restart')).toMatchObject({
      action: 'k8s.rollout-restart',
      target: `k8s:${NS}/deployment/execution-agent`,
      risk: 'medium',
      changes: [{ before: null }],
    });

    expect(sim.store.get(DEPLOYMENTS, NS, 'execution-agent').metadata.resourceVersion).toBe(version);
  });

  it('refuses a bad input, naming the field, before anything runs', async () => {
    const refused = runRunbook(agentRecovery(k8s), { input: { agent: '' } });
    await expect(refused).rejects.toThrow(InputValidationError);
    await expect(refused).rejects.toThrow(/Invalid input for runbook "agent-recovery": agent: /);
    // A misspelt field is not dropped silently either.
    await expect(
      runRunbook(agentRecovery(k8s), { input: { agent: 'a', namespce: 'x' } as never }),
    ).rejects.toThrow(/namespce: unknown field; this runbook takes: agent/);
  });

  it('refuses bad options of its own, naming them', async () => {
    const runbook = agentRecovery(k8s);
    await expect(runRunbook(runbook, { input: { agent: 'a' }, actor: TEST_APPROVER })).rejects.toThrow(
      /options of runRunbook: actor: must not be "test-approver"/,
    );
    await expect(
      runRunbook(runbook, { input: { agent: 'a' }, approvals: { restart: 'maybe' as never } }),
    ).rejects.toThrow(/options of runRunbook: approvals/);
    await expect(runRunbook(runbook, { input: { agent: 'a' }, timeout: 'soon' })).rejects.toThrow(
      /options of runRunbook: timeout: expected a duration/,
    );
  });
});

describe('approvals: a destructive change waits for a second person', () => {
  const settings = { LOG_LEVEL: 'info' };

  it('approve (the default): asked, approved by test-approver, applied', async () => {
    await deployAgent('report-agent');
    const run = await runRunbook(configReset(k8s), { input: { agent: 'report-agent', settings } });

    run.expectStatus('succeeded');
    run.expectApplied('reset-config', 'restart');
    const asked = run.expectApprovalAsked('reset-config', 'approved');
    expect(asked).toEqual({
      step: 'reset-config',
      summary: run.plan('reset-config').summary,
      planHash: run.plan('reset-config').hash,
      decision: 'approved',
      decidedBy: TEST_APPROVER,
    });
    expect(run.approvalsAsked).toHaveLength(1); // the restart is medium risk: no approval by default
    run.expectAudit('approval.requested', 'reset-config');
    run.expectAudit('run.suspended', 'reset-config');
    run.expectAudit('approval.approved', 'reset-config');
    expect(configOf('report-agent')).toEqual(settings);
  });

  it('reject: the run ends cancelled and nothing is changed', async () => {
    await deployAgent('analysis-agent');
    const run = await runRunbook(configReset(k8s), {
      input: { agent: 'analysis-agent', settings },
      approvals: 'reject',
    });

    run.expectStatus('cancelled');
    expect(run.error).toMatchObject({ code: 'CANCELLED', message: expect.stringContaining('rejected') });
    run.expectApprovalAsked('reset-config', 'rejected');
    run.expectNotApplied('reset-config');
    run.expectNotReached('restart');
    run.expectAudit('approval.rejected', 'reset-config');
    expect(configOf('analysis-agent')).toEqual({ LOG_LEVEL: 'debug' });
  });

  it('leave: the run stays waiting_approval with its plan', async () => {
    await deployAgent('planning-agent');
    const run = await runRunbook(configReset(k8s), {
      input: { agent: 'planning-agent', settings },
      approvals: 'leave',
    });

    run.expectStatus('waiting_approval');
    run.expectApprovalAsked('reset-config', 'pending');
    run.expectNotApplied('reset-config');
    expect(run.plan('reset-config')).toMatchObject({
      risk: 'high',
      destructive: true,
      changes: [{ target: `k8s:${NS}/configmap/planning-agent-config`, before: 'debug', after: 'info' }],
    });
    expect(configOf('planning-agent')).toEqual({ LOG_LEVEL: 'debug' });
  });

  it('per step, with the engine asking for medium risk too: approves one step and rejects another', async () => {
    await deployAgent('review-agent');
    const restartsBefore = annotationsOf('review-agent')[RESTARTED_AT_ANNOTATION];
    const run = await runRunbook(configReset(k8s), {
      input: { agent: 'review-agent', settings },
      engine: { approvals: { minRisk: 'medium' } },
      approvals: { restart: 'reject' },
    });

    run.expectStatus('cancelled');
    expect(run.approvalsAsked.map((a) => [a.step, a.decision])).toEqual([
      ['reset-config', 'approved'],
      ['restart', 'rejected'],
    ]);
    run.expectApplied('reset-config');
    run.expectNotApplied('restart');
    expect(configOf('review-agent')).toEqual(settings);
    expect(annotationsOf('review-agent')[RESTARTED_AT_ANNOTATION]).toBe(restartsBefore);
  });

  it('per step, refuses an answer for a step that never asked: a misspelt name must not approve by default', async () => {
    await deployAgent('audit-agent');
    const misspelt = runRunbook(configReset(k8s), {
      input: { agent: 'audit-agent', settings },
      engine: { approvals: { minRisk: 'medium' } },
      approvals: { restrat: 'reject', 'reset-config': 'approve' },
    });
    await expect(misspelt).rejects.toMatchObject({ code: 'UNKNOWN_APPROVAL_STEP' });
    await expect(misspelt).rejects.toThrow(
      /^runRunbook: `approvals` answers "restrat", but no such step of the run of "config-reset" asked for approval\. The steps that asked: "reset-config", "restart"\. .+\nRun run_\S+ of runbook "config-reset" \(execute, by test\): succeeded/,
    );

    // A step the run did not reach asked for nothing either.
    await deployAgent('quiet-agent');
    await expect(
      runRunbook(agentRecovery(k8s), { input: { agent: 'quiet-agent' }, approvals: { restart: 'approve' } }),
    ).rejects.toThrow(/`approvals` answers "restart", but .+ The steps that asked: none\./);
  });
});

describe('assertions fail with what was expected and what happened', () => {
  let diagnosed: RunbookTestRun;
  let executed: RunbookTestRun;

  beforeAll(async () => {
    await deployCrashingAgent('failing-agent');
    diagnosed = await runRunbook(agentRecovery(k8s), { input: { agent: 'failing-agent' }, mode: 'diagnose' });
    executed = await runRunbook(agentRecovery(k8s), { input: { agent: 'failing-agent' } });
    for (const clear of cleanups.splice(0)) clear();
  });

  it('expectStatus names both statuses and lists the steps', () => {
    expect(() => diagnosed.expectStatus('failed')).toThrow(
      /Expected the run to be failed, but it is succeeded\.\nRun run_\S+ of runbook "agent-recovery" \(diagnose, by test\): succeeded \(restart skipped\)\n {2}1\. ✖ pods \(check\): fail: 0\/2 pods ready .+\n {2}2\. – restart \(act\): skipped in diagnose mode: k8s\.rollout-restart on k8s:aiwebtest\/deployment\/failing-agent$/,
    );
  });

  it('expectFinding names the step, both statuses and the summary', () => {
    const summary = diagnosed.finding('pods').summary;
    expect(() => diagnosed.expectFinding('pods', 'ok')).toThrow(
      `Expected the finding of check "pods" to be ok, but it is fail: ${summary}`,
    );
  });

  it('finding and plan name the step and the steps there are', () => {
    expect(() => diagnosed.finding('restart')).toThrow(
      'No finding for step "restart": it is an act step, not a check. The run\'s check steps: "pods".',
    );
    expect(() => diagnosed.finding('pod')).toThrow('"pod": the run has no step of that name');
    expect(() => diagnosed.plan('constructor')).toThrow('"constructor": the run has no step of that name');
    expect(() => diagnosed.plan('restart')).toThrow(
      'No plan for step "restart": it recorded no plan: restart (act): skipped in diagnose mode: k8s.rollout-restart on k8s:aiwebtest/deployment/failing-agent. The run\'s act steps: "restart".',
    );
  });

  it('expectApplied says what became of each step', () => {
    expect(() => diagnosed.expectApplied('restart', 'rollback')).toThrow(
      'Expected "restart", "rollback" to be applied, but "restart" is skipped; "rollback" was never reached (no such step). Applied: none.',
    );
    expect(() => diagnosed.expectApplied('pods')).toThrow('"pods" is a check step, not an act step');
  });

  it('expectNotApplied names what was applied, and refuses a name that is no act step', () => {
    const summary = executed.plan('restart').summary;
    expect(() => executed.expectNotApplied('restart')).toThrow(
      `Expected "restart" not to be applied, but "restart" (${summary}) was applied.`,
    );
    expect(() => executed.expectNotApplied('tell')).toThrow('"tell" is a notify step, not an act step');
  });

  it('expectNotApplied refuses a step the run never reached (a typo must not pass), pointing at expectNotReached', () => {
    diagnosed.expectNotApplied('restart'); // reached, and skipped in diagnose mode
    expect(() => diagnosed.expectNotApplied('restrat', 'rollback', 'pods')).toThrow(
      `expectNotApplied: steps "restrat", "rollback" never ran; if that is what you expect, use expectNotReached('restrat', 'rollback'); "pods" is a check step, not an act step. The run's act steps: "restart".`,
    );
    expect(() => diagnosed.expectNotApplied()).toThrow('expectNotApplied: name at least one act step.');
  });

  it('expectNotReached names the steps the run did reach, of any kind', () => {
    executed.expectNotReached('rollback', 'page-on-call');
    expect(() => executed.expectNotReached('rollback', 'restart', 'tell')).toThrow(
      `Expected "rollback", "restart", "tell" never to be reached, but the run reached restart (act): applied: ${executed.plan('restart').summary}; tell (notify): succeeded: slack:#incidents: restarted failing-agent.`,
    );
    expect(() => executed.expectNotReached()).toThrow('expectNotReached: name at least one step.');
  });

  it('expectApprovalAsked lists the approvals asked', () => {
    expect(() => executed.expectApprovalAsked('restart')).toThrow(
      'Expected an approval to be asked for step "restart", but the run asked for: none.',
    );
  });

  it('expectAudit lists the audit trail', () => {
    expect(() => diagnosed.expectAudit('action.applied', 'restart')).toThrow(
      'Expected an audit entry "action.applied" for step "restart", but there is none. The run\'s audit trail: run.created, step.check (pods), step.act.skipped (restart), run.succeeded.',
    );
  });
});

describe('stores and time limits', () => {
  let store: RunStore;

  beforeAll(async () => {
    store = await openStore({ dataDir: ':memory:' });
  });

  afterAll(async () => {
    await store?.close();
  });

  it('keeps the run in a given store, left open, exactly as the snapshot has it', async () => {
    await deployAgent('kept-agent');
    const run = await runRunbook(agentRecovery(k8s), {
      input: { agent: 'kept-agent' },
      store,
      actor: 'alice',
    });

    expect(run.run).toEqual(await store.getRun(run.runId));
    expect(run.steps).toEqual(await store.getSteps(run.runId));
    expect(run.audit).toEqual(await store.readRunAudit(run.runId));
    expect(run.run.requestedBy).toBe('alice');
    await expect(verifyAuditChain(store)).resolves.toMatchObject({ ok: true });
  });

  it('keeps the lines the runbook logged', async () => {
    const chatty = defineRunbook({
      id: 'chatty',
      title: 'Chatty',
      severity: 'P3',
      input: z.object({}),
      async run({ log, step }) {
        log('looking', { at: 'nothing' });
        await step.check(
          'quiet',
          defineCheck({
            kind: 'test.quiet',
            run: async (ctx) => {
              ctx.log('all quiet');
              return finding('ok', 'quiet', null);
            },
          }),
        );
      },
    });
    const run = await runRunbook(chatty, { store });
    expect(run.logs.map((l) => [l.step, l.message])).toEqual([
      [null, 'looking'],
      ['quiet', 'all quiet'],
    ]);
    expect(run.findings).toEqual({ quiet: { status: 'ok', summary: 'quiet', evidence: [], data: null } });
  });

  it('answers a manual gate like a plan, and lists what notify steps sent', async () => {
    const gated = defineRunbook({
      id: 'gated',
      title: 'Gated',
      severity: 'P3',
      input: z.object({ reason: z.string() }),
      async run({ input, step }) {
        const gate = await step.approve('go', { summary: `page the vendor: ${input.reason}` });
        await step.notify('page', { channel: 'pager', message: `paged by ${gate.status}`, severity: 'P2' });
      },
    });
    const run = await runRunbook(gated, { store, input: { reason: 'disk full' } });
    run.expectStatus('succeeded');
    expect(run.expectApprovalAsked('go', 'approved')).toEqual({
      step: 'go',
      summary: 'page the vendor: disk full',
      decision: 'approved',
      decidedBy: TEST_APPROVER,
    });
    expect(run.notifications).toEqual([
      { step: 'page', channel: 'pager', message: 'paged by approved', severity: 'P2' },
    ]);
    // Outside execute mode a gate and a notification are skipped: nothing asked, nothing sent.
    const dry = await runRunbook(gated, { store, input: { reason: 'disk full' }, mode: 'plan' });
    expect([dry.approvalsAsked, dry.notifications]).toEqual([[], []]);
    dry.expectAudit('step.approve.skipped', 'go');
  });

  it('gives up on a plan that changes after every approval instead of approving for ever', async () => {
    let reads = 0;
    const restless = defineRunbook({
      id: 'restless',
      title: 'Restless',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        await step.act(
          'bump',
          defineAction({
            kind: 'test.bump',
            target: 'test:counter',
            risk: 'high',
            destructive: false,
            // What it starts from differs on every read, so an approval never covers the next plan.
            plan: async () => ({
              summary: 'set the counter to 0',
              changes: [{ target: 'test:counter', field: 'value', before: ++reads, after: 0 }],
              params: null,
            }),
            apply: async () => null,
          }),
        );
      },
    });
    await expect(runRunbook(restless, { store })).rejects.toThrow(
      /asked for approval of step "bump" 6 times: every approval was followed by a new plan/,
    );
  });

  it('cancels a run that outlives its time limit and says where it was', async () => {
    const stuck = defineRunbook({
      id: 'stuck',
      title: 'Stuck',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        await step.check(
          'forever',
          defineCheck({
            kind: 'test.forever',
            run: (ctx) =>
              new Promise<Finding<null>>((_, reject) =>
                ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
              ),
          }),
        );
      },
    });
    const started = Date.now();
    await expect(runRunbook(stuck, { store, timeout: '200ms' })).rejects.toThrow(
      /the run of "stuck" did not end within its test timeout of 200ms and was cancelled[\s\S]*: cancelled/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    const [cancelled] = await store.listRuns({ runbookId: 'stuck' });
    expect(cancelled?.status).toBe('cancelled');
  });
});

describe('the example of TESTING.md', () => {
  // docs:begin agent-failure.kit.test.ts
  it('restarts a crash-looping agent, and changes nothing in diagnose mode', async () => {
    const ns = 'aiwebtest';
    const sim = await startKubernetesSimulator({ contextName: 'lab', namespace: ns });
    onTestFinished(() => sim.close());
    const k8s = kubernetes({ kubeConfig: sim.kubeConfig(), expectedContext: 'lab', namespaces: [ns] });
    const labels = { app: 'requirements-agent' };
    const containers = [{ name: 'agent', image: 'aiwebtest/requirements-agent:1.0' }];
    sim.apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'requirements-agent', labels },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers } },
      },
    });
    await sim.settle();
    // The pods running now crash-loop; those the restart creates (a new pod-template-hash) start clean.
    const hash = sim.store.list(PODS, ns).items[0]?.metadata.labels?.['pod-template-hash'];
    sim.faults.inject({ kind: 'crashLoop', selector: `pod-template-hash=${hash}` });
    // Every pod has crashed at least once, so its last words are there for `logs --previous`.
    const crashed = () =>
      sim.store.list(PODS, ns).items.every((p) => JSON.stringify(p.status).includes('CrashLoopBackOff'));
    await vi.waitFor(() => expect(crashed()).toBe(true));
    const input = { agent: 'requirements-agent' };

    const dry = await runRunbook(agentFailure(k8s), { input, mode: 'diagnose' });
    dry.expectNotApplied('restart');

    const run = await runRunbook(agentFailure(k8s), { input });
    run.expectStatus('succeeded');
    run.expectFinding('pods', 'fail');
    run.expectApplied('restart');
    run.expectAudit('action.applied', 'restart');
    const restartedAt = run.plan('restart').changes[0]?.after;
    expect(sim.store.get(DEPLOYMENTS, ns, 'requirements-agent').spec).toMatchObject({
      template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: restartedAt } } },
    });
  });
  // docs:end agent-failure.kit.test.ts
});
