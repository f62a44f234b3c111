/**
 * The disaster-recovery lab's own redis-server: its data directory in the lab, RDB snapshots on, and a
 * supervisor that starts it again whenever it exits (as the kubelet restarts the Redis container), so that
 * `SHUTDOWN` followed by a restart loads whatever `dump.rdb` holds — the manual's RDB restore.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../database/pgbouncer';

/** Debian's redis-server; `AIWEBTEST_REDIS_SERVER_BIN` points elsewhere. */
export const LAB_REDIS_SERVER_BIN = process.env.AIWEBTEST_REDIS_SERVER_BIN ?? 'redis-server';

/** The server's pid file, in the directory given to {@link startLabRedis}. */
export const LAB_REDIS_PID_FILE = 'redis.pid';

export interface LabRedis {
  port: number;
  /** `redis://127.0.0.1:<port>/0`. */
  url: string;
  /** The server's `dir` (its `dump.rdb`). */
  dir: string;
  /** The latest snapshot copied off the server: what a restore loads. */
  snapshotPath: string;
  /** How often the supervisor started the server (1 at first). */
  starts(): number;
  /** `SAVE`, then copies `dump.rdb` to {@link LabRedis.snapshotPath} (atomically): the snapshot job. */
  snapshot(): Promise<void>;
  /** Stops the server for good (no restart). */
  close(): Promise<void>;
}

async function untilAnswers(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`redis-server did not start on 127.0.0.1:${port}: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    } finally {
      probe.disconnect();
    }
  }
}

/** Starts the supervised server on a free port with `dir` = `<dir>/data`. */
export async function startLabRedis(options: { dir: string }): Promise<LabRedis> {
  const dataDir = join(options.dir, 'data');
  const snapshotDir = join(options.dir, 'snapshots');
  await mkdir(dataDir, { recursive: true });
  await mkdir(snapshotDir, { recursive: true });
  const snapshotPath = join(snapshotDir, 'dump.rdb');
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dataDir,
    '--dbfilename',
    'dump.rdb',
    // RDB snapshots as production keeps them (a save after 60 s with at least one change), no AOF.
    '--save',
    '60 1',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--logfile',
    join(options.dir, 'redis.log'),
    // So that a later lab in this directory can stop a server this one left behind (see clearPrevious).
    '--pidfile',
    join(options.dir, LAB_REDIS_PID_FILE),
  ];
  let child: ChildProcess | null = null;
  let closing = false;
  let starts = 0;
  let restarting: Promise<void> = Promise.resolve();
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);

  const launch = async () => {
    const proc = spawn(LAB_REDIS_SERVER_BIN, args, { stdio: 'ignore' });
    child = proc;
    starts += 1;
    proc.once('exit', () => {
      if (closing) return;
      // The supervisor: a container that exits is started again after a short back-off.
      restarting = new Promise((r) => setTimeout(r, 100)).then(() => (closing ? undefined : launch()));
      restarting.catch(() => {});
    });
    await untilAnswers(port, proc, 10_000);
  };
  await launch();

  const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 2 });
  admin.on('error', () => {});
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    dir: dataDir,
    snapshotPath,
    starts: () => starts,
    async snapshot() {
      await admin.save();
      const temporary = `${snapshotPath}.tmp`;
      await copyFile(join(dataDir, 'dump.rdb'), temporary);
      await rename(temporary, snapshotPath);
    },
    async close() {
      closing = true;
      admin.disconnect();
      await restarting.catch(() => {});
      const proc = child as ChildProcess | null;
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      process.removeListener('exit', onExit);
    },
  };
}
