import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './postgres-cluster';

/** The redis-server program (Debian's `redis-server` package). */
export const REDIS_SERVER_BIN = process.env.RUNBOOK_TEST_REDIS_SERVER ?? 'redis-server';

/** The shared Redis the tests may use with unique key prefixes only (never FLUSHDB, never config changes). */
export const SHARED_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A private redis-server of a test file's own. */
export interface TestRedis {
  port: number;
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  /** Its working directory (`dir`): `dump.rdb` lands here. */
  dir: string;
  /** Where its log goes. */
  logFile: string;
  /** A client for setting things up (connected, with `--requirepass` when given; closed by `stop`). */
  admin: Redis;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

export interface TestRedisOptions {
  /** Extra server arguments, e.g. `['--maxmemory', '4mb']`; they override the defaults. */
  args?: string[];
}

/**
 * Starts a private `redis-server` on a free port of 127.0.0.1 with its own temporary `dir`: for FLUSHDB,
 * BGSAVE, maxmemory and eviction tests, which must never touch the shared server on 6379. Defaults: no save
 * points (`--save ""`), no AOF, `DEBUG` enabled; `args` override them. Resolves once it answers PING.
 */
export async function startTestRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'runbook-redis-'));
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const args = [
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
    '--daemonize',
    'no',
    '--logfile',
    logFile,
    '--enable-debug-command',
    'yes',
    ...(options.args ?? []),
  ];
  const child = spawn(REDIS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const requirepass = options.args?.[options.args.indexOf('--requirepass') + 1];
  const password = options.args?.includes('--requirepass') ? requirepass : undefined;
  const admin = new Redis({
    port,
    host: '127.0.0.1',
    ...(password ? { password } : {}),
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  admin.on('error', () => {});
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await admin.connect();
      await admin.ping();
      break;
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stopChild(child, exited);
        await rm(dir, { recursive: true, force: true });
        throw new Error(
          `redis-server did not start on port ${port}: ${(e as Error).message} ${stderr.slice(-2000)}`,
        );
      }
      admin.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    logFile,
    admin,
    async stop() {
      admin.disconnect();
      await stopChild(child, exited);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A TCP proxy on a free port that holds every chunk in both directions for `delayMs`: a slow network. */
export interface LatencyProxy {
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Forwards 127.0.0.1:<new port> to 127.0.0.1:`targetPort`, adding `delayMs` each way. */
export async function startLatencyProxy(targetPort: number, delayMs: number): Promise<LatencyProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    const delayed = (to: Socket) => (chunk: Buffer) => {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, delayMs);
    };
    client.on('data', delayed(upstream));
    upstream.on('data', delayed(client));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP server that accepts connections and never answers: a hung Redis. */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A key prefix no other test (or helper) uses: `t:<pid>:<random>:<label>:`, ending in `:`. The one helper for
 * every test that writes to the shared Redis; delete the keys under it afterwards (and `{<prefix>…` for keys
 * with a hash tag, such as the request queue's).
 */
export function uniquePrefix(label: string): string {
  return `t:${process.pid}:${Math.random().toString(36).slice(2, 10)}:${label}:`;
}
