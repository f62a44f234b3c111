import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type BreakerControl, startBreakerControl } from '../../src/resilience/breaker-control';
import type { ProviderChain } from '../../src/resilience/provider-chain';
import { engineFixture } from '../support/engine-fixture';
import { postgresStore, uniqueSchema } from '../support/stores';
import { ask, chainOver, type Providers, startProviders } from './llm-fixture';
import { openrouterOutage, openrouterRecovered } from './support/breaker-replica-examples';
import { deleteServiceKeys, REDIS_URL, uniqueService } from './support/breaker-replicas';

// The manual's Runbook 6 end to end on the real pieces: two replicas of a backend, each with its own Redis
// connection, breaker control and provider chain over the OpenRouter and Ollama doubles; the runbook run by the
// Engine (PostgreSQL store). The other tests prove each piece alone; this one proves they fit.

interface Replica {
  redis: Redis;
  control: BreakerControl;
  chain: ProviderChain;
}

let admin: Redis;
let providers: Providers;
const replicas: Replica[] = [];
let service: string;

beforeAll(async () => {
  admin = new Redis(REDIS_URL);
  providers = await startProviders();
});
afterEach(async () => {
  for (const r of replicas.splice(0)) {
    await r.chain.close();
    await r.control.close();
    r.redis.disconnect();
  }
  await deleteServiceKeys(admin, service);
  providers.openrouter.faults.clearAll();
});
afterAll(async () => {
  admin.disconnect();
  await providers.close();
});

async function startReplica(replicaId: string): Promise<Replica> {
  const redis = new Redis(REDIS_URL);
  const control = await startBreakerControl(redis, { service, replicaId, onError: () => {} });
  const { chain } = chainOver(providers, { service, control });
  const replica = { redis, control, chain };
  replicas.push(replica);
  return replica;
}

const fx = engineFixture(() => postgresStore(uniqueSchema('outage')));

describe('OpenRouter outage (Runbook 6) on real chains', () => {
  it('falls back by itself, is switched to Ollama on every replica by the runbook, and returns when told', async () => {
    service = uniqueService('outage');
    const [r1, r2] = [await startReplica('r1'), await startReplica('r2')];
    expect((await r1.chain.chat(ask('before'))).provider).toBe('openrouter');

    // The outage: calls are still answered (by Ollama), and OpenRouter's breaker opens by itself.
    providers.openrouter.faults.inject({ kind: 'outage' });
    for (let i = 0; i < 4; i++) expect((await r1.chain.chat(ask(`during ${i}`))).provider).toBe('ollama');
    expect(r1.chain.health().circuit_breakers.openrouter?.state).toBe('open');

    // The runbook forces OpenRouter open on every replica (r2 never saw a failure) and verifies it.
    const e = fx.engine([openrouterOutage(admin), openrouterRecovered(admin)]);
    const run = await e.start(
      'openrouter-outage',
      { service, incident: 'INC-42' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(run.status).toBe('succeeded');
    const [switchStep] = (await e.getRun(run.runId)).steps;
    expect(switchStep?.result).toMatchObject({
      verification: { status: 'ok', summary: expect.stringContaining('All 2 live replica(s)') },
    });
    for (const r of [r1, r2]) {
      expect(r.chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'open', forced: 'open' });
    }

    // OpenRouter is back, but stays forced open: r2's calls go to Ollama and OpenRouter gets no request.
    providers.openrouter.faults.clearAll();
    const seen = providers.openrouter.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 700)); // past the breakers' 500 ms reset timeout
    expect((await r2.chain.chat(ask('forced'))).provider).toBe('ollama');
    expect(providers.openrouter.requests.length).toBe(seen);

    // "When OpenRouter recovers, switch back": back to automatic, and both replicas use OpenRouter again.
    const back = await e.start(
      'openrouter-recovered',
      { service, incident: 'INC-42' },
      { mode: 'execute', actor: 'bob' },
    );
    expect(back.status).toBe('succeeded');
    for (const r of [r1, r2]) {
      await vi.waitFor(async () => expect((await r.chain.chat(ask('after'))).provider).toBe('openrouter'), {
        timeout: 3_000,
        interval: 100,
      });
      expect(r.chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', forced: 'auto' });
    }
    expect((await e.verifyAudit()).ok).toBe(true);
  });
});
