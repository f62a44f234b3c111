import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BreakerControl } from '../../src/resilience/breaker-control';
import { expectDocsShowTested } from '../support/docs-drift';
import { backendBreakers } from './support/breaker-replica-examples';
import { deleteServiceKeys, REDIS_URL, uniqueService } from './support/breaker-replicas';

// Keeps BREAKER-CONTROL.md honest: the service-side example (support/breaker-replica-examples.ts) runs here
// against the real Redis, the runbooks run through the engine in breaker-actions-engine.test.ts, and the last
// block checks that the docs show exactly that code (import lines aside: the docs import the package).

let admin: Redis;
const opened: { redis: Redis; breakers: BreakerControl }[] = [];
const services = new Set<string>();

beforeAll(() => {
  admin = new Redis(REDIS_URL);
});
afterEach(async () => {
  for (const { redis, breakers } of opened.splice(0)) {
    await breakers.close();
    redis.disconnect();
  }
  for (const s of services) await deleteServiceKeys(admin, s);
  services.clear();
});
afterAll(() => admin.disconnect());

describe('the service-side example', () => {
  it('two replicas: the admin endpoint of one forces the breaker of both', async () => {
    const service = uniqueService('docs');
    services.add(service);
    const start = async (id: string) => {
      const redis = new Redis(REDIS_URL);
      const replica = await backendBreakers(redis, id, service);
      opened.push({ redis, breakers: replica.breakers });
      return replica;
    };
    const a = await start('backend-7d9f-a');
    const b = await start('backend-7d9f-b');
    const answer = await a.adminEndpoint('openrouter', 'open', 'oncall', 'INC-7 OpenRouter down');
    expect(answer).toMatchObject({
      provider: 'openrouter',
      forced: { state: 'open', actor: 'oncall', reason: 'INC-7 OpenRouter down', origin: 'admin endpoint' },
    });
    expect(answer.replicas.map((r) => r.replica)).toEqual(['backend-7d9f-a', 'backend-7d9f-b']);
    await vi.waitFor(() => expect(b.breakers.forced('openrouter')).toBe('open'), { timeout: 1_000 });
    expect((await b.adminEndpoint('openrouter', 'auto', 'oncall', 'recovered')).forced).toBe('auto');
    await vi.waitFor(() => expect(a.breakers.forced('openrouter')).toBe('auto'), { timeout: 1_000 });
  });
});

describe('the docs show exactly the code tested here', () => {
  const doc = new URL('../../BREAKER-CONTROL.md', import.meta.url);
  const examples = new URL('./support/breaker-replica-examples.ts', import.meta.url);
  it('backend-breakers.ts', () => expectDocsShowTested(doc, examples, 'backend-breakers.ts'));
  it('openrouter-outage.ts', () => expectDocsShowTested(doc, examples, 'openrouter-outage.ts'));
});
