import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { DEFAULT_BREAKER_PREFIX } from '../../../src/resilience/breaker-control-keys';

/** The Redis the tests use (shared with other suites: every test uses service names of its own). */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const SDK_DIR = fileURLToPath(new URL('../../..', import.meta.url));
const SCRIPTS = {
  replica: fileURLToPath(new URL('./breaker-replica.ts', import.meta.url)),
  deaf: fileURLToPath(new URL('./breaker-replica-deaf.ts', import.meta.url)),
};

let counter = 0;
/** A service name no other test (or test run) uses. */
export function uniqueService(label: string): string {
  return `t-${label}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
}

/** Deletes every key of `service` (the tests' cleanup; the shared Redis is never flushed). */
export async function deleteServiceKeys(redis: Redis, service: string, prefix = DEFAULT_BREAKER_PREFIX) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:{${service}}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** What a replica process is told. */
export interface ReplicaConfig {
  redisUrl?: string;
  service: string;
  replicaId: string;
  prefix?: string;
  providers: string[];
  /** ms */
  heartbeat?: number;
  /** ms */
  heartbeatTtl?: number;
}

/** A line a replica process printed. `at` is its local clock (the same machine's as the test's). */
export interface ReplicaEvent {
  event: 'ready' | 'change' | 'error' | 'closed';
  at: number;
  provider?: string;
  state?: string;
  forced?: Record<string, string>;
  version?: number;
  message?: string;
}

/** A replica in a real Node process (`process.execPath --import tsx`), and what it printed. */
export class ReplicaProcess {
  readonly child: ChildProcess;
  readonly events: ReplicaEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #waiters = new Set<() => void>();
  #stderr = '';

  constructor(
    readonly config: ReplicaConfig,
    kind: keyof typeof SCRIPTS = 'replica',
  ) {
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', SCRIPTS[kind], JSON.stringify({ redisUrl: REDIS_URL, ...config })],
      { cwd: SDK_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let buffer = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buffer += d.toString();
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line.startsWith('{')) this.events.push(JSON.parse(line) as ReplicaEvent);
        newline = buffer.indexOf('\n');
      }
      for (const wake of this.#waiters) wake();
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        resolve({ code, signal });
        for (const wake of this.#waiters) wake();
      });
    });
  }

  get id(): string {
    return this.config.replicaId;
  }

  /** The first event (already printed or to come) that matches, or a rejection after `timeoutMs`. */
  waitFor(match: (e: ReplicaEvent) => boolean, timeoutMs = 10_000): Promise<ReplicaEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(match);
        if (found) return done(() => resolve(found));
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          return done(() => reject(new Error(`replica ${this.id} exited: ${this.#stderr.slice(-2_000)}`)));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`replica ${this.id}: no matching event within ${timeoutMs}ms`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        settle();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves with the `ready` line: the forced states the replica held when startBreakerControl resolved. */
  ready(): Promise<ReplicaEvent> {
    return this.waitFor((e) => e.event === 'ready', 20_000);
  }

  /** SIGTERM (a clean shutdown that removes the heartbeat), then waits for the exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGCONT'); // a stopped process cannot handle SIGTERM
      this.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Starts replica processes and waits until each has started. */
export async function startReplicas(configs: ReplicaConfig[], kind: keyof typeof SCRIPTS = 'replica') {
  const replicas = configs.map((c) => new ReplicaProcess(c, kind));
  await Promise.all(replicas.map((r) => r.ready()));
  return replicas;
}
