import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Plan } from '../../src/core/plan';
import { createRedactor } from '../../src/core/redact';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { sealRedacted } from '../../src/engine/seal';
import {
  type BreakerApplied,
  type BreakerChangeParams,
  closeBreaker,
  openBreaker,
  resetBreaker,
  switchToFallback,
} from '../../src/resilience/breaker-actions';
import { type BreakerControl, startBreakerControl } from '../../src/resilience/breaker-control';
import { breakerKeys, DEFAULT_BREAKER_PREFIX } from '../../src/resilience/breaker-control-keys';
import { writeHeartbeat } from '../../src/resilience/breaker-control-store';
import type { ForcedState } from '../../src/resilience/breaker-switch';
import {
  deleteServiceKeys,
  REDIS_URL,
  type ReplicaConfig,
  type ReplicaProcess,
  startReplicas,
  uniqueService,
} from './support/breaker-replicas';

// openBreaker, closeBreaker, resetBreaker and switchToFallback driven as the engine drives them (plan → seal →
// apply → verify → revert) against the real Redis, with the replicas of the service in real processes (or, for
// plans that refuse, breaker control in this process). Verification is judged from the replicas' heartbeats.

let admin: Redis;
let processes: ReplicaProcess[] = [];
const controls: { redis: Redis; control: BreakerControl }[] = [];
const services = new Set<string>();

beforeAll(() => {
  admin = new Redis(REDIS_URL);
});
afterEach(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  processes = [];
  for (const { redis, control } of controls.splice(0)) {
    await control.close();
    redis.disconnect();
  }
  for (const s of services) await deleteServiceKeys(admin, s);
  services.clear();
});
afterAll(() => admin.disconnect());

const CHAIN = ['openrouter', 'ollama'];

function newService(label: string): string {
  const s = uniqueService(label);
  services.add(s);
  return s;
}

/** Replica processes of a new service: `ids` with the chain `providers`; `deaf` ones ignore every change. */
async function replicas(
  label: string,
  ids: string[],
  options: { providers?: string[]; deaf?: string[]; heartbeat?: number; heartbeatTtl?: number } = {},
) {
  const service = newService(label);
  const config = (replicaId: string): ReplicaConfig => ({
    service,
    replicaId,
    providers: options.providers ?? CHAIN,
    ...(options.heartbeat ? { heartbeat: options.heartbeat } : {}),
    ...(options.heartbeatTtl ? { heartbeatTtl: options.heartbeatTtl } : {}),
  });
  const deaf = options.deaf ?? [];
  const [normal, odd] = await Promise.all([
    startReplicas(ids.filter((id) => !deaf.includes(id)).map(config)),
    startReplicas(deaf.map(config), 'deaf'),
  ]);
  processes.push(...normal, ...odd);
  return service;
}

/** Breaker control in this process (a replica whose chain is `providers`), for plans that read the chains. */
async function inProcess(service: string, replicaId: string, providers: string[]) {
  const redis = new Redis(REDIS_URL);
  const control = await startBreakerControl(redis, { service, replicaId, onError: () => {} });
  controls.push({ redis, control });
  control.register(providers);
  await vi.waitFor(
    async () =>
      expect((await control.replicas()).find((r) => r.replicaId === replicaId)?.providers).toEqual(providers),
    { timeout: 2_000 },
  );
  return control;
}

const ctx = (overrides: Partial<StepContext> = {}): StepContext => ({
  runId: 'run-1',
  runbookId: 'openrouter-outage',
  step: 'breaker',
  mode: 'execute',
  attempt: 1,
  actor: 'alice',
  signal: new AbortController().signal,
  log() {},
  ...overrides,
});

const redactor = createRedactor();
type BreakerAction = Action<BreakerChangeParams, BreakerApplied>;

async function plan(action: BreakerAction, c = ctx()): Promise<Plan<BreakerChangeParams>> {
  return sealRedacted(action, await action.plan(c), redactor);
}
async function apply(action: BreakerAction, sealed: Plan<BreakerChangeParams>, c = ctx()) {
  const data = await action.apply(c, sealed);
  return { plan: sealed, data, appliedAt: new Date().toISOString(), recovered: false } as Applied<
    BreakerChangeParams,
    BreakerApplied
  >;
}

async function stored(service: string, provider: string) {
  const raw = await admin.hget(breakerKeys(DEFAULT_BREAKER_PREFIX, service).forced, provider);
  return raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
}

const heardAll = (provider: string, state: ForcedState, since = 0) =>
  Promise.all(
    processes.map((p) =>
      p.waitFor(
        (e) => e.event === 'change' && e.provider === provider && e.state === state && e.at >= since,
        5_000,
      ),
    ),
  );

const ref = (service: string, provider?: string) =>
  `redis://${admin.options.host}:${admin.options.port}/${admin.options.db ?? 0}/breaker/${service}${provider ? `/${provider}` : ''}`;

describe('openBreaker', () => {
  it('plans auto → open for the live replicas, applies, verifies every replica, and reverts to auto', async () => {
    const service = await replicas('open', ['r1', 'r2', 'r3']);
    const action = openBreaker(admin, { service, provider: 'openrouter', reason: 'INC-7 OpenRouter down' });
    expect(action).toMatchObject({ kind: 'resilience.open-breaker', risk: 'medium', destructive: false });
    expect(action.target).toBe(ref(service, 'openrouter'));

    const sealed = await plan(action);
    expect(sealed.changes).toEqual([
      { target: ref(service, 'openrouter'), field: 'forced', before: 'auto', after: 'open' },
    ]);
    expect(sealed.summary).toBe(
      `Force the openrouter breaker of ${service} open (now automatic); 3 live replica(s) will receive it: r1, r2, r3`,
    );
    expect((await plan(action)).hash).toBe(sealed.hash); // the same world plans the same

    const applied = await apply(action, sealed);
    expect(applied.data).toEqual({ version: 1, receivers: 3 });
    expect(await stored(service, 'openrouter')).toMatchObject({
      state: 'open',
      actor: 'alice',
      reason: 'INC-7 OpenRouter down',
      changeId: sealed.hash,
      origin: 'runbook openrouter-outage, run run-1, step breaker',
      expiresAt: null,
    });
    const verification = await action.verify?.(ctx(), applied);
    expect(verification).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(
        new RegExp(`^All 3 live replica\\(s\\) of ${service} hold openrouter open`),
      ),
    });
    expect((verification?.data as { replicas: unknown[] } | undefined)?.replicas).toEqual(
      ['r1', 'r2', 'r3'].map((replicaId) =>
        expect.objectContaining({
          replicaId,
          acknowledged: true,
          forced: { openrouter: 'open', ollama: 'auto' },
          reported: { openrouter: 'open', ollama: 'closed' },
        }),
      ),
    );
    expect(verification?.evidence[0]).toMatchObject({ kind: 'table', title: 'Live replicas' });
    // Applied: a fresh plan has nothing left to do (what the engine sees after a crash).
    expect((await plan(action)).changes).toEqual([]);

    const before = Date.now();
    await action.revert?.(ctx(), applied);
    expect(await stored(service, 'openrouter')).toBeNull();
    await heardAll('openrouter', 'auto', before);
  });

  it('with expiresAfter: every replica returns to auto by itself; a revert afterwards has nothing to undo', async () => {
    const service = await replicas('expire', ['r1', 'r2', 'r3']);
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'probe later',
      expiresAfter: '1s',
    });
    const sealed = await plan(action);
    expect(sealed.summary).toContain('open (now automatic) for 1s, then automatic;');
    const applied = await apply(action, sealed);
    expect((await action.verify?.(ctx(), applied))?.status).toBe('ok');
    const record = await stored(service, 'openrouter');
    expect(Number(record?.expiresAt) - Number(record?.forcedAt)).toBe(1_000);
    const flips = await heardAll('openrouter', 'auto');
    const at = flips.map((e) => e.at);
    expect(Math.max(...at) - Math.min(...at)).toBeLessThan(500);
    await vi.waitFor(async () => expect(await stored(service, 'openrouter')).toBeNull(), { timeout: 2_000 });
    await action.revert?.(ctx(), applied); // not refused: it is already where it was before
    expect(await stored(service, 'openrouter')).toBeNull();
  });

  it('apply writes nothing when the state changed after the plan (BREAKER_CHANGED: plan again)', async () => {
    const service = newService('guard');
    const operator = await inProcess(service, 'op', CHAIN);
    const action = openBreaker(admin, { service, provider: 'openrouter', reason: 'INC-7' });
    const sealed = await plan(action);
    await operator.force('openrouter', 'closed', { reason: 'bob knows better', actor: 'bob' });
    await expect(apply(action, sealed)).rejects.toMatchObject({
      code: 'BREAKER_CHANGED',
      retriable: true,
      message: expect.stringContaining('it is now forced closed by bob'),
    });
    expect(await stored(service, 'openrouter')).toMatchObject({ state: 'closed', actor: 'bob' });
  });

  it('revert refuses to undo a later change by someone else; verify then fails too', async () => {
    const service = newService('refuse');
    const operator = await inProcess(service, 'op', CHAIN);
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      verifyTimeout: '1s',
    });
    const applied = await apply(action, await plan(action));
    await operator.force('openrouter', 'closed', { reason: 'provider is back', actor: 'bob' });
    expect(await action.verify?.(ctx(), applied)).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining(
        'changed after this action set it: openrouter is forced closed by bob',
      ),
    });
    await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({
      code: 'BREAKER_CHANGED_SINCE',
      retriable: false,
      message: expect.stringContaining('openrouter is now forced closed by bob'),
    });
    expect(await stored(service, 'openrouter')).toMatchObject({ state: 'closed', actor: 'bob' });
  });

  it('validates its options, naming the field', () => {
    expect(() => openBreaker(admin, { service: 'backend', provider: 'open router', reason: 'x' })).toThrow(
      /provider:/,
    );
    expect(() => openBreaker(admin, { service: 'backend', provider: 'openrouter', reason: '' })).toThrow(
      /reason:/,
    );
    expect(() =>
      openBreaker(admin, { service: 'backend', provider: 'openrouter', reason: 'x', expiresAfter: '10d' }),
    ).toThrow(/expiresAfter: expected between 1s and 7d/);
    expect(() => switchToFallback(admin, { service: 'a{b}', fallback: 'ollama' })).toThrow(/service:/);
    // The chain's rule for provider names: lower case, digits and "_".
    expect(() => openBreaker(admin, { service: 'backend', provider: 'OpenRouter', reason: 'x' })).toThrow(
      /provider: expected lower case/,
    );
  });

  it('a malformed duration is an InputValidationError naming the field, never a RangeError', () => {
    const attempts = [
      () =>
        openBreaker(admin, { service: 'backend', provider: 'openrouter', reason: 'x', expiresAfter: '1 h' }),
      () => switchToFallback(admin, { service: 'backend', fallback: 'ollama', expiresAfter: 'soon' }),
      () =>
        resetBreaker(admin, {
          service: 'backend',
          provider: 'openrouter',
          reason: 'x',
          verifyTimeout: '5 s',
        }),
      () =>
        closeBreaker(admin, { service: 'backend', provider: 'openrouter', reason: 'x', verifyTimeout: '1h' }),
    ];
    const messages = attempts.map((attempt) => {
      try {
        attempt();
      } catch (e) {
        expect(e).toMatchObject({ code: 'INVALID_INPUT' });
        return (e as Error).message;
      }
      return 'accepted';
    });
    expect(messages).toEqual([
      expect.stringContaining('expiresAfter: expected a duration'),
      expect.stringContaining('expiresAfter: expected a duration'),
      expect.stringContaining('verifyTimeout: expected a duration'),
      expect.stringContaining('verifyTimeout: expected between 100ms and 10m'),
    ]);
  });

  it('refuses a provider no live replica registered (a misspelt name would pass plan, apply and verify)', async () => {
    const service = newService('unknown');
    await inProcess(service, 'a', CHAIN);
    await inProcess(service, 'b', CHAIN);
    for (const action of [
      openBreaker(admin, { service, provider: 'openrouterr', reason: 'INC-7' }),
      closeBreaker(admin, { service, provider: 'open_router', reason: 'INC-7' }),
      resetBreaker(admin, { service, provider: 'olama', reason: 'INC-7' }),
    ]) {
      await expect(plan(action)).rejects.toMatchObject({
        code: 'BREAKER_UNKNOWN_PROVIDER',
        retriable: false,
        message: expect.stringContaining('their chains are a [openrouter, ollama], b [openrouter, ollama]'),
      });
    }
    expect(await admin.exists(breakerKeys(DEFAULT_BREAKER_PREFIX, service).forced)).toBe(0);
    // A forced state stored for a provider no chain has (any more) can still be removed.
    const operator = await inProcess(service, 'op', CHAIN);
    await operator.force('lmstudio', 'open', { reason: 'old chain', actor: 'bob' });
    const reset = resetBreaker(admin, { service, provider: 'lmstudio', reason: 'clean up' });
    const sealed = await plan(reset);
    expect(sealed.changes).toMatchObject([{ field: 'forced', before: 'open', after: 'auto' }]);
    await apply(reset, sealed);
    expect(await stored(service, 'lmstudio')).toBeNull();
  });

  it('refuses while the live replicas have registered no chain; with none live the plan says it could not check', async () => {
    const service = newService('nochain');
    const action = openBreaker(admin, { service, provider: 'openrouter', reason: 'INC-7' });
    expect((await plan(action)).summary).toContain('no chain to check the provider name against');
    const redis = new Redis(REDIS_URL);
    const control = await startBreakerControl(redis, { service, replicaId: 'bare', onError: () => {} });
    controls.push({ redis, control });
    await expect(plan(action)).rejects.toMatchObject({
      code: 'BREAKER_UNKNOWN_PROVIDER',
      message: expect.stringContaining('1 live replica(s), none has registered a chain yet'),
    });
  });
});

describe('closeBreaker and resetBreaker', () => {
  it('closeBreaker (risk high) replaces someone’s forced open, and its revert restores exactly that record', async () => {
    const service = await replicas('close', ['r1', 'r2', 'r3']);
    const operator = await inProcess(service, 'op', CHAIN);
    const bobs = await operator.force('openrouter', 'open', {
      reason: 'outage',
      actor: 'bob',
      expiresAfter: '1h',
    });
    await heardAll('openrouter', 'open');

    const action = closeBreaker(admin, { service, provider: 'openrouter', reason: 'OpenRouter is back' });
    expect(action.risk).toBe('high');
    const sealed = await plan(action);
    expect(sealed.changes).toMatchObject([
      { field: 'forced', before: 'open', after: 'closed' },
      { field: 'expiresAt', before: bobs?.expiresAt, after: null }, // closed for good: bob's expiry goes
    ]);
    expect(sealed.summary).toContain('(now forced open by bob since');
    expect(sealed.summary).toContain('4 live replica(s) will receive it: op, r1, r2, r3');
    const since = Date.now();
    const applied = await apply(action, sealed);
    await heardAll('openrouter', 'closed', since);
    expect(await action.verify?.(ctx(), applied)).toMatchObject({ status: 'ok' });

    await action.revert?.(ctx(), applied);
    const restored = (await operator.read())[0];
    expect(restored).toMatchObject({
      provider: 'openrouter',
      state: 'open',
      actor: 'bob',
      reason: 'outage',
      forcedAt: bobs?.forcedAt,
      expiresAt: bobs?.expiresAt,
    });
    expect(restored?.version).toBeGreaterThan(bobs?.version ?? Infinity); // a new change, so every replica takes it
    await heardAll('openrouter', 'open', since);
  });

  it('resetBreaker returns a forced state to auto everywhere, and reverts to the forced state', async () => {
    const service = await replicas('reset', ['r1', 'r2', 'r3']);
    const operator = await inProcess(service, 'op', CHAIN);
    await operator.force('ollama', 'closed', { reason: 'pin it', actor: 'bob' });
    const action = resetBreaker(admin, { service, provider: 'ollama', reason: 'let the breaker decide' });
    const sealed = await plan(action);
    expect(sealed.changes).toMatchObject([{ before: 'closed', after: 'auto' }]);
    const since = Date.now();
    const applied = await apply(action, sealed);
    await heardAll('ollama', 'auto', since);
    expect(await action.verify?.(ctx(), applied)).toMatchObject({ status: 'ok' });
    expect((await plan(action)).summary).toBe(`The ollama breaker of ${service} is already automatic`);
    await action.revert?.(ctx(), applied);
    expect(await stored(service, 'ollama')).toMatchObject({ state: 'closed', actor: 'bob' });
  });

  it('resetBreaker’s revert refuses after someone forced and reset the provider again since', async () => {
    const service = newService('resetcycle');
    const operator = await inProcess(service, 'op', CHAIN);
    await operator.force('ollama', 'closed', { reason: 'pin it', actor: 'bob' });
    const action = resetBreaker(admin, { service, provider: 'ollama', reason: 'let the breaker decide' });
    const applied = await apply(action, await plan(action));
    // A later cycle by someone else: it ends in auto, as the reset left it.
    await operator.force('ollama', 'open', { reason: 'ollama OOM', actor: 'carol' });
    await operator.force('ollama', 'auto', { reason: 'ollama restarted', actor: 'carol' });
    await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({
      code: 'BREAKER_CHANGED_SINCE',
      message: expect.stringContaining('ollama is now automatic after a later change (version 4)'),
    });
    expect(await stored(service, 'ollama')).toBeNull(); // carol's auto stays
  });
});

describe('expiry', () => {
  it('openBreaker with expiresAfter over a forced open that ends sooner extends it; planned again, nothing is left', async () => {
    const service = newService('extend');
    const operator = await inProcess(service, 'op', CHAIN);
    const bobs = await operator.force('openrouter', 'open', {
      reason: 'outage',
      actor: 'bob',
      expiresAfter: '1m',
    });
    operator.report('openrouter', 'open'); // what its chain's breaker does while forced open
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      expiresAfter: '1h',
    });
    const sealed = await plan(action);
    expect(sealed.changes).toEqual([
      {
        target: ref(service, 'openrouter'),
        field: 'expiresAt',
        before: bobs?.expiresAt,
        after: '1h after the apply',
      },
    ]);
    expect(sealed.summary).toContain(
      `Keep the openrouter breaker of ${service} open, with a new expiry: 1h after the apply, then automatic (now forced open by bob`,
    );
    const applied = await apply(action, sealed);
    const record = await stored(service, 'openrouter');
    expect(Number(record?.expiresAt) - Number(record?.forcedAt)).toBe(3_600_000);
    expect(record).toMatchObject({ actor: 'alice', changeId: sealed.hash });
    expect(await action.verify?.(ctx(), applied)).toMatchObject({ status: 'ok' });
    // What the engine sees after a crash between apply and verify: the change took effect, nothing to redo.
    expect((await plan(action)).changes).toEqual([]);
    // Another run asking the same is a new change (1h from its apply), not a no-op.
    expect((await plan(action, ctx({ runId: 'run-2' }))).changes).toMatchObject([{ field: 'expiresAt' }]);
    // Revert puts bob's record back, expiry included.
    await action.revert?.(ctx(), applied);
    expect(await stored(service, 'openrouter')).toMatchObject({
      actor: 'bob',
      expiresAt: Date.parse(bobs?.expiresAt ?? ''),
    });
  });

  it('a new expiry alone is acknowledged only by replicas that applied its version, not by the state they held', async () => {
    const service = newService('expiry-ack');
    const operator = await inProcess(service, 'op', CHAIN);
    const bobs = await operator.force('openrouter', 'open', {
      reason: 'outage',
      actor: 'bob',
      expiresAfter: '1m',
    });
    operator.report('openrouter', 'open');
    // A replica that heard bob's change and no later one: it holds `open`, with bob's expiry.
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, service);
    const stale = (version: number) =>
      writeHeartbeat(
        admin,
        keys,
        {
          replicaId: 'stale',
          service,
          host: 'test',
          pid: 1,
          startedAt: new Date().toISOString(),
          providers: CHAIN,
          forced: { openrouter: 'open', ollama: 'auto' },
          reported: { openrouter: 'open', ollama: 'closed' },
          version,
        },
        30_000,
      );
    await stale(bobs?.version ?? 0);
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      expiresAfter: '1h',
      verifyTimeout: '300ms',
    });
    const applied = await apply(action, await plan(action));
    const written = applied.data?.version ?? 0;
    expect(written).toBeGreaterThan(bobs?.version ?? 0);
    expect(await action.verify?.(ctx(), applied)).toMatchObject({
      status: 'unknown',
      summary: expect.stringContaining(
        `1 of 2 live replica(s) of ${service} did not acknowledge openrouter open within 300ms: stale (has applied changes up to version ${bobs?.version}, not ${written} yet)`,
      ),
    });
    await stale(written);
    expect(await action.verify?.(ctx(), applied)).toMatchObject({ status: 'ok' });
    // After an engine crash the apply's return value is lost: the version comes from Redis.
    await stale(bobs?.version ?? 0);
    expect(await action.verify?.(ctx(), { ...applied, data: null, recovered: true })).toMatchObject({
      status: 'unknown',
      summary: expect.stringContaining(`not ${written} yet`),
    });
  });

  it('openBreaker without expiresAfter over an expiring forced open makes it last', async () => {
    const service = newService('indefinite');
    const operator = await inProcess(service, 'op', CHAIN);
    await operator.force('openrouter', 'open', { reason: 'outage', actor: 'bob', expiresAfter: '10m' });
    const action = openBreaker(admin, { service, provider: 'openrouter', reason: 'INC-7' });
    const sealed = await plan(action);
    expect(sealed.changes).toMatchObject([{ field: 'expiresAt', after: null }]);
    await apply(action, sealed);
    expect(await stored(service, 'openrouter')).toMatchObject({ expiresAt: null, actor: 'alice' });
    expect((await plan(action)).summary).toContain('is already forced open by alice');
  });
});

describe('switchToFallback', () => {
  it('forces open every provider before the fallback in the replicas’ chain, verifies, and reverts', async () => {
    const chain = ['openrouter', 'together', 'ollama'];
    const service = await replicas('switch', ['r1', 'r2', 'r3'], { providers: chain });
    const action = switchToFallback(admin, { service, fallback: 'ollama' });
    expect(action.target).toBe(ref(service));
    const sealed = await plan(action);
    expect(sealed.changes).toEqual([
      { target: ref(service, 'openrouter'), field: 'forced', before: 'auto', after: 'open' },
      { target: ref(service, 'together'), field: 'forced', before: 'auto', after: 'open' },
    ]);
    expect(sealed.summary).toBe(
      `Switch ${service} to ollama: force open openrouter (now auto), together (now auto); chain openrouter → together → ollama; 3 live replica(s) will receive it: r1, r2, r3`,
    );
    const since = Date.now();
    const applied = await apply(action, sealed);
    expect(applied.data?.version).toBe(1); // one change, both providers
    await Promise.all([heardAll('openrouter', 'open', since), heardAll('together', 'open', since)]);
    const verification = await action.verify?.(ctx(), applied);
    expect(verification).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining('hold openrouter open, together open'),
    });
    expect(await stored(service, 'openrouter')).toMatchObject({ reason: 'switch to fallback ollama' });
    expect((await plan(action)).summary).toBe(
      `${service} already serves from ollama: openrouter, together forced open (openrouter → together → ollama)`,
    );

    await action.revert?.(ctx(), applied);
    await Promise.all([heardAll('openrouter', 'auto', since), heardAll('together', 'auto', since)]);
  });

  it('has nothing to do when the fallback is already the first provider', async () => {
    const service = newService('first');
    await inProcess(service, 'a', ['ollama', 'openrouter']);
    const sealed = await plan(switchToFallback(admin, { service, fallback: 'ollama' }));
    expect(sealed.changes).toEqual([]);
    expect(sealed.summary).toContain('ollama is already the first provider');
  });

  it('refuses when no live replica registered the fallback, naming the chains it saw', async () => {
    const service = newService('nofallback');
    await expect(plan(switchToFallback(admin, { service, fallback: 'ollama' }))).rejects.toMatchObject({
      code: 'BREAKER_NO_FALLBACK',
      retriable: false,
      message: expect.stringContaining('no replica is live'),
    });
    await inProcess(service, 'a', CHAIN);
    await expect(plan(switchToFallback(admin, { service, fallback: 'lmstudio' }))).rejects.toMatchObject({
      code: 'BREAKER_NO_FALLBACK',
      message: expect.stringContaining('their chains are a [openrouter, ollama]'),
    });
  });

  it('refuses when replicas disagree on what comes before the fallback (a rollout in progress)', async () => {
    const service = newService('disagree');
    await inProcess(service, 'a', ['openrouter', 'ollama']);
    await inProcess(service, 'b', ['openrouter', 'together', 'ollama']);
    await expect(plan(switchToFallback(admin, { service, fallback: 'ollama' }))).rejects.toMatchObject({
      code: 'BREAKER_ORDER_DISAGREES',
      retriable: false,
      message: expect.stringContaining('a [openrouter, ollama], b [openrouter, together, ollama]'),
    });
    // A replica without the fallback at all disagrees too.
    const other = newService('missing');
    await inProcess(other, 'a', ['openrouter', 'ollama']);
    await inProcess(other, 'b', ['openrouter']);
    await expect(plan(switchToFallback(admin, { service: other, fallback: 'ollama' }))).rejects.toMatchObject(
      {
        code: 'BREAKER_ORDER_DISAGREES',
      },
    );
  });

  it('refuses when the fallback itself is forced open', async () => {
    const service = newService('fallbackopen');
    const a = await inProcess(service, 'a', CHAIN);
    await a.force('ollama', 'open', { reason: 'ollama OOM', actor: 'bob' });
    await expect(plan(switchToFallback(admin, { service, fallback: 'ollama' }))).rejects.toMatchObject({
      code: 'BREAKER_FALLBACK_OPEN',
      message: expect.stringContaining('ollama of'),
    });
  });
});

describe('verify counts the live replicas, and only those', () => {
  it('is unknown (not fail: no revert) naming a live replica that ignores changes; ok once it is gone', async () => {
    const service = await replicas('deaf', ['r1', 'r2', 'r3'], { deaf: ['r2'] });
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      verifyTimeout: '1s',
    });
    const applied = await apply(action, await plan(action));
    const started = Date.now();
    const verification = await action.verify?.(ctx(), applied);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(verification).toMatchObject({
      status: 'unknown',
      summary: `1 of 3 live replica(s) of ${service} did not acknowledge openrouter open within 1s: r2 (knows openrouter forced auto, not open). The change stays in force (the others hold it); check or restart the replicas that lag.`,
    });
    expect(
      (verification?.data as { replicas: { replicaId: string; acknowledged: boolean }[] } | undefined)
        ?.replicas,
    ).toEqual([
      expect.objectContaining({ replicaId: 'r1', acknowledged: true }),
      expect.objectContaining({ replicaId: 'r2', acknowledged: false }),
      expect.objectContaining({ replicaId: 'r3', acknowledged: true }),
    ]);
    await processes.find((p) => p.id === 'r2')?.stop(); // a clean shutdown removes its heartbeat
    expect(await action.verify?.(ctx(), applied)).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining('All 2'),
    });
  });

  it('a replica that stopped heartbeating (SIGSTOP) leaves verify unknown while its TTL runs, and is not counted after', async () => {
    const service = await replicas('frozen', ['r1', 'r2', 'r3'], { heartbeat: 500, heartbeatTtl: 4_000 });
    processes.find((p) => p.id === 'r3')?.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      verifyTimeout: '1s',
    });
    const applied = await apply(action, await plan(action));
    const first = await action.verify?.(ctx(), applied);
    expect(first).toMatchObject({
      status: 'unknown',
      summary: expect.stringContaining('1 of 3 live replica(s)'),
    });
    expect(first?.summary).toContain(': r3 (knows openrouter forced auto, not open)');
    // Once its heartbeat has expired it is no longer a replica that could serve traffic.
    await vi.waitFor(
      async () => expect((await action.verify?.(ctx(), applied))?.summary).toContain('All 2 live replica(s)'),
      { timeout: 8_000, interval: 200 },
    );
    expect(Date.now() - stoppedAt).toBeGreaterThan(3_000); // not before the 4 s TTL (less one heartbeat)
  });

  it('warns when no replica is live: the state is persisted for replicas that start', async () => {
    const service = newService('nobody');
    const action = openBreaker(admin, { service, provider: 'openrouter', reason: 'INC-7' });
    const sealed = await plan(action);
    expect(sealed.summary).toContain(
      'no replica is live: it is persisted, and replicas that start begin in it',
    );
    const applied = await apply(action, sealed);
    expect(await action.verify?.(ctx(), applied)).toMatchObject({ status: 'warn' });
  });

  it('stops waiting when the step is aborted', async () => {
    const service = await replicas('abort', ['r1'], { deaf: ['r1'] });
    const action = openBreaker(admin, {
      service,
      provider: 'openrouter',
      reason: 'INC-7',
      verifyTimeout: '30s',
    });
    const applied = await apply(action, await plan(action));
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('step timed out')), 300);
    await expect(action.verify?.(ctx({ signal: controller.signal }), applied)).rejects.toThrow(
      'step timed out',
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
