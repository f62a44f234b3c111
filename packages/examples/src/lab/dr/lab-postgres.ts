/**
 * The disaster-recovery lab's own PostgreSQL cluster: initdb'd in the lab directory, archiving every WAL
 * segment to an archive directory next to it, so that it can be lost and restored to a point in time.
 * The server runs as the `postgres` OS user (initdb and pg_ctl refuse root).
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { postmasterStatus, stopServer, takeBaseBackup } from '@aiwebtest/runbooks/postgres';
import pg from 'pg';
import { freePort } from '../database/pgbouncer';

const run = promisify(execFile);

/** Debian's PostgreSQL 15 server programs; `AIWEBTEST_PG_BIN` points elsewhere. */
export const LAB_PG_BIN = process.env.AIWEBTEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';

/** The lab's cluster, running. */
export interface LabPostgres {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust on loopback). */
  adminUrl: string;
  /** `<dir>`: everything below belongs to the `postgres` user. */
  root: string;
  dataDir: string;
  /** Where `archive_command` copies each finished WAL segment. */
  archiveDir: string;
  /** The base backup (`pg_basebackup`), taken by {@link LabPostgres.baseBackup}. */
  backupDir: string;
  /** The parent of restored data directories (runbooks restore into new directories here). */
  restoreDir: string;
  logFile: string;
  /** Takes the base backup (once the database is seeded): later restores start from it. */
  baseBackup(): Promise<void>;
  /** Switches to a new WAL segment and waits until the one holding everything so far is archived. */
  archiveNow(timeoutMs?: number): Promise<string>;
  /** Stops the server at once (`pg_ctl stop -m immediate`): a crash, no shutdown checkpoint. */
  crash(): Promise<void>;
  /** Stops the cluster and every server restored under `restoreDir`. */
  close(): Promise<void>;
}

/** Runs a PostgreSQL program as the `postgres` user (through runuser when we are root). */
function asPostgres(program: string, args: string[]) {
  const root = process.getuid?.() === 0;
  return root
    ? run('runuser', ['-u', OS_USER, '--', program, ...args], { maxBuffer: 8 * 1024 * 1024 })
    : run(program, args, { maxBuffer: 8 * 1024 * 1024 });
}

async function giveToPostgres(path: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { stdout: uid } = await run('id', ['-u', OS_USER]);
  const { stdout: gid } = await run('id', ['-g', OS_USER]);
  await chown(path, Number(uid.trim()), Number(gid.trim()));
}

/** A setting's value for postgresql.conf: single-quoted, quotes doubled. */
const quoted = (value: string) => `'${value.replaceAll("'", "''")}'`;

/**
 * initdb's a cluster in `<dir>/data` (trust auth, data checksums, 1 MB WAL segments so that each forced
 * switch archives 1 MB, not 16) and starts it on a free port of 127.0.0.1 with `wal_level = replica`,
 * `archive_mode = on` and `archive_command` copying into `<dir>/archive` (refusing to overwrite).
 */
export async function startLabPostgres(options: { dir: string }): Promise<LabPostgres> {
  const root = options.dir;
  await mkdir(root, { recursive: true });
  await chmod(root, 0o755);
  await giveToPostgres(root);
  const dataDir = join(root, 'data');
  const archiveDir = join(root, 'archive');
  const backupDir = join(root, 'backup');
  const restoreDir = join(root, 'restores');
  const logFile = join(root, 'postgres.log');
  for (const d of [archiveDir, restoreDir]) {
    await mkdir(d, { recursive: true });
    await chmod(d, 0o755);
    await giveToPostgres(d);
  }
  await asPostgres(join(LAB_PG_BIN, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    OS_USER,
    '--auth=trust',
    '-k',
    '-E',
    'UTF8',
    '--wal-segsize=1',
  ]);
  const port = await freePort();
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: quoted('127.0.0.1'),
    unix_socket_directories: quoted(root),
    // A lab: speed over durability across an OS crash (the incidents here lose the data on purpose).
    fsync: 'off',
    wal_level: 'replica',
    archive_mode: 'on',
    archive_command: quoted(`test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f`),
    // A quiet lab still archives what it wrote within a minute.
    archive_timeout: '60',
    max_connections: '100',
  };
  await writeFile(
    join(dataDir, 'postgresql.auto.conf'),
    `${Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  await giveToPostgres(join(dataDir, 'postgresql.auto.conf'));
  await asPostgres(join(LAB_PG_BIN, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const runner = { binDir: LAB_PG_BIN, osUser: OS_USER };

  const query = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: adminUrl, application_name: 'aiwebtest-lab-dr' });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  };

  return {
    port,
    adminUrl,
    root,
    dataDir,
    archiveDir,
    backupDir,
    restoreDir,
    logFile,
    async baseBackup() {
      await rm(backupDir, { recursive: true, force: true });
      await takeBaseBackup({
        port,
        backupDir,
        wal: 'fetch',
        label: 'aiwebtest-lab base backup',
        binDir: LAB_PG_BIN,
        timeout: '2m',
      });
    },
    async archiveNow(timeoutMs = 20_000) {
      const [switched] = await query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
      const segment = switched?.f ?? '';
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [row] = await query<{ last: string | null }>(
          'SELECT last_archived_wal AS last FROM pg_stat_archiver',
        );
        if (row?.last && row.last.slice(0, 24) >= segment) return segment;
        if (Date.now() > deadline) {
          throw new Error(`WAL segment ${segment} was not archived within ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async crash() {
      if (!(await postmasterStatus(dataDir))?.alive) return;
      await asPostgres(join(LAB_PG_BIN, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
    },
    async close() {
      await stopServer(runner, dataDir).catch(() => false);
      // Servers a runbook restored for this lab: they outlive the run that started them, not the lab.
      for (const entry of await readdir(restoreDir).catch(() => [] as string[])) {
        await stopServer(runner, join(restoreDir, entry)).catch(() => false);
      }
    },
  };
}
