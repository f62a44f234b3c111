import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, giveToPostgres } from './postgres-cluster';

const run = promisify(execFile);

/** The pgbouncer program (Debian's package puts it in /usr/sbin; `scripts/services.sh` installs it). */
export const PGBOUNCER_BIN = process.env.RUNBOOK_TEST_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface TestPgBouncerOptions {
  /** The PostgreSQL server every database points at (127.0.0.1). */
  postgresPort: number;
  /** `[databases]`: name → the PostgreSQL database (default `postgres`) and its own `pool_size`. */
  databases: Record<string, { dbname?: string; poolSize?: number }>;
  /** Users in the auth file (trust auth still requires them there). @default ["postgres"] */
  users?: string[];
  /** `admin_users`. @default ["postgres"] */
  adminUsers?: string[];
  /** `default_pool_size`, small so that tests can saturate a pool. @default 2 */
  defaultPoolSize?: number;
  /** Further `[pgbouncer]` settings, e.g. `{ stats_period: '1' }`. */
  settings?: Record<string, string>;
}

/** A pgbouncer of the test's own, in transaction pooling, on its own port, run as the `postgres` OS user. */
export interface TestPgBouncer {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/pgbouncer`: the admin console. */
  adminUrl: string;
  /** A connection URL through pgbouncer. */
  url(database: string, user?: string): string;
  /** The temporary directory holding the ini, the auth file and the log. */
  root: string;
  /** pgbouncer's log so far. */
  log(): Promise<string>;
  /** Stops pgbouncer (SIGTERM, SIGKILL after 5 s) and removes its files. */
  stop(): Promise<void>;
}

/**
 * Writes an ini and an auth file into a fresh temporary directory and starts pgbouncer as a child process
 * (as the `postgres` OS user when we are root: pgbouncer refuses to run as root), listening on 127.0.0.1
 * only with `auth_type = trust`. Resolves once the admin console answers `SHOW VERSION`.
 */
export async function startTestPgBouncer(options: TestPgBouncerOptions): Promise<TestPgBouncer> {
  const root = await mkdtemp(join(tmpdir(), 'runbook-pgbouncer-'));
  await chmod(root, 0o755);
  await giveToPostgres(root);
  const port = await freePort();
  const users = options.users ?? ['postgres'];
  const databases = Object.entries(options.databases).map(
    ([name, d]) =>
      `${name} = host=127.0.0.1 port=${options.postgresPort} dbname=${d.dbname ?? 'postgres'}${d.poolSize === undefined ? '' : ` pool_size=${d.poolSize}`}`,
  );
  const settings: Record<string, string> = {
    listen_addr: '127.0.0.1',
    listen_port: String(port),
    unix_socket_dir: '',
    auth_type: 'trust',
    auth_file: join(root, 'userlist.txt'),
    admin_users: (options.adminUsers ?? ['postgres']).join(','),
    pool_mode: 'transaction',
    default_pool_size: String(options.defaultPoolSize ?? 2),
    max_client_conn: '100',
    logfile: join(root, 'pgbouncer.log'),
    ...options.settings,
  };
  const ini = [
    '[databases]',
    ...databases,
    '',
    '[pgbouncer]',
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
  const iniPath = join(root, 'pgbouncer.ini');
  await writeFile(iniPath, ini);
  await writeFile(join(root, 'userlist.txt'), `${users.map((u) => `"${u}" ""`).join('\n')}\n`);
  for (const file of ['pgbouncer.ini', 'userlist.txt']) await giveToPostgres(join(root, file));

  const identity = process.getuid?.() === 0 ? await postgresIds() : {};
  const child = spawn(PGBOUNCER_BIN, [iniPath], { ...identity, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => readFile(join(root, 'pgbouncer.log'), 'utf8').catch(() => '');
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/pgbouncer`;
  const stop = async () => {
    await terminate(child, exited);
    await rm(root, { recursive: true, force: true });
  };

  try {
    await waitForConsole(adminUrl, child);
  } catch (e) {
    const text = `${output}\n${await log()}`.trim().slice(-2000);
    await stop();
    throw new Error(`pgbouncer did not start: ${(e as Error).message}\n${text}`);
  }
  return {
    port,
    adminUrl,
    url: (database, user = 'postgres') => `postgres://${user}@127.0.0.1:${port}/${database}`,
    root,
    log,
    stop,
  };
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

async function waitForConsole(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode})`);
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

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killed = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
  ]);
  if (!killed) {
    child.kill('SIGKILL');
    await exited;
  }
}
