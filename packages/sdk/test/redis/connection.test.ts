import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { connectRedis, isRedisError, redisFrom } from '../../src/redis/connection';
import { freePort } from '../support/postgres-cluster';
import { SHARED_REDIS_URL, startTestRedis, type TestRedis, uniquePrefix } from '../support/redis-server';

// The connection layer every Redis check and action uses: option validation, references and messages without
// the password, error mapping, and reuse of a service's own client. Against a private server with a password.

const PASSWORD = 'pw-Very-Secret-42';
let locked: TestRedis;

beforeAll(async () => {
  locked = await startTestRedis({ args: ['--requirepass', PASSWORD] });
});

afterAll(async () => {
  await locked?.stop();
});

describe('connectRedis', () => {
  it('names each bad field', () => {
    const bad = (input: unknown) => {
      try {
        connectRedis(input as never);
      } catch (e) {
        if (isInputValidationError(e)) return e.issues.map((i) => i.path);
        throw e;
      }
      return [];
    };
    expect(bad({})).toEqual(['url']);
    expect(bad({ url: 'http://redis:6379' })).toEqual(['url']);
    expect(bad({ url: 'redis://redis:6379/cache' })).toEqual(['url']);
    expect(bad({ host: 'redis', port: 70_000, db: -1 })).toEqual(['port', 'db']);
    expect(bad({ host: 'redis', name: 'has space', commandTimeout: 'soon' })).toEqual([
      'commandTimeout',
      'name',
    ]);
  });

  it('takes the URL apart: references and display never hold the password', async () => {
    const r = connectRedis({ url: `redis://app:${encodeURIComponent(PASSWORD)}@redis.aiwebtest.svc:6380/3` });
    expect(r.display).toBe('app@redis.aiwebtest.svc:6380/3');
    expect(r.db).toBe(3);
    expect(r.ref('db', '3', 'keys', 'agent%3A')).toBe('redis:redis.aiwebtest.svc/db/3/keys/agent%3A');
    expect(JSON.stringify(r)).not.toContain(PASSWORD);
    expect(inspect(r)).toBe('RedisInstance(redis.aiwebtest.svc: app@redis.aiwebtest.svc:6380/3)');
    expect(r.client.options).toMatchObject({
      host: 'redis.aiwebtest.svc',
      port: 6380,
      db: 3,
      username: 'app',
    });
    await r.close();
    const named = connectRedis({ host: '::1', db: 1, name: 'cache', tls: true });
    expect(named.display).toBe('[::1]:6379/1');
    expect(named.ref('rdb')).toBe('redis:cache/rdb');
    expect(named.client.options.tls).toMatchObject({ rejectUnauthorized: true, servername: '::1' });
    await named.close();
  });

  it('authenticates with the password and runs commands; a wrong password fails without showing it', async () => {
    const good = connectRedis({ url: `redis://:${PASSWORD}@127.0.0.1:${locked.port}` });
    expect(await good.run('PING', (c) => c.ping())).toBe('PONG');
    await good.close();

    const wrong = 'wrong-Password-99';
    const bad = connectRedis({ host: '127.0.0.1', port: locked.port, password: wrong, connectTimeout: '2s' });
    const error = await bad.run('PING', (c) => c.ping()).catch((e: unknown) => e);
    await bad.close();
    expect(isRedisError(error)).toBe(true);
    const text = `${(error as Error).message} ${JSON.stringify(error)}`;
    expect(text).toMatch(/WRONGPASS/);
    expect(text).not.toContain(wrong);
  });

  it('keeps the password out of the cause too: ioredis attaches HELLO 3 AUTH <user> <password> to its error', async () => {
    const wrong = 'wrong-Password-77';
    const bad = connectRedis({
      host: '127.0.0.1',
      port: locked.port,
      username: 'ops',
      password: wrong,
      connectTimeout: '2s',
    });
    const error = await bad.run('PING', (c) => c.ping()).catch((e: unknown) => e);
    await bad.close();
    // What console.error and loggers that print causes show.
    const printed = inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true });
    expect(printed).toMatch(/WRONGPASS/);
    expect(printed).not.toContain(wrong);
    expect((error as Error).cause).toMatchObject({ name: 'ReplyError', command: { name: 'hello' } });
    expect((error as { cause: { command: object } }).cause.command).toEqual({ name: 'hello' });
  });

  it('maps an error reply to REDIS_ERROR with its code, and no reply to a retriable REDIS_CONNECTION', async () => {
    const r = connectRedis({ url: SHARED_REDIS_URL });
    const key = `${uniquePrefix('conn')}str`;
    await r.run('SET', (c) => c.set(key, 'x', 'EX', 60));
    const wrongType = await r.run('LLEN', (c) => c.llen(key)).catch((e: unknown) => e);
    expect(wrongType).toMatchObject({ code: 'REDIS_ERROR', replyCode: 'WRONGTYPE', retriable: false });
    expect((wrongType as Error).message).toMatch(/^Redis LLEN on 127\.0\.0\.1:6379\/0 failed: WRONGTYPE/);
    await r.run('DEL', (c) => c.del(key));
    await r.close();

    const port = await freePort();
    const down = connectRedis({ host: '127.0.0.1', port, connectTimeout: '1s' });
    const refused = await down.run('PING', (c) => c.ping()).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'REDIS_CONNECTION', retriable: true });
    expect((refused as Error).message).toContain('ECONNREFUSED');
    await down.close();
  });

  it('an aborted signal ends the wait with its reason', async () => {
    const r = connectRedis({ url: SHARED_REDIS_URL });
    const controller = new AbortController();
    const pending = r.run('BLPOP', (c) => c.blpop(`${uniquePrefix('conn')}never`, 5), controller.signal);
    setTimeout(() => controller.abort(new Error('step cancelled')), 50);
    const started = Date.now();
    await expect(pending).rejects.toThrow('step cancelled');
    expect(Date.now() - started).toBeLessThan(2_000);
    r.client.disconnect(); // the BLPOP is still blocking on the server
  });

  it('redisFrom reuses a service’s client and leaves it open on close()', async () => {
    const client = new Redis(SHARED_REDIS_URL, { db: 2 });
    const r = redisFrom(client, { name: 'service-cache' });
    expect(r.db).toBe(2);
    expect(r.ref('db', '2')).toBe('redis:service-cache/db/2');
    expect(await r.run('PING', (c) => c.ping())).toBe('PONG');
    await r.close();
    expect(await client.ping()).toBe('PONG');
    await client.quit();
    const prefixed = new Redis(SHARED_REDIS_URL, { keyPrefix: 'app:', lazyConnect: true });
    expect(() => redisFrom(prefixed)).toThrow(/keyPrefix: the client prefixes every key with "app:"/);
    prefixed.disconnect();
  });
});
