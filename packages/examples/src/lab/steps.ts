/**
 * Checks and actions over the local lab, shaped like the Kubernetes primitives they stand in for
 * (`kubectl get pods`, `kubectl logs --tail`, `kubectl rollout restart`), so a runbook swaps its imports
 * when the real cluster integration arrives and keeps its logic.
 */
import {
  type Action,
  type Cell,
  type Check,
  defineAction,
  defineCheck,
  type Finding,
  finding,
  NonRetriableError,
  type ResourceRef,
  resourceRef,
} from '@aiwebtest/runbooks';
import type { Lab } from './lab';
import type { AgentName, AgentState, LabState } from './state';

/** Which agent deployment, in which namespace. */
export interface AgentRef {
  namespace: string;
  agent: AgentName;
}

/** The annotation `kubectl rollout restart` sets on the pod template. */
export const RESTARTED_AT_FIELD = 'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]';

/** The agent's deployment as a {@link ResourceRef}: `lab:aiwebtest/deployment/requirements-agent`. */
export function deploymentRef(ref: AgentRef): ResourceRef {
  return resourceRef('lab', ref.namespace, 'deployment', ref.agent);
}

/** True when every desired pod is ready. */
export function isReady(agent: AgentState): boolean {
  return agent.readyReplicas === agent.replicas;
}

/** What the pod check found. */
export interface PodStatusData {
  agent: AgentName;
  replicas: number;
  readyReplicas: number;
  restartedAt: string | null;
}

/** `kubectl get pods -l app=<agent>`: `ok` when every pod is ready, `fail` otherwise; the pods as a table. */
export function podStatus(lab: Lab, ref: AgentRef): Check<PodStatusData> {
  return defineCheck({
    kind: 'lab.pod-status',
    description: `Pods of deployment/${ref.agent} in ${ref.namespace}: are they all ready?`,
    async run() {
      const agent = await readAgentIn(lab, ref);
      return podFinding(ref, agent);
    },
  });
}

function podFinding(ref: AgentRef, agent: AgentState): Finding<PodStatusData> {
  const ready = isReady(agent);
  const rows: Cell[][] = Array.from({ length: agent.replicas }, (_, i) => {
    const podReady = i < agent.readyReplicas;
    return [`${ref.agent}-${i}`, podReady ? '1/1' : '0/1', podReady ? 'Running' : 'CrashLoopBackOff'];
  });
  const counts = `${agent.readyReplicas}/${agent.replicas} pods ready`;
  return finding(
    ready ? 'ok' : 'fail',
    ready ? `deployment/${ref.agent}: ${counts}` : `deployment/${ref.agent}: ${counts}, pods crash-looping`,
    {
      agent: ref.agent,
      replicas: agent.replicas,
      readyReplicas: agent.readyReplicas,
      restartedAt: agent.restartedAt,
    },
    [
      {
        kind: 'table',
        title: `pods -l app=${ref.agent} -n ${ref.namespace}`,
        columns: ['pod', 'ready', 'status'],
        rows,
      },
    ],
  );
}

/** What the log check found. */
export interface PodLogsData {
  lines: number;
  errors: number;
}

/** `kubectl logs -l app=<agent> --tail=<tail>`: `warn` when the tail holds ERROR lines; the lines as evidence. */
export function podLogs(lab: Lab, ref: AgentRef & { tail?: number }): Check<PodLogsData> {
  const tail = ref.tail ?? 100;
  return defineCheck({
    kind: 'lab.pod-logs',
    description: `The last ${tail} log lines of deployment/${ref.agent} in ${ref.namespace}`,
    async run() {
      const lines = (await readAgentIn(lab, ref)).logs.slice(-tail);
      const errors = lines.filter((line) => / ERROR /.test(line));
      const latest = errors.at(-1)?.replace(/^\S+ ERROR /, '');
      return finding(
        errors.length > 0 ? 'warn' : 'ok',
        errors.length > 0
          ? `${errors.length} error line(s) in the last ${lines.length}; latest: ${latest}`
          : `no errors in the last ${lines.length} line(s)`,
        { lines: lines.length, errors: errors.length },
        [{ kind: 'log', title: `logs -l app=${ref.agent} -n ${ref.namespace} --tail=${tail}`, lines }],
      );
    },
  });
}

/** The parameters of an approved restart: the exact annotation value to set. */
export interface RolloutRestartParams {
  restartedAt: string;
}

/** What the restart's apply reports. */
export interface RolloutRestartResult {
  restartedAt: string;
  readyReplicas: number;
  replicas: number;
}

/**
 * `kubectl rollout restart deployment/<agent>`: a new `restartedAt` on the pod template replaces every pod.
 * Plans nothing when the agent is already ready. There is no revert: a restart has no inverse.
 */
export function rolloutRestart(
  lab: Lab,
  ref: AgentRef,
): Action<RolloutRestartParams | null, RolloutRestartResult> {
  const target = deploymentRef(ref);
  return defineAction<RolloutRestartParams | null, RolloutRestartResult>({
    kind: 'lab.rollout-restart',
    target,
    risk: 'medium',
    destructive: false,
    description: `Rollout restart of deployment/${ref.agent} in ${ref.namespace}`,
    budget: { max: 3, per: '1h' },

    async plan() {
      const agent = await readAgentIn(lab, ref);
      if (isReady(agent)) {
        return {
          summary: `deployment/${ref.agent} is ready (${agent.readyReplicas}/${agent.replicas}); nothing to restart`,
          changes: [],
          params: null,
        };
      }
      // The timestamp is decided here so the apply sets exactly the value that was planned and approved.
      const restartedAt = new Date().toISOString();
      return {
        summary: `restart deployment/${ref.agent} in ${ref.namespace} (${agent.readyReplicas}/${agent.replicas} ready)`,
        changes: [{ target, field: RESTARTED_AT_FIELD, before: agent.restartedAt, after: restartedAt }],
        params: { restartedAt },
      };
    },

    async apply(ctx, plan) {
      if (!plan.params)
        throw new NonRetriableError(`The plan for deployment/${ref.agent} has nothing to apply.`);
      ctx.log(`setting restartedAt=${plan.params.restartedAt} on deployment/${ref.agent}`);
      const agent = await lab.restartAgent(ref.agent, plan.params.restartedAt);
      return {
        restartedAt: plan.params.restartedAt,
        readyReplicas: agent.readyReplicas,
        replicas: agent.replicas,
      };
    },

    async verify() {
      const agent = await readAgentIn(lab, ref);
      const pods = podFinding(ref, agent);
      if (pods.status === 'ok') return { ...pods, data: { ...pods.data } };
      const logs = agent.logs.slice(-10);
      return {
        status: 'fail',
        summary: `still ${agent.readyReplicas}/${agent.replicas} pods ready after the restart`,
        evidence: [
          ...pods.evidence,
          { kind: 'log', title: `logs -l app=${ref.agent} --tail=10`, lines: logs },
        ],
        data: { ...pods.data },
      };
    },
  });
}

/** Reads the agent, refusing a namespace the lab does not have (retrying cannot help). */
async function readAgentIn(lab: Lab, ref: AgentRef): Promise<AgentState> {
  const state: LabState = await lab.readState();
  if (state.namespace !== ref.namespace) {
    throw new NonRetriableError(
      `Namespace "${ref.namespace}" does not exist in the lab at ${lab.dir}; it has only "${state.namespace}". Pass namespace=${state.namespace}.`,
      { code: 'LAB_NAMESPACE_NOT_FOUND' },
    );
  }
  return state.agents[ref.agent];
}
