import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BreakerControl, startBreakerControl } from '../../src/resilience/breaker-control';
import { breakerKeys, DEFAULT_BREAKER_PREFIX } from '../../src/resilience/breaker-control-keys';
import type { ForcedState } from '../../src/resilience/breaker-switch';
import {
  deleteServiceKeys,
  REDIS_URL,
  type ReplicaProcess,
  startReplicas,
  uniqueService,
} from './support/breaker-replicas';

// Replicas in real Node processes (support/breaker-replica.ts), each running startBreakerControl against the
// real Redis and printing every change it hears with its local time. The operator forces states from this
// process; the latency of a change is the replica's timestamp minus the moment before force() was called
// (one machine, one clock).

let admin: Redis;
let operator: BreakerControl | undefined;
let processes: ReplicaProcess[] = [];
const services = new Set<string>();

beforeAll(() => {
  admin = new Redis(REDIS_URL);
});
afterEach(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  processes = [];
  await operator?.close();
  operator = undefined;
  for (const s of services) await deleteServiceKeys(admin, s);
  services.clear();
});
afterAll(() => admin.disconnect());

async function setup(
  label: string,
  count: number,
  extra: { heartbeat?: number; heartbeatTtl?: number } = {},
) {
  const service = uniqueService(label);
  services.add(service);
  processes = await startReplicas(
    Array.from({ length: count }, (_, i) => ({
      service,
      replicaId: `r${i + 1}`,
      providers: ['openrouter', 'ollama'],
      ...extra,
    })),
  );
  operator = await startBreakerControl(admin, { service, replicaId: 'operator', onError: () => {} });
  return service;
}

const who = { reason: 'INC-7 OpenRouter outage', actor: 'oncall' };
const changed =
  (provider: string, state: ForcedState, since: number) =>
  (e: { event: string; provider?: string; state?: string; at: number }) =>
    e.event === 'change' && e.provider === provider && e.state === state && e.at >= since;

describe('a forced state reaches every replica process (real processes, real Redis)', () => {
  it('within one second, for every change, in 3 processes', async () => {
    await setup('propagate', 3);
    const steps: [string, ForcedState][] = [
      ['openrouter', 'open'],
      ['ollama', 'closed'],
      ['openrouter', 'closed'],
      ['openrouter', 'auto'],
      ['ollama', 'auto'],
    ];
    const latencies: number[] = [];
    for (const [provider, state] of steps) {
      const before = Date.now();
      await operator?.force(provider, state, who);
      const heard = await Promise.all(
        processes.map((p) => p.waitFor(changed(provider, state, before), 5_000)),
      );
      latencies.push(...heard.map((e) => e.at - before));
    }
    console.info(
      `breaker control propagation over ${latencies.length} deliveries: max ${Math.max(...latencies)} ms, median ${latencies.sort((a, b) => a - b)[Math.floor(latencies.length / 2)]} ms`,
    );
    expect(Math.max(...latencies)).toBeLessThan(1_000);
  });

  it('a replica process started after the force starts in the forced state (its first read already has it)', async () => {
    const service = await setup('late', 3);
    await operator?.force('openrouter', 'open', who);
    await Promise.all(processes.map((p) => p.waitFor(changed('openrouter', 'open', 0))));
    const [late] = await startReplicas([{ service, replicaId: 'r4', providers: ['openrouter', 'ollama'] }]);
    processes.push(late as ReplicaProcess);
    expect(await late?.ready()).toMatchObject({ forced: { openrouter: 'open', ollama: 'auto' }, version: 1 });
    // It announced nothing: it never was in any other state.
    expect(late?.events.filter((e) => e.event === 'change')).toEqual([]);
    expect((await operator?.replicas())?.find((r) => r.replicaId === 'r4')).toMatchObject({
      forced: { openrouter: 'open', ollama: 'auto' },
      reported: { openrouter: 'open', ollama: 'closed' },
    });
  });

  it('a change lost with a killed subscriber connection reaches the replica by the re-read', async () => {
    const service = await setup('lost', 3);
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, service);
    const list = (await admin.client('LIST')) as string;
    const id = list
      .split('\n')
      .find((line) => line.includes(` name=breaker-control:${service}:r2 `))
      ?.match(/\bid=(\d+)/)?.[1];
    expect(id).toBeDefined();
    // The kill and the change in one transaction, and the change is never published: r2 can only learn it by
    // reading it again (on reconnect, or when its heartbeat sees the counter move).
    const before = Date.now();
    await admin
      .multi()
      .client('KILL', 'ID', id as string)
      .incr(keys.version)
      .hset(
        keys.forced,
        'openrouter',
        JSON.stringify({
          state: 'open',
          reason: 'r',
          actor: 'x',
          forcedAt: before,
          expiresAt: null,
          version: 1,
        }),
      )
      .exec();
    const heard = await processes[1]?.waitFor(changed('openrouter', 'open', before), 5_000);
    console.info(`breaker control: a lost change healed after ${(heard?.at ?? 0) - before} ms`);
    // The other replicas learn it at their next heartbeat: the counter moved without a message.
    for (const p of processes) await p.waitFor(changed('openrouter', 'open', before), 3_000);
    expect((heard?.at ?? Infinity) - before).toBeLessThan(2_000);
  });

  it('a stopped process (SIGSTOP) stops counting as live after its heartbeat TTL, and catches up when resumed', async () => {
    await setup('stopped', 3, { heartbeat: 300, heartbeatTtl: 900 });
    const live = async () => ((await operator?.replicas()) ?? []).map((r) => r.replicaId);
    await vi.waitFor(async () => expect(await live()).toEqual(['operator', 'r1', 'r2', 'r3']), {
      timeout: 3_000,
    });
    const frozen = processes[1];
    frozen?.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await vi.waitFor(async () => expect(await live()).toEqual(['operator', 'r1', 'r3']), {
      timeout: 5_000,
      interval: 50,
    });
    expect(Date.now() - stoppedAt).toBeLessThan(900 + 1_500); // the TTL, plus the polls' lag on a busy machine
    // A change while it is stopped reaches it when it runs again (buffered, or by the re-read).
    const before = Date.now();
    await operator?.force('openrouter', 'open', who);
    frozen?.child.kill('SIGCONT');
    await frozen?.waitFor(changed('openrouter', 'open', before), 5_000);
    await vi.waitFor(async () => expect(await live()).toEqual(['operator', 'r1', 'r2', 'r3']), {
      timeout: 3_000,
    });
  });
});
