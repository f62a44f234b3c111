import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian puts the PostgreSQL 15 server programs. */
export const PG_BIN = process.env.RUNBOOK_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A throwaway PostgreSQL cluster of the test's own, on its own port, owned by the `postgres` OS user. */
export interface TestCluster {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth on loopback). */
  url: string;
  dataDir: string;
  /** The WAL archive directory (`archive_command` copies into it) when archiving is on. */
  archiveDir: string;
  /** The parent directory everything lives in; removed by `destroy`. */
  root: string;
  /** Runs a program as the `postgres` user (initdb and pg_ctl refuse root). */
  asPostgres(program: string, args: string[]): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
  /** Stops the cluster and removes its files. */
  destroy(): Promise<void>;
}

export interface TestClusterOptions {
  /** Archive WAL into `archiveDir` (`wal_level = replica`, `archive_mode = on`). @default false */
  archive?: boolean;
  /** `shared_preload_libraries`, e.g. `['pg_stat_statements']`. @default [] */
  preload?: string[];
  /** Further `postgresql.conf` settings. */
  settings?: Record<string, string>;
}

/** A free TCP port on 127.0.0.1. */
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

/** Runs as the `postgres` user when we are root (as in CI); as ourselves otherwise. */
export function asPostgres(program: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const root = process.getuid?.() === 0;
  return root
    ? run('runuser', ['-u', 'postgres', '--', program, ...args], { maxBuffer: 16 * 1024 * 1024 })
    : run(program, args, { maxBuffer: 16 * 1024 * 1024 });
}

/** Hands a path to the `postgres` user (when we are root), so the server may use it. */
export async function giveToPostgres(path: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  await chown(path, Number(stdout.trim()), Number(gid.trim()));
}

/**
 * initdb's a new cluster (trust auth, data checksums) in a fresh temporary directory and starts it on a
 * free port, listening on 127.0.0.1 only.
 */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const root = await mkdtemp(join(tmpdir(), 'runbook-pg-'));
  await chmod(root, 0o755);
  await giveToPostgres(root);
  const dataDir = join(root, 'data');
  const archiveDir = join(root, 'archive');
  await mkdir(archiveDir);
  await giveToPostgres(archiveDir);
  await asPostgres(join(PG_BIN, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '-k',
    '-E',
    'UTF8',
  ]);
  const port = await freePort();
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${root}'`,
    fsync: 'off', // a throwaway cluster: durability across OS crashes does not matter, speed does
    ...(options.preload?.length ? { shared_preload_libraries: `'${options.preload.join(',')}'` } : {}),
    ...(options.archive
      ? {
          wal_level: 'replica',
          archive_mode: 'on',
          archive_command: `'cp %p ${archiveDir}/%f'`,
          archive_timeout: '60',
        }
      : {}),
    ...options.settings,
  };
  const conf = Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
  await writeFile(join(dataDir, 'postgresql.auto.conf'), `${conf}\n`);
  await giveToPostgres(join(dataDir, 'postgresql.auto.conf'));
  const log = join(root, 'server.log');
  await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', dataDir, '-l', log, '-w', '-t', '60', 'start']);
  const stop = async () => {
    await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => {});
  };
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    archiveDir,
    root,
    asPostgres,
    stop,
    async destroy() {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}
