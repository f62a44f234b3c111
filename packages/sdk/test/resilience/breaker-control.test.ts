import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type BreakerControl,
  type BreakerControlOptionsInput,
  type ForceOptionsInput,
  startBreakerControl,
} from '../../src/resilience/breaker-control';
import { breakerKeys, breakerRef, DEFAULT_BREAKER_PREFIX } from '../../src/resilience/breaker-control-keys';
import { SNAPSHOT } from '../../src/resilience/breaker-control-scripts';
import { readForced, writeForced } from '../../src/resilience/breaker-control-store';
import type { ForcedState } from '../../src/resilience/breaker-switch';
import { startTestRedis } from '../support/redis-server';
import { deleteServiceKeys, REDIS_URL, uniqueService } from './support/breaker-replicas';

// Breaker control of several replicas in this process, each with its own ioredis connections to the real
// Redis: persistence, pub/sub, versions, expiry, and the re-reads that heal a lost message or lost keys. The
// same across processes is in breaker-control-processes.test.ts.

let admin: Redis;
const opened: { redis: Redis; control?: BreakerControl }[] = [];
const services = new Set<string>();

beforeAll(() => {
  admin = new Redis(REDIS_URL);
});
afterEach(async () => {
  for (const { redis, control } of opened.splice(0)) {
    await control?.close();
    redis.disconnect();
  }
  for (const service of services) await deleteServiceKeys(admin, service);
  services.clear();
});
afterAll(() => admin.disconnect());

function service(label: string): string {
  const name = uniqueService(label);
  services.add(name);
  return name;
}

/** A replica: breaker control over a connection of its own, recording what its listeners hear. */
async function replica(
  name: string,
  replicaId: string,
  { connectionName, ...options }: Partial<BreakerControlOptionsInput> & { connectionName?: string } = {},
) {
  const redis = new Redis(REDIS_URL, connectionName ? { connectionName } : {});
  const entry: { redis: Redis; control?: BreakerControl } = { redis };
  opened.push(entry);
  const errors: unknown[] = [];
  const control = await startBreakerControl(redis, {
    service: name,
    replicaId,
    heartbeat: 200,
    onError: (e) => errors.push(e),
    ...options,
  });
  entry.control = control;
  const heard: { provider: string; state: ForcedState; at: number }[] = [];
  control.onChange((provider, state) => heard.push({ provider, state, at: Date.now() }));
  return { control, heard, errors, redis };
}

const who = { reason: 'INC-42 OpenRouter outage', actor: 'alice' };

describe('breaker control across replicas (real Redis)', () => {
  it('a forced state is persisted, published to every replica, and readable with who, why and when', async () => {
    const s = service('force');
    const a = await replica(s, 'a');
    const b = await replica(s, 'b');
    a.control.register(['openrouter', 'ollama']);
    b.control.register(['openrouter', 'ollama']);

    const before = Date.now();
    const record = await a.control.force('openrouter', 'open', who);
    expect(a.control.forced('openrouter')).toBe('open'); // applied locally before force() resolves
    await vi.waitFor(() => expect(b.control.forced('openrouter')).toBe('open'), {
      timeout: 1_000,
      interval: 5,
    });
    expect(b.heard).toEqual([{ provider: 'openrouter', state: 'open', at: expect.any(Number) }]);
    expect((b.heard[0]?.at ?? Infinity) - before).toBeLessThan(1_000);
    expect(b.control.forced('ollama')).toBe('auto');

    expect(record).toMatchObject({
      provider: 'openrouter',
      state: 'open',
      ...who,
      expiresAt: null,
      version: 1,
    });
    expect(await b.control.read()).toEqual([record]);
    expect(Math.abs(Date.parse(record?.forcedAt ?? '') - before)).toBeLessThan(5_000);
    const stored = await admin.hget(breakerKeys(DEFAULT_BREAKER_PREFIX, s).forced, 'openrouter');
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ state: 'open', reason: who.reason, actor: 'alice' });
  });

  it('a replica started after the force holds the forced state before startBreakerControl resolves', async () => {
    const s = service('restart');
    const a = await replica(s, 'a');
    await a.control.force('openrouter', 'open', who);
    await a.control.force('ollama', 'closed', who);
    await a.control.close();

    const late = await replica(s, 'late');
    // Synchronously, before any message could arrive: what the chain's first call sees.
    expect(late.control.forced('openrouter')).toBe('open');
    expect(late.control.forced('ollama')).toBe('closed');
    expect(late.control.version).toBe(2);
  });

  it('forcing auto deletes the field; every replica returns to auto', async () => {
    const s = service('auto');
    const a = await replica(s, 'a');
    const b = await replica(s, 'b');
    await a.control.force('openrouter', 'closed', who);
    await vi.waitFor(() => expect(b.control.forced('openrouter')).toBe('closed'), { timeout: 1_000 });
    expect(await a.control.force('openrouter', 'auto', who)).toBeNull();
    expect(await admin.hexists(breakerKeys(DEFAULT_BREAKER_PREFIX, s).forced, 'openrouter')).toBe(0);
    await vi.waitFor(() => expect(b.control.forced('openrouter')).toBe('auto'), { timeout: 1_000 });
    expect(b.heard.map((h) => h.state)).toEqual(['closed', 'auto']);
    expect(await b.control.read()).toEqual([]);
  });

  it('heartbeats tell what each replica registered, knows and reports; a closed replica is gone at once', async () => {
    const s = service('heartbeat');
    const a = await replica(s, 'a');
    const b = await replica(s, 'b');
    a.control.register(['openrouter', 'ollama']);
    a.control.report('openrouter', 'open');
    a.control.report('ollama', 'closed');
    await a.control.force('openrouter', 'open', who);
    await vi.waitFor(
      async () =>
        expect(await b.control.replicas()).toEqual([
          expect.objectContaining({
            replicaId: 'a',
            service: s,
            pid: process.pid,
            providers: ['openrouter', 'ollama'],
            forced: { openrouter: 'open', ollama: 'auto' },
            reported: { openrouter: 'open', ollama: 'closed' },
            version: 1,
          }),
          expect.objectContaining({ replicaId: 'b', providers: [], forced: { openrouter: 'open' } }),
        ]),
      { timeout: 2_000, interval: 20 },
    );
    const [ra] = await b.control.replicas();
    expect(Date.parse(ra?.expiresAt ?? '') - Date.parse(ra?.heartbeatAt ?? '')).toBe(600); // 3 × heartbeat
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    const ttl = await admin.pttl(keys.replica('a'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);

    await a.control.close();
    expect((await b.control.replicas()).map((r) => r.replicaId)).toEqual(['b']);
    expect(await admin.exists(keys.replica('a'))).toBe(0);
  });

  it('an out-of-order message cannot roll a replica back; a newer one for another provider still applies', async () => {
    const s = service('order');
    const a = await replica(s, 'a');
    const b = await replica(s, 'b');
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    await a.control.force('openrouter', 'open', who); // version 1
    await a.control.force('openrouter', 'closed', who); // version 2
    await vi.waitFor(() => expect(b.control.version).toBe(2), { timeout: 1_000 });
    const epoch = await admin.get(keys.epoch);
    const record = (state: string, version: number) => ({
      state,
      reason: 'replayed',
      actor: 'mallory',
      origin: null,
      changeId: null,
      forcedAt: Date.now(),
      expiresAt: null,
      version,
    });
    // The version-1 message delivered late, and a stale "auto" for it: both older than what b holds.
    await admin.publish(
      keys.channel,
      JSON.stringify({ epoch, version: 1, changes: [{ provider: 'openrouter', record: record('open', 1) }] }),
    );
    await admin.publish(
      keys.channel,
      JSON.stringify({ epoch, version: 2, changes: [{ provider: 'openrouter', record: null }] }),
    );
    // A newer change of another provider goes through, and shows the older ones were processed before it.
    await admin.publish(
      keys.channel,
      JSON.stringify({ epoch, version: 3, changes: [{ provider: 'ollama', record: record('closed', 3) }] }),
    );
    await vi.waitFor(() => expect(b.control.forced('ollama')).toBe('closed'), { timeout: 1_000 });
    expect(b.control.forced('openrouter')).toBe('closed');
    expect(b.heard.filter((h) => h.provider === 'openrouter').map((h) => h.state)).toEqual([
      'open',
      'closed',
    ]);
    // Garbage on the channel is reported, not applied.
    await admin.publish(keys.channel, '{"not":"a change"}');
    await vi.waitFor(() => expect(b.errors.length).toBeGreaterThan(0), { timeout: 1_000 });
    expect(b.control.forced('openrouter')).toBe('closed');
  });

  it('a change whose message was lost is picked up at the next heartbeat (the counter moved)', async () => {
    const s = service('lost');
    const a = await replica(s, 'a', { heartbeat: 300, resync: '1h' });
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    // Written as the write script would, but never published: the message that pub/sub lost.
    const written = Date.now();
    await admin
      .multi()
      .incr(keys.version)
      .hset(
        keys.forced,
        'openrouter',
        JSON.stringify({
          state: 'open',
          reason: 'r',
          actor: 'x',
          forcedAt: written,
          expiresAt: null,
          version: 1,
        }),
      )
      .exec();
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('open'), {
      timeout: 3_000,
      interval: 10,
    });
    // Worst case: one heartbeat interval, then one read.
    expect((a.heard[0]?.at ?? Infinity) - written).toBeLessThan(300 + 1_000);
  });

  it('a killed subscriber connection re-reads everything when it reconnects', async () => {
    const s = service('reconnect');
    // A heartbeat far away: only the reconnect can heal what this test hides.
    const a = await replica(s, 'a', { heartbeat: '1m', resync: '1h' });
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    const clients = (await admin.client('LIST')) as string;
    const subscriber = clients
      .split('\n')
      .find((line) => line.includes(` name=breaker-control:${s}:a `))
      ?.match(/\bid=(\d+)/)?.[1];
    expect(subscriber).toBeDefined();
    // The kill and the unpublished change in one transaction: the change is made while the subscriber is gone.
    await admin
      .multi()
      .client('KILL', 'ID', subscriber as string)
      .incr(keys.version)
      .hset(
        keys.forced,
        'openrouter',
        JSON.stringify({
          state: 'open',
          reason: 'r',
          actor: 'x',
          forcedAt: Date.now(),
          expiresAt: null,
          version: 1,
        }),
      )
      .exec();
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('open'), {
      timeout: 5_000,
      interval: 10,
    });
    // And it is subscribed again: the next change arrives by message.
    const b = await replica(s, 'b');
    await b.control.force('openrouter', 'auto', who);
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('auto'), {
      timeout: 1_000,
      interval: 5,
    });
  });

  it('when Redis loses the keys (restart without persistence, flush), replicas drop what they knew', async () => {
    const s = service('epoch');
    const a = await replica(s, 'a');
    await a.control.force('openrouter', 'open', who);
    await deleteServiceKeys(admin, s); // what a restart without persistence leaves: nothing
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('auto'), {
      timeout: 3_000,
      interval: 10,
    });
    // The counter started over, and a new change is applied even though its version is lower than before.
    const b = await replica(s, 'b');
    await b.control.force('ollama', 'open', who);
    await vi.waitFor(() => expect(a.control.forced('ollama')).toBe('open'), { timeout: 1_000 });
  });

  it('a forced state with an expiry returns to auto on every replica at the same time, by the Redis clock', async () => {
    const s = service('expiry');
    const a = await replica(s, 'a');
    const b = await replica(s, 'b');
    const c = await replica(s, 'c');
    const record = await a.control.force('openrouter', 'open', { ...who, expiresAfter: '1s' });
    expect(Date.parse(record?.expiresAt ?? '') - Date.parse(record?.forcedAt ?? '')).toBe(1_000);
    await vi.waitFor(() => expect(c.control.forced('openrouter')).toBe('open'), { timeout: 1_000 });
    for (const r of [a, b, c]) {
      await vi.waitFor(() => expect(r.heard.at(-1)).toMatchObject({ state: 'auto' }), {
        timeout: 3_000,
        interval: 5,
      });
      expect(r.control.forced('openrouter')).toBe('auto');
    }
    const flips = [a, b, c].map((r) => r.heard.find((h) => h.state === 'auto')?.at ?? Infinity);
    expect(Math.max(...flips) - Math.min(...flips)).toBeLessThan(250);
    const expiresAt = Date.parse(record?.expiresAt ?? '');
    for (const at of flips) expect(at).toBeGreaterThanOrEqual(expiresAt - 50); // not early (same machine clock)
    // One replica removed it (one new version), and a late starter does not see it.
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    await vi.waitFor(async () => expect(await admin.hexists(keys.forced, 'openrouter')).toBe(0), {
      timeout: 2_000,
    });
    expect(await admin.get(keys.version)).toBe('2');
    const late = await replica(s, 'late');
    expect(late.control.forced('openrouter')).toBe('auto');
  });

  it('onChange returns a Disposable: a disposed listener hears nothing more', async () => {
    const s = service('dispose');
    const a = await replica(s, 'a');
    const heard: string[] = [];
    const subscription = a.control.onChange((provider, state) => heard.push(`${provider} ${state}`));
    await a.control.force('openrouter', 'open', who);
    subscription.dispose();
    await a.control.force('openrouter', 'closed', who);
    {
      using _scoped = a.control.onChange((provider, state) => heard.push(`scoped ${provider} ${state}`));
      await a.control.force('openrouter', 'auto', who);
    }
    await a.control.force('ollama', 'open', who);
    expect(heard).toEqual(['openrouter open', 'scoped openrouter auto']);
  });

  it('a re-read that was in flight while a newer change arrived does not roll the replica back', async () => {
    const s = service('reread');
    const connectionName = `breaker-test-${s}`;
    const a = await replica(s, 'a', { connectionName, heartbeat: '1m', resync: '1h' });
    const b = await replica(s, 'b');
    await b.control.force('openrouter', 'open', who); // version 1
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('open'), { timeout: 1_000 });

    // Hold the answer of a's next read of the forced states (a real read of Redis, answered late).
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let readDone: () => void = () => {};
    const read = new Promise<void>((resolve) => {
      readDone = resolve;
    });
    let settled: Promise<unknown> | undefined;
    const evalsha = a.redis.evalsha.bind(a.redis) as (...args: unknown[]) => Promise<unknown>;
    (a.redis as unknown as { evalsha: unknown }).evalsha = (...args: unknown[]) => {
      const reply = evalsha(...args);
      if (args[0] !== SNAPSHOT.sha || settled) return reply;
      settled = reply.then(async (value) => {
        readDone();
        await held;
        return value;
      });
      return settled;
    };
    // A reconnect of a's command connection: it re-reads everything (authoritatively) when it is ready again.
    const id = ((await admin.client('LIST')) as string)
      .split('\n')
      .find((line) => line.includes(` name=${connectionName} `))
      ?.match(/\bid=(\d+)/)?.[1];
    expect(id).toBeDefined();
    await admin.client('KILL', 'ID', id as string);
    await read; // the re-read has read version 1

    await b.control.force('openrouter', 'closed', who); // version 2, while the re-read is held
    await vi.waitFor(() => expect(a.control.forced('openrouter')).toBe('closed'), { timeout: 1_000 });
    release();
    await settled;
    await new Promise((resolve) => setTimeout(resolve, 50)); // the re-read is applied
    expect(a.control.forced('openrouter')).toBe('closed');
    expect(a.control.version).toBe(2);
    expect(a.heard.map((h) => h.state)).toEqual(['open', 'closed']);
  });

  it('an expired record that no replica removed yet is not in force for a replica that starts', async () => {
    const s = service('expired');
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    const past = Date.now() - 1_000;
    await admin.hset(
      keys.forced,
      'openrouter',
      JSON.stringify({
        state: 'open',
        reason: 'r',
        actor: 'x',
        forcedAt: past - 1_000,
        expiresAt: past,
        version: 1,
      }),
    );
    await admin.set(keys.version, '1');
    const a = await replica(s, 'a');
    expect(a.control.forced('openrouter')).toBe('auto');
    expect(await a.control.read()).toEqual([]);
    await vi.waitFor(async () => expect(await admin.hexists(keys.forced, 'openrouter')).toBe(0), {
      timeout: 2_000,
    });
  });

  it('a guard over a hand-edited field is a conflict, not a Lua error, and writes nothing', async () => {
    const s = service('handedit');
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    const change = { state: 'auto' as const, reason: 'revert', actor: 'alice' };
    // A reset's revert: the provider's last change must still be the reset's; `…:last` no longer says.
    await admin.hset(keys.last, 'openrouter', '{not json');
    await admin.hset(keys.last, 'ollama', '"a string"');
    for (const provider of ['openrouter', 'ollama']) {
      expect(
        await writeForced(admin, keys, [{ ...change, provider, expect: { lastChangeId: 'plan-hash' } }]),
      ).toEqual({ ok: false, provider, current: null });
    }
    // The expiry's removal of a record someone garbled.
    await admin.hset(keys.forced, 'together', '{"state":"open"');
    expect(
      await writeForced(admin, keys, [{ ...change, provider: 'together', expect: { expiredVersion: 1 } }]),
    ).toEqual({ ok: false, provider: 'together', current: null });
    expect(await admin.get(keys.version)).toBeNull(); // nothing written
    expect(await admin.hget(keys.last, 'openrouter')).toBe('{not json');
  });
});

/** A free TCP port on the loopback. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A Redis server of this test's own (no persistence), answering PING. Its `dir` is a temporary directory: a
 * replica writes the primary's snapshot there when it syncs (by default it would land in the working directory).
 */
async function privateRedis(port: number, extra: string[] = []): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'runbook-breaker-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => {});
  await probe.ping();
  probe.disconnect();
  return child;
}

describe('a Redis restart (a server of this test’s own)', () => {
  it('keeps the last known state while Redis is down, and takes Redis’s word once it is back empty', async () => {
    const port = await freePort();
    let server = await privateRedis(port);
    try {
      const redis = new Redis({ port, retryStrategy: () => 100 });
      redis.on('error', () => {});
      const errors: unknown[] = [];
      const control = await startBreakerControl(redis, {
        service: 'backend',
        replicaId: 'a',
        heartbeat: 200,
        onError: (e) => errors.push(e),
      });
      opened.push({ redis, control });
      await control.force('openrouter', 'open', who);

      server.kill('SIGKILL'); // no persistence: the restarted server is empty
      await new Promise((resolve) => server.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(control.forced('openrouter')).toBe('open'); // fail static while Redis is away
      expect(errors.length).toBeGreaterThan(0);

      server = await privateRedis(port);
      await vi.waitFor(() => expect(control.forced('openrouter')).toBe('auto'), {
        timeout: 5_000,
        interval: 20,
      });
      // And it is subscribed again.
      const other = new Redis({ port });
      other.on('error', () => {});
      const second = await startBreakerControl(other, {
        service: 'backend',
        replicaId: 'b',
        onError: () => {},
      });
      opened.push({ redis: other, control: second });
      await second.force('ollama', 'open', who);
      await vi.waitFor(() => expect(control.forced('ollama')).toBe('open'), { timeout: 1_000 });
    } finally {
      // Closed while their server still runs: a close against a dead server waits for startTimeout.
      for (const { control } of opened) await control?.close();
      server.kill('SIGKILL');
    }
  });
});

describe('a read-only replica (servers of this test’s own)', () => {
  it('answers the reads that plans and verification make, before and after the first write', async () => {
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const primary = await privateRedis(primaryPort, ['--repl-diskless-sync-delay', '0']);
    const follower = await privateRedis(replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)]);
    const write = new Redis({ port: primaryPort });
    const read = new Redis({ port: replicaPort });
    try {
      const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, 'backend');
      await vi.waitFor(
        async () => expect(await read.info('replication')).toContain('master_link_status:up'),
        {
          timeout: 5_000,
          interval: 50,
        },
      );
      expect(await readForced(read, keys)).toMatchObject({ epoch: null, version: 0 });
      const control = await startBreakerControl(write, {
        service: 'backend',
        replicaId: 'a',
        onError: () => {},
      });
      opened.push({ redis: write, control });
      await control.force('openrouter', 'open', who);
      await write.wait(1, 2_000);
      const snap = await readForced(read, keys);
      expect(snap.version).toBe(1);
      expect(snap.records.get('openrouter')).toMatchObject({ state: 'open', actor: 'alice' });
    } finally {
      for (const { control } of opened) await control?.close();
      read.disconnect();
      follower.kill('SIGKILL');
      primary.kill('SIGKILL');
    }
  });
});

describe('starting and options', () => {
  it('rejects with BREAKER_CONTROL_UNAVAILABLE when Redis does not answer within startTimeout', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: 1, retryStrategy: () => 100, lazyConnect: false });
    redis.on('error', () => {});
    opened.push({ redis });
    const started = Date.now();
    await expect(
      startBreakerControl(redis, { service: service('down'), startTimeout: '300ms', onError: () => {} }),
    ).rejects.toMatchObject({
      code: 'BREAKER_CONTROL_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining('localBreakerSwitch()'),
    });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('keeps the password out of what onError and the start error carry (ioredis attaches HELLO … AUTH <password>)', async () => {
    const password = 'breaker-Secret-pw-31';
    const server = await startTestRedis({ args: ['--requirepass', password] });
    // What console.error and loggers that print causes show.
    const printed = (e: unknown) => inspect(e, { depth: Number.POSITIVE_INFINITY, showHidden: true });
    try {
      const wrong = 'wrong-Breaker-pw-77';
      const bad = new Redis({ port: server.port, password: wrong, retryStrategy: () => 100 });
      bad.on('error', () => {});
      opened.push({ redis: bad });
      const startErrors: unknown[] = [];
      const failure = await startBreakerControl(bad, {
        service: service('wrongpass'),
        startTimeout: '1s',
        onError: (e) => startErrors.push(e),
      }).catch((e: unknown) => e);
      expect(failure).toMatchObject({ code: 'BREAKER_CONTROL_UNAVAILABLE' });
      expect(printed(failure)).toMatch(/WRONGPASS/);
      expect(printed(failure)).not.toContain(wrong);
      expect((failure as Error).cause).toMatchObject({ command: { name: 'hello' } });
      expect(startErrors.length).toBeGreaterThan(0);
      for (const e of startErrors) expect(printed(e)).not.toContain(wrong);

      // A running replica whose password stops working: its subscriber's reconnect fails to log in.
      const good = new Redis({ port: server.port, password, retryStrategy: () => 100 });
      good.on('error', () => {});
      const errors: unknown[] = [];
      const control = await startBreakerControl(good, {
        service: 'backend',
        replicaId: 'a',
        onError: (e) => errors.push(e),
      });
      opened.push({ redis: good, control });
      await server.admin.config('SET', 'requirepass', 'rotated-pw');
      await server.admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await vi.waitFor(() => expect(errors.map(printed).join('\n')).toMatch(/WRONGPASS/), { timeout: 5_000 });
      for (const e of errors) expect(printed(e)).not.toContain(password);
      await server.admin.config('SET', 'requirepass', password);
      await control.close();
    } finally {
      await server.stop();
    }
  });

  it('resource references name the Redis and the breaker, never the credentials', () => {
    const withPassword = new Redis('redis://ops:s3cret-pw@10.0.0.7:6380/3', { lazyConnect: true });
    expect(breakerRef(withPassword, 'backend', 'openrouter')).toBe(
      'redis://10.0.0.7:6380/3/breaker/backend/openrouter',
    );
    expect(breakerRef(withPassword, 'backend')).toBe('redis://10.0.0.7:6380/3/breaker/backend');
    const v6 = new Redis({ host: '::1', port: 6379, lazyConnect: true });
    expect(breakerRef(v6, 'backend')).toBe('redis://[::1]:6379/0/breaker/backend');
    withPassword.disconnect();
    v6.disconnect();
  });

  it('names the bad option fields', async () => {
    await expect(startBreakerControl(admin, { service: 'has space' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('service:'),
    });
    await expect(
      startBreakerControl(admin, { service: 'ok', heartbeat: '1s', heartbeatTtl: '1s' }),
    ).rejects.toMatchObject({
      message: expect.stringContaining('heartbeatTtl: must be longer than heartbeat'),
    });
    await expect(startBreakerControl(admin, { service: 'ok', prefix: '{x}' })).rejects.toMatchObject({
      message: expect.stringContaining('prefix:'),
    });
  });

  it('a malformed or unbounded duration is an InputValidationError naming the field, never a RangeError', async () => {
    const cases: [Partial<BreakerControlOptionsInput>, string][] = [
      [{ heartbeat: '1 s' }, 'heartbeat: expected a duration'],
      [{ heartbeat: '10ms' }, 'heartbeat: expected between 50ms and 5m'],
      [{ heartbeatTtl: 'soon' }, 'heartbeatTtl: expected a duration'],
      [{ resync: '5 m' }, 'resync: expected a duration'],
      [{ resync: '30d' }, 'resync: expected between 50ms and 1d'],
      [{ startTimeout: '0ms' }, 'startTimeout: expected between 100ms and 5m'],
    ];
    for (const [options, message] of cases) {
      const error = await startBreakerControl(admin, { service: 'ok', ...options }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining(message) });
      // One issue per bad field: a malformed heartbeat does not also fail the comparisons with it.
      expect((error as Error).message).not.toContain('must be');
    }
  });

  it('force validates the provider, the state and who/why', async () => {
    const s = service('validate');
    const a = await replica(s, 'a');
    await expect(a.control.force('bad name', 'open', who)).rejects.toMatchObject({
      message: expect.stringContaining('provider:'),
    });
    await expect(a.control.force('openrouter', 'half' as ForcedState, who)).rejects.toMatchObject({
      message: expect.stringContaining('state:'),
    });
    await expect(a.control.force('openrouter', 'open', { reason: ' ', actor: 'a' })).rejects.toMatchObject({
      message: expect.stringContaining('reason:'),
    });
    expect(await a.control.read()).toEqual([]);
  });

  it('force takes the same expiry bounds as the actions: 1 s to 7 d ahead, never one already past', async () => {
    const s = service('bounds');
    const a = await replica(s, 'a');
    const refused: [Partial<ForceOptionsInput>, string][] = [
      [{ expiresAfter: 0 }, 'expiresAfter: expected between 1s and 7d'],
      [{ expiresAfter: '500ms' }, 'expiresAfter: expected between 1s and 7d'],
      [{ expiresAfter: '8d' }, 'expiresAfter: expected between 1s and 7d'],
      [{ expiresAfter: '1 h' }, 'expiresAfter: expected a duration'],
      [{ expiresAt: new Date(Date.now() - 60_000) }, 'expiresAt: expected between 1s and 7d from now'],
      [
        { expiresAt: new Date(Date.now() + 8 * 86_400_000) },
        'expiresAt: expected between 1s and 7d from now',
      ],
    ];
    for (const [options, message] of refused) {
      await expect(a.control.force('openrouter', 'open', { ...who, ...options })).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        message: expect.stringContaining(message),
      });
    }
    expect(await admin.exists(breakerKeys(DEFAULT_BREAKER_PREFIX, s).forced)).toBe(0);
    const at = new Date(Date.now() + 3_600_000);
    expect(await a.control.force('openrouter', 'open', { ...who, expiresAt: at })).toMatchObject({
      expiresAt: at.toISOString(),
    });
  });

  it('reading the forced states writes nothing', async () => {
    const s = service('readonly');
    const keys = breakerKeys(DEFAULT_BREAKER_PREFIX, s);
    expect(await readForced(admin, keys)).toMatchObject({ epoch: null, version: 0, records: new Map() });
    expect(await admin.exists(keys.epoch)).toBe(0);
  });
});
