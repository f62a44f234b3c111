import type { KubernetesSimulator } from '@aiwebtest/runbooks/testing';
import { AGENTS, type AgentName, PLATFORM_NAMESPACE } from './manifests';
import { podsMatching } from './platform-status';

/**
 * What the agents write to their logs, so that the manual's diagnosis steps
 * (`kubectl logs -l app=requirements-agent --tail=100`, `… | grep ERROR`) find what the runbooks look for.
 * Lines follow the simulator's own format (`LEVEL message`; the time is kept beside each line).
 */

/**
 * How an agent is doing: `healthy` writes INFO lines; `failing` writes the manual's
 * `<Agent> is not responding` and upstream errors; `degraded` works but with errors and low confidence
 * (runbook 2); `oomKilled` writes the memory pressure warnings that precede an OOM kill.
 */
export type AgentLogMode = 'healthy' | 'failing' | 'degraded' | 'oomKilled';

/** `requirements-agent` → `RequirementsAgent`, the class name the manual's log lines use. */
export function agentClassName(agent: string): string {
  return agent
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

/**
 * The lines one pass of an agent writes in `mode`. `tick` varies ids and figures between passes so the
 * tail of a log is not the same line repeated.
 */
export function agentLogLines(agent: AgentName, mode: AgentLogMode, tick = 0): string[] {
  const cls = agentClassName(agent);
  const request = `req-${(tick * 7919 + agent.length * 131).toString(16).padStart(6, '0')}`;
  switch (mode) {
    case 'healthy':
      return [
        `INFO ${cls} processed request ${request} in ${180 + (tick % 7) * 23}ms (confidence=0.9${tick % 10})`,
        `INFO GET /health 200`,
      ];
    case 'degraded':
      return [
        `WARNING ${cls} request ${request} took ${61 + (tick % 30)}s (slow response, threshold 60s)`,
        `ERROR ${cls} OpenRouter API error: 429 Too Many Requests (rate limit exceeded) for ${request}`,
        `WARNING ${cls} low confidence ${(0.55 + (tick % 10) / 100).toFixed(2)} for ${request} (threshold 0.7)`,
      ];
    case 'failing':
      return [
        `ERROR ${cls} is not responding`,
        `ERROR ${cls} request ${request} failed: upstream connect error or disconnect/reset before headers`,
        `ERROR GET /health 503`,
      ];
    case 'oomKilled':
      return [
        `WARNING ${cls} memory usage at 3.9Gi of 4Gi limit`,
        `ERROR ${cls} MemoryError: unable to allocate buffer for request ${request}`,
      ];
  }
}

/** Options of {@link appendAgentLogs}. */
export interface AppendAgentLogsOptions {
  /** @default "aiwebtest" */
  namespace?: string;
  /**
   * Modes forced per agent (a chaos scenario's). An agent not named writes `healthy` lines from its
   * Ready pods and `failing` lines from pods that are running but not Ready.
   */
  modes?: Partial<Record<AgentName, AgentLogMode>>;
  /** Varies the lines between passes; see {@link agentLogLines}. @default 0 */
  tick?: number;
}

interface PodView {
  metadata: { name: string };
  spec?: { containers?: { name: string }[] };
  status?: {
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; state?: { running?: unknown } }[];
  };
}

/**
 * Appends one pass of log lines to every running container of every agent pod. A container that is not
 * running (waiting in a back-off, being created) has no process to write, so it is skipped. Returns how
 * many lines were written per agent.
 */
export function appendAgentLogs(
  simulator: Pick<KubernetesSimulator, 'store' | 'appendLog'>,
  options: AppendAgentLogsOptions = {},
): Record<AgentName, number> {
  const namespace = options.namespace ?? PLATFORM_NAMESPACE;
  const written = Object.fromEntries(AGENTS.map((a) => [a, 0])) as Record<AgentName, number>;
  for (const agent of AGENTS) {
    for (const pod of podsMatching(simulator.store, namespace, { app: agent }) as PodView[]) {
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      const mode = options.modes?.[agent] ?? (ready ? 'healthy' : 'failing');
      const lines = agentLogLines(agent, mode, options.tick ?? 0);
      for (const c of pod.status?.containerStatuses ?? []) {
        if (c.state?.running === undefined) continue;
        simulator.appendLog(namespace, pod.metadata.name, c.name, lines.join('\n'));
        written[agent] += lines.length;
      }
    }
  }
  return written;
}
