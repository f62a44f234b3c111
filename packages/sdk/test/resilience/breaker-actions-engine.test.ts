import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineRunbook, type Notification } from '../../src/core/runbook';
import { closeBreaker, openBreaker } from '../../src/resilience/breaker-actions';
import { type BreakerControl, startBreakerControl } from '../../src/resilience/breaker-control';
import { breakerKeys, DEFAULT_BREAKER_PREFIX } from '../../src/resilience/breaker-control-keys';
import { engineFixture } from '../support/engine-fixture';
import { postgresStore, uniqueSchema } from '../support/stores';
import { openrouterOutage, openrouterRecovered } from './support/breaker-replica-examples';
import {
  deleteServiceKeys,
  REDIS_URL,
  type ReplicaProcess,
  startReplicas,
  uniqueService,
} from './support/breaker-replicas';

// The breaker actions through the real Engine (PostgreSQL run store), with the service's replicas in real
// processes: the manual's Runbook 6 as BREAKER-CONTROL.md shows it (support/breaker-replica-examples.ts), an
// engine that dies between apply and verify, and the approval closeBreaker's risk asks for.

let redis: Redis;
let processes: ReplicaProcess[] = [];
const controls: { client: Redis; control: BreakerControl }[] = [];
const services = new Set<string>();
const sent: Notification[] = [];

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterEach(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  processes = [];
  for (const { client, control } of controls.splice(0)) {
    await control.close();
    client.disconnect();
  }
  for (const s of services) await deleteServiceKeys(redis, s);
  services.clear();
});
afterAll(() => redis.disconnect());

async function service(label: string, replicas: number) {
  const name = uniqueService(label);
  services.add(name);
  processes = await startReplicas(
    Array.from({ length: replicas }, (_, i) => ({
      service: name,
      replicaId: `r${i + 1}`,
      providers: ['openrouter', 'ollama'],
    })),
  );
  return name;
}

const fx = engineFixture(() => postgresStore(uniqueSchema('breaker')));
const engine = (runbooks: Parameters<typeof fx.engine>[0]) =>
  fx.engine(runbooks, { notifier: { notify: async (n) => void sent.push(n) } });

describe('Runbook 6 through the engine', () => {
  it('switches every replica process to the fallback, verified, notifies, and switches back', async () => {
    const s = await service('runbook6', 3);
    const e = engine([openrouterOutage(redis), openrouterRecovered(redis)]);

    const planned = await e.start(
      'openrouter-outage',
      { service: s, incident: 'INC-9' },
      { mode: 'plan', actor: 'alice' },
    );
    expect(planned.status).toBe('succeeded');
    const planStep = (await e.getRun(planned.runId)).steps[0];
    expect(planStep?.result).toMatchObject({
      status: 'planned',
      plan: {
        changes: [
          { field: 'forced', before: 'auto', after: 'open' },
          { field: 'expiresAt', before: null, after: '1h after the apply' },
        ],
      },
    });
    expect(await redis.hlen(breakerKeys(DEFAULT_BREAKER_PREFIX, s).forced)).toBe(0); // a plan changes nothing

    const run = await e.start(
      'openrouter-outage',
      { service: s, incident: 'INC-9' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(run).toMatchObject({
      status: 'succeeded',
      outcome: { kind: 'done', summary: `${s} serves from ollama` },
    });
    const { steps } = await e.getRun(run.runId);
    expect(steps.map((x) => [x.name, x.status])).toEqual([
      ['switch-to-fallback', 'succeeded'],
      ['status-page', 'succeeded'],
    ]);
    expect(steps[0]?.result).toMatchObject({
      status: 'applied',
      applied: { recovered: false, data: { version: 1, receivers: 3 } },
      verification: { status: 'ok', summary: expect.stringContaining('All 3 live replica(s)') },
    });
    for (const p of processes) {
      await p.waitFor((ev) => ev.event === 'change' && ev.provider === 'openrouter' && ev.state === 'open');
    }
    const record = JSON.parse(
      (await redis.hget(breakerKeys(DEFAULT_BREAKER_PREFIX, s).forced, 'openrouter')) ?? '{}',
    );
    expect(record).toMatchObject({ actor: 'alice', reason: 'INC-9: OpenRouter outage' });
    expect(record.expiresAt - record.forcedAt).toBe(3_600_000);
    expect(sent.at(-1)).toMatchObject({ channel: 'statuspage' });

    const back = await e.start(
      'openrouter-recovered',
      { service: s, incident: 'INC-9' },
      { mode: 'execute', actor: 'bob' },
    );
    expect(back.status).toBe('succeeded');
    for (const p of processes) {
      await p.waitFor((ev) => ev.event === 'change' && ev.provider === 'openrouter' && ev.state === 'auto');
    }
    expect((await e.verifyAudit()).ok).toBe(true);
  });

  it('an engine that dies between apply and verify: the next one sees the change made, verifies, applies nothing twice', async () => {
    const s = await service('crash', 3);
    let crashed = false;
    const rb = defineRunbook({
      id: 'breaker-crash',
      title: 'open a breaker, dying after the apply',
      severity: 'P1',
      input: z.object({}),
      async run({ step }) {
        const action = openBreaker(redis, { service: s, provider: 'openrouter', reason: 'INC-10' });
        const apply = action.apply.bind(action);
        action.apply = async (ctx, plan) => {
          const out = await apply(ctx, plan);
          if (!crashed) {
            crashed = true;
            // The process stalls right after the write: another engine takes the run over.
            await fx.sut.store.driver.query(
              `UPDATE runs SET lease_owner = 'someone-else', lease_expires_at = now() - interval '1 minute' WHERE id = $1`,
              [ctx.runId],
            );
          }
          return out;
        };
        await step.act('open-openrouter', action);
      },
    });
    const first = await engine([rb]).start('breaker-crash', {}, { mode: 'execute', actor: 'alice' });
    expect(first.status).toBe('running');
    expect((await fx.sut.store.getSteps(first.runId)).find((x) => x.name === 'open-openrouter')?.status).toBe(
      'applying',
    );

    const resumed = await engine([rb]).resume(first.runId);
    expect(resumed.status).toBe('succeeded');
    expect(
      (await fx.sut.store.getSteps(first.runId)).find((x) => x.name === 'open-openrouter')?.result,
    ).toMatchObject({
      status: 'applied',
      applied: { recovered: true, data: null },
      verification: { status: 'ok', summary: expect.stringContaining('All 3 live replica(s)') },
    });
    expect(await redis.get(breakerKeys(DEFAULT_BREAKER_PREFIX, s).version)).toBe('1'); // written once
  });

  it('closeBreaker waits for a second person (risk high), then forces the breaker closed', async () => {
    const s = uniqueService('approve');
    services.add(s);
    const client = new Redis(REDIS_URL);
    const replica = await startBreakerControl(client, { service: s, replicaId: 'a', onError: () => {} });
    controls.push({ client, control: replica });
    // The chain registers its providers: an action refuses a provider no live replica has.
    replica.register(['openrouter', 'ollama']);
    await vi.waitFor(
      async () => expect((await replica.replicas())[0]?.providers).toEqual(['openrouter', 'ollama']),
      {
        timeout: 2_000,
      },
    );
    const rb = defineRunbook({
      id: 'force-close',
      title: 'force the openrouter breaker closed',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act(
          'close-openrouter',
          closeBreaker(redis, { service: s, provider: 'openrouter', reason: 'INC-11' }),
        );
      },
    });
    const e = engine([rb]);
    const started = await e.start('force-close', {}, { mode: 'execute', actor: 'alice' });
    expect(started.status).toBe('waiting_approval');
    expect(started.pendingApproval?.plan).toMatchObject({
      action: 'resilience.close-breaker',
      risk: 'high',
      changes: [{ before: 'auto', after: 'closed' }],
    });
    expect(replica.forced('openrouter')).toBe('auto');
    await e.approve(started.runId, { actor: 'bob' });
    expect((await e.resume(started.runId)).status).toBe('succeeded');
    expect(replica.forced('openrouter')).toBe('closed');
  });
});
