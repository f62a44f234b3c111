import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { z } from 'zod';
import { LabDatabaseName, parseInput } from './lab-database';

const run = promisify(execFile);

/** Debian's pgbouncer; `AIWEBTEST_PGBOUNCER_BIN` points elsewhere. */
export const PGBOUNCER_BIN = process.env.AIWEBTEST_PGBOUNCER_BIN ?? '/usr/sbin/pgbouncer';

export const LabPgBouncerOptions = z.object({
  /** The PostgreSQL server pgbouncer connects to. @default "127.0.0.1" */
  postgresHost: z
    .string()
    .regex(/^[A-Za-z0-9.:-]+$/, 'expected a host name or IP address')
    .default('127.0.0.1'),
  postgresPort: z.number().int().min(1).max(65535).default(5432),
  /** The database pgbouncer serves (under the same name). */
  database: LabDatabaseName,
  /** The port to listen on; 0 picks a free one (kept across restarts). @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
  /** Where the ini, auth file, log and pid file live; created when missing. */
  dir: z.string().min(1, 'expected a directory path'),
  /** `default_pool_size`: server connections per (database, user). @default 20 */
  poolSize: z.number().int().min(1).max(500).default(20),
  /** `max_client_conn`. @default 100 */
  maxClientConn: z.number().int().min(1).max(10_000).default(100),
});
export type LabPgBouncerOptions = z.input<typeof LabPgBouncerOptions>;

/** A running lab pgbouncer (a real child process). */
export interface LabPgBouncer {
  port: number;
  /** A URL through pgbouncer to `database` (user `postgres`). */
  url(database: string): string;
  /** `postgres://postgres@127.0.0.1:<port>/pgbouncer`: the admin console. */
  adminUrl: string;
  /** Whether the process is alive. */
  running(): boolean;
  /** SIGTERM (SIGKILL after 5 s); resolves when it has exited. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would: clients are cut off, nothing is cleaned up by pgbouncer. */
  kill(): Promise<void>;
  /** Stops it if running and starts it again on the same port with the same settings. */
  restart(): Promise<void>;
  /** pgbouncer's log file so far. */
  log(): Promise<string>;
}

/**
 * Starts pgbouncer as a child process in transaction pooling, trust auth, listening on 127.0.0.1 only, with
 * `postgres` as admin user. pgbouncer refuses to run as root, so under root it runs as the `postgres` OS user
 * (its files are handed to that user). Resolves when the admin console answers `SHOW VERSION`.
 */
export async function startLabPgBouncer(options: LabPgBouncerOptions): Promise<LabPgBouncer> {
  const o = parseInput('startLabPgBouncer', LabPgBouncerOptions, options);
  const port = o.port === 0 ? await freePort() : o.port;
  const identity = process.getuid?.() === 0 ? await postgresIdentity() : null;
  const files = {
    ini: join(o.dir, 'pgbouncer.ini'),
    auth: join(o.dir, 'userlist.txt'),
    log: join(o.dir, 'pgbouncer.log'),
    pid: join(o.dir, 'pgbouncer.pid'),
  };
  await mkdir(o.dir, { recursive: true });
  await chmod(o.dir, 0o755);
  const settings: Record<string, string> = {
    listen_addr: '127.0.0.1',
    listen_port: String(port),
    // No Unix socket: two labs (or a test and a lab) would fight over /tmp/.s.PGSQL.<port>.
    unix_socket_dir: '',
    auth_type: 'trust',
    auth_file: files.auth,
    admin_users: 'postgres',
    stats_users: 'postgres',
    pool_mode: 'transaction',
    default_pool_size: String(o.poolSize),
    max_client_conn: String(o.maxClientConn),
    // Short, so that SHOW STATS averages follow the chaos within seconds.
    stats_period: '5',
    logfile: files.log,
    pidfile: files.pid,
    // pg clients send it; pgbouncer would refuse the login otherwise. (The SDK sends no startup parameter of
    // its own: it bounds its statements with SET LOCAL inside a transaction, which transaction pooling keeps.)
    ignore_startup_parameters: 'extra_float_digits',
  };
  const ini = [
    '[databases]',
    `${o.database} = host=${o.postgresHost} port=${o.postgresPort} dbname=${o.database}`,
    '',
    '[pgbouncer]',
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
  await writeFile(files.ini, ini);
  // Trust auth still wants the user listed; the password is empty.
  await writeFile(files.auth, '"postgres" ""\n');
  if (identity) {
    for (const path of [o.dir, files.ini, files.auth]) await chown(path, identity.uid, identity.gid);
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/pgbouncer`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  // pgbouncer outlives a Node process that exits without stopping it; kill it with us.
  const onExit = () => {
    child?.kill('SIGKILL');
  };

  const alive = () => child !== null && child.exitCode === null && child.signalCode === null;

  const launch = async () => {
    // A pid file left by a SIGKILL could name a recycled pid; pgbouncer would then refuse to start.
    await rm(files.pid, { force: true });
    let output = '';
    const proc = spawn(PGBOUNCER_BIN, [files.ini], {
      ...(identity ?? {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-4000);
    });
    proc.stderr?.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-4000);
    });
    proc.on('error', (e) => {
      output += `\n${e.message}`;
    });
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    process.once('exit', onExit);
    try {
      await waitForConsole(adminUrl, proc);
    } catch (e) {
      await terminate(proc, exited);
      process.removeListener('exit', onExit);
      const log = await readFile(files.log, 'utf8').catch(() => '');
      throw new Error(
        `pgbouncer did not start on 127.0.0.1:${port}: ${(e as Error).message}\n${`${output}\n${log.slice(-2000)}`.trim()}`,
      );
    }
  };

  const halt = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const proc = child;
    if (proc && alive()) {
      if (signal === 'SIGKILL') {
        proc.kill('SIGKILL');
        await exited;
      } else {
        await terminate(proc, exited);
      }
    }
    process.removeListener('exit', onExit);
  };

  await launch();
  return {
    port,
    adminUrl,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    running: alive,
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    async restart() {
      await halt('SIGTERM');
      // The port may be held for a moment after a crash; retry the start briefly.
      const deadline = Date.now() + 5_000;
      for (;;) {
        try {
          await launch();
          return;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    },
    log: () => readFile(files.log, 'utf8').catch(() => ''),
  };
}

/** A free TCP port on 127.0.0.1 (the OS picks it; released again before pgbouncer binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function postgresIdentity(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Polls the admin console with `SHOW VERSION` (simple protocol: the console knows no other) for up to 10 s. */
async function waitForConsole(url: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`pgbouncer exited (${proc.exitCode ?? proc.signalCode})`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SHOW VERSION');
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await client.end().catch(() => {});
    }
  }
}

async function terminate(proc: ChildProcess, exited: Promise<void>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const done = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
  ]);
  if (!done) {
    proc.kill('SIGKILL');
    await exited;
  }
}
