import { z } from 'zod';

/** The six AI-Web-Test agents, named as their Kubernetes deployments (`app=<name>`). */
export const AGENT_NAMES = [
  'requirements-agent',
  'generation-agent',
  'execution-agent',
  'observation-agent',
  'analysis-agent',
  'evolution-agent',
] as const;
export const AgentName = z.enum(AGENT_NAMES);
/** One of {@link AGENT_NAMES}. */
export type AgentName = z.infer<typeof AgentName>;

/**
 * What is wrong with a broken agent. `crash-loop-after-oom` is transient: new pods come up fine, so a
 * rollout restart heals it. `bad-config` is not: new pods read the same config and crash again.
 */
export const FAULTS = ['crash-loop-after-oom', 'bad-config'] as const;
export const Fault = z.enum(FAULTS);
/** One of {@link FAULTS}. */
export type Fault = z.infer<typeof Fault>;

/** Faults a rollout restart clears. */
export const TRANSIENT_FAULTS: ReadonlySet<Fault> = new Set<Fault>(['crash-loop-after-oom']);

/** One agent's deployment as the lab keeps it. */
export const AgentState = z
  .object({
    /** Desired pods (`spec.replicas`). */
    replicas: z.number().int().min(1),
    /** Pods passing their readiness probe (`status.readyReplicas`). */
    readyReplicas: z.number().int().min(0),
    /** The pod template's `kubectl.kubernetes.io/restartedAt` annotation; `null` until the first restart. */
    restartedAt: z.iso.datetime().nullable(),
    /** Why the pods crash-loop; `null` when the agent is healthy. */
    fault: Fault.nullable(),
    /** The most recent log lines of the agent's pods, oldest first. */
    logs: z.array(z.string()),
  })
  .refine((a) => a.readyReplicas <= a.replicas, {
    path: ['readyReplicas'],
    message: 'must not exceed replicas',
  });
/** One agent's deployment as the lab keeps it. */
export type AgentState = z.infer<typeof AgentState>;

/** The whole lab: one namespace holding the six agents. */
export const LabState = z.object({
  version: z.literal(1),
  namespace: z.string().min(1),
  agents: z.record(AgentName, AgentState),
});
/** The whole lab. */
export type LabState = z.infer<typeof LabState>;

/** The namespace of the AI-Web-Test cluster, as in the operations manual. */
export const LAB_NAMESPACE = 'aiwebtest';

/** How many log lines the lab keeps per agent. */
export const LOG_LIMIT = 200;

/** A lab where every agent runs two ready pods and none was ever restarted. */
export function initialLabState(now: Date = new Date()): LabState {
  const agents = Object.fromEntries(
    AGENT_NAMES.map((name) => [
      name,
      {
        replicas: 2,
        readyReplicas: 2,
        restartedAt: null,
        fault: null,
        logs: [logLine(now, 'INFO', `${agentClass(name)} ready on :8000`)],
      },
    ]),
  ) as Record<AgentName, AgentState>;
  return { version: 1, namespace: LAB_NAMESPACE, agents };
}

/** The class name the agent logs under: `requirements-agent` → `RequirementsAgent`. */
export function agentClass(name: AgentName): string {
  return name
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/** A log line as the agents write them: `<ISO time> <LEVEL> <message>`. */
export function logLine(at: Date, level: 'INFO' | 'WARN' | 'ERROR', message: string): string {
  return `${at.toISOString()} ${level} ${message}`;
}
