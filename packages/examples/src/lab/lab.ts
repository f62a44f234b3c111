import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { NonRetriableError } from '@aiwebtest/runbooks';
import {
  type AgentName,
  type AgentState,
  agentClass,
  type Fault,
  initialLabState,
  LabState,
  LOG_LIMIT,
  logLine,
  TRANSIENT_FAULTS,
} from './state';

/** Where the lab lives when no directory is given. */
export const DEFAULT_LAB_DIR = '.runbook/lab';
/** The environment variable that overrides {@link DEFAULT_LAB_DIR}. */
export const LAB_DIR_ENV = 'AIWEBTEST_LAB_DIR';
/** The state file's name inside the lab directory. */
export const LAB_STATE_FILE = 'state.json';

/** The lab directory: `$AIWEBTEST_LAB_DIR`, else `.runbook/lab`, resolved against the working directory. */
export function defaultLabDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env[LAB_DIR_ENV] || DEFAULT_LAB_DIR);
}

/** The lab's state file cannot be read as a lab: not JSON, or a field is missing or wrong. */
export class LabStateError extends NonRetriableError {
  /** The state file. */
  readonly file: string;
  /** The bad field's path, e.g. `agents.requirements-agent.readyReplicas`; `(root)` for the whole file. */
  readonly field: string;
  constructor(file: string, field: string, problem: string, cause?: unknown) {
    super(
      `Lab state file ${file} is invalid at ${field}: ${problem}. Fix that field, or delete the file to reset the lab to all agents healthy.`,
      { code: 'LAB_STATE_INVALID', details: { file, field }, cause },
    );
    this.file = file;
    this.field = field;
  }
}
/** True when `e` is a {@link LabStateError}. */
export function isLabStateError(e: unknown): e is LabStateError {
  return e instanceof LabStateError;
}

/**
 * A local stand-in for the AI-Web-Test cluster: the six agents' deployments, kept in one JSON file so
 * that a runbook run and the `aiwebtest-lab` command (separate processes) see the same world.
 */
export interface Lab {
  /** The lab directory (absolute). */
  readonly dir: string;
  /** The state file (absolute). */
  readonly file: string;
  /** The whole lab. A lab whose file does not exist yet has every agent healthy; reading never writes. */
  readState(): Promise<LabState>;
  /** One agent's deployment. */
  readAgent(name: AgentName): Promise<AgentState>;
  /** Makes the agent's pods crash-loop with `fault` (default `crash-loop-after-oom`): no pod is ready. */
  breakAgent(name: AgentName, fault?: Fault): Promise<AgentState>;
  /** Clears any fault: every pod ready. `restartedAt` is left as it was. */
  healAgent(name: AgentName): Promise<AgentState>;
  /**
   * `kubectl rollout restart`: sets the pod template's `restartedAt` annotation, which replaces every pod.
   * The new pods are ready unless the fault survives a restart (`bad-config`).
   */
  restartAgent(name: AgentName, restartedAt?: string): Promise<AgentState>;
}

/** Opens the lab in `dir` (default {@link defaultLabDir}). Nothing is read or written until a method is called. */
export function openLab(dir: string = defaultLabDir()): Lab {
  const absDir = resolve(dir);
  const file = join(absDir, LAB_STATE_FILE);

  async function readState(): Promise<LabState> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return initialLabState();
      throw e;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new LabStateError(file, '(root)', `not valid JSON (${(e as Error).message})`, e);
    }
    const parsed = LabState.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.length ? issue.path.map(String).join('.') : '(root)';
      throw new LabStateError(file, field, issue?.message ?? 'invalid', parsed.error);
    }
    return parsed.data;
  }

  /**
   * Read, change one agent, write atomically (temp file + rename) so a reader never sees half a file — under
   * a lock file, so that two writers (a `break` and a runbook's restart) never lose each other's change.
   */
  async function updateAgent(
    name: AgentName,
    change: (agent: AgentState, now: Date) => AgentState,
  ): Promise<AgentState> {
    await mkdir(dirname(file), { recursive: true });
    return withLockFile(`${file}.lock`, () => writeAgent(name, change));
  }

  async function writeAgent(
    name: AgentName,
    change: (agent: AgentState, now: Date) => AgentState,
  ): Promise<AgentState> {
    const state = await readState();
    const next = change(state.agents[name], new Date());
    const updated: LabState = {
      ...state,
      agents: { ...state.agents, [name]: { ...next, logs: next.logs.slice(-LOG_LIMIT) } },
    };
    const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    try {
      await writeFile(temp, `${JSON.stringify(updated, null, 2)}\n`, 'utf8');
      await rename(temp, file);
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
    return updated.agents[name];
  }

  return {
    dir: absDir,
    file,
    readState,
    readAgent: async (name) => (await readState()).agents[name],

    breakAgent: (name, fault = 'crash-loop-after-oom') =>
      updateAgent(name, (agent, now) => ({
        ...agent,
        readyReplicas: 0,
        fault,
        logs: [...agent.logs, ...faultLogs(name, fault, now)],
      })),

    healAgent: (name) =>
      updateAgent(name, (agent, now) => ({
        ...agent,
        readyReplicas: agent.replicas,
        fault: null,
        logs: [...agent.logs, logLine(now, 'INFO', `${agentClass(name)} ready on :8000`)],
      })),

    restartAgent: (name, restartedAt = new Date().toISOString()) =>
      updateAgent(name, (agent, now) => {
        const restarted = logLine(
          now,
          'INFO',
          `rollout restart: replacing ${agent.replicas} pod(s) (restartedAt=${restartedAt})`,
        );
        const survives = agent.fault !== null && !TRANSIENT_FAULTS.has(agent.fault);
        if (agent.fault && survives) {
          return {
            ...agent,
            restartedAt,
            logs: [...agent.logs, restarted, ...faultLogs(name, agent.fault, now)],
          };
        }
        return {
          ...agent,
          restartedAt,
          readyReplicas: agent.replicas,
          fault: null,
          logs: [...agent.logs, restarted, logLine(now, 'INFO', `${agentClass(name)} ready on :8000`)],
        };
      }),
  };
}

/** What a crash-looping agent writes, per fault. */
function faultLogs(name: AgentName, fault: Fault, now: Date): string[] {
  const cls = agentClass(name);
  switch (fault) {
    case 'crash-loop-after-oom':
      return [
        logLine(now, 'WARN', `${cls} memory usage 1.97Gi of 2Gi limit`),
        logLine(now, 'ERROR', `container ${name} OOMKilled (exit code 137)`),
        logLine(now, 'ERROR', `${cls} is not responding`),
        logLine(now, 'WARN', `Back-off restarting failed container ${name}`),
      ];
    case 'bad-config':
      return [
        logLine(
          now,
          'ERROR',
          `invalid configuration: OPENROUTER_BASE_URL "htps://openrouter.ai/api/v1" is not a valid URL`,
        ),
        logLine(now, 'ERROR', `${cls} failed to start (exit code 1)`),
        logLine(now, 'WARN', `Back-off restarting failed container ${name}`),
      ];
  }
}

/** A writer holds the lab's lock for milliseconds; an older lock was left by one that crashed. */
const STALE_LOCK_MS = 10_000;

/** Runs `work` holding an exclusive lock file (created with O_EXCL), waiting for other holders. */
async function withLockFile<T>(lockPath: string, work: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      await (await open(lockPath, 'wx')).close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const since = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (since > STALE_LOCK_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > giveUpAt) {
        throw new Error(
          `The lab state is locked by another writer (${lockPath}); try again, or remove the file if nothing is running.`,
        );
      }
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}
