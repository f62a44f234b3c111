import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepContext } from '../../src/core/step';
import { restoreRdb } from '../../src/redis/actions';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { sealAsEngine, stepContext } from '../support/kubernetes';
import { REDIS_SERVER_BIN, startTestRedis, type TestRedis } from '../support/redis-server';

// Restoring a real Redis 7.0 from an RDB snapshot, as the manual's disaster recovery does it: the snapshot is
// copied over dump.rdb, the server is shut down without saving and started again (here by the test, as the
// kubelet would restart the container), and it comes back with the snapshot's keys.

let server: TestRedis;
let r: RedisInstance;
let work: string;
let snapshot: string;
const restarted: ChildProcess[] = [];

/** Starts redis-server again on the same port and dir: what a supervisor does after the shutdown. */
function restartServer(lines: string[]) {
  return async (ctx: StepContext) => {
    const child = spawn(
      REDIS_SERVER_BIN,
      [
        '--port',
        String(server.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        server.dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    );
    restarted.push(child);
    lines.push(`restarted by ${ctx.step}`);
  };
}

beforeAll(async () => {
  server = await startTestRedis();
  r = connectRedis({ url: server.url });
  await server.admin.set('user:1', 'alice');
  await server.admin.rpush('agent:requests:queue', 'a', 'b');
  await server.admin.save();
  work = await mkdtemp(join(tmpdir(), 'runbook-restore-rdb-'));
  snapshot = join(work, 'snapshot.rdb');
  await copyFile(join(server.dir, 'dump.rdb'), snapshot);
});

afterAll(async () => {
  await r?.close();
  for (const child of restarted) child.kill('SIGKILL');
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('restoreRdb against Redis 7.0', () => {
  it('replaces the dataset with the snapshot: the lost keys are back, the ones written since are gone', async () => {
    await server.admin.flushall();
    await server.admin.set('written-after-snapshot', '1');
    const lines: string[] = [];
    const action = restoreRdb(r, {
      snapshot,
      restart: restartServer(lines),
      timeout: '20s',
      pollInterval: '50ms',
    });
    expect(action.destructive).toBe(true);
    expect(action.risk).toBe('high');
    const ctx = stepContext({ step: 'restore-redis', log: (m) => lines.push(m) });
    const plan = sealAsEngine(action, await action.plan(ctx));
    expect(plan.params.keysAtPlan).toBe(1);
    expect(plan.params.targetPath).toBe(join(server.dir, 'dump.rdb'));
    expect(plan.changes.map((c) => c.field)).toEqual(['dataset', join(server.dir, 'dump.rdb'), 'process']);

    const data = await action.apply(ctx, plan);
    expect(data.runIdAfter).not.toBe(data.runIdBefore);
    expect(data.keysLoaded).toBe(2);
    expect(lines).toContain('restarted by restore-redis');
    // The server is a new process: read with a fresh client.
    const check = connectRedis({ url: server.url });
    try {
      expect(await check.client.get('user:1')).toBe('alice');
      expect(await check.client.lrange('agent:requests:queue', 0, -1)).toEqual(['a', 'b']);
      expect(await check.client.exists('written-after-snapshot')).toBe(0);
    } finally {
      await check.close();
    }
    const verification = await action.verify?.(ctx, {
      plan,
      data,
      appliedAt: new Date().toISOString(),
      recovered: false,
    });
    expect(verification?.status).toBe('ok');
    expect(verification?.summary).toContain('2 keys loaded');
    // The dump.rdb it replaced is moved aside, not deleted.
    expect((await readdir(server.dir)).filter((f) => f.startsWith('dump.rdb.before-restore-'))).toHaveLength(
      1,
    );
  });

  it('refuses a snapshot that is not an RDB file, before touching the server', async () => {
    const bogus = join(work, 'bogus.rdb');
    await writeFile(bogus, 'NOT-AN-RDB-FILE-AT-ALL-0123456789');
    const check = connectRedis({ url: server.url });
    try {
      const before = await check.client.info('server');
      const action = restoreRdb(check, { snapshot: bogus });
      await expect(action.plan(stepContext())).rejects.toMatchObject({
        code: 'REDIS_RESTORE_REFUSED',
        message: expect.stringContaining('not an RDB snapshot'),
      });
      const runId = (text: string) => /run_id:(\w+)/.exec(text)?.[1];
      expect(runId(await check.client.info('server'))).toBe(runId(before));
      expect(await check.client.get('user:1')).toBe('alice');
    } finally {
      await check.close();
    }
  });

  it('names the field when the snapshot path is not absolute', () => {
    expect(() => restoreRdb(r, { snapshot: 'dump.rdb' })).toThrow(/snapshot.*absolute path/);
  });
});
