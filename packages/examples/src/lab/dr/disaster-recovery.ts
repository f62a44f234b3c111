/**
 * The lab's disaster-recovery option (`startLab({ disasterRecovery: true })`, on by default in
 * `aiwebtest-lab up`): servers the lab owns, so that they can be lost and restored for real — a PostgreSQL
 * cluster archiving its WAL with a base backup, a supervised redis-server with RDB snapshots — and the
 * platform's manifests as files, for the redeploy.
 *
 * Layout under `<lab dir>/dr`: `postgres/{data,archive,backup,restores}` (owned by the `postgres` user),
 * `redis/{data,snapshots}`, and `<lab dir>/k8s/*.json` (one file per part, in the manual's order).
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stopServer } from '@aiwebtest/runbooks/postgres';
import { type Manifest, type PlatformManifestsOptions, platformManifests } from '../platform/manifests';
import { LAB_PG_BIN, type LabPostgres, startLabPostgres } from './lab-postgres';
import { LAB_REDIS_PID_FILE, type LabRedis, startLabRedis } from './lab-redis';
import type { PostgresService } from './postgres-service';
import type { TableRows } from './table-rows';

/** What the lab's monitoring last recorded of the tables, and when a scrape last read it. */
export interface TableRowsRecord {
  last: TableRows | null;
  /** `Date.now()` of the last scrape that got counts (0: none yet). */
  servedAt: number;
}

/** The disaster-recovery parts of a running lab. */
export interface LabDisasterRecovery {
  postgres: LabPostgres;
  redis: LabRedis;
  /** The lab's own address of the database (follows PgBouncer's entry); set once PgBouncer runs. */
  service: PostgresService | null;
  /** PgBouncer's ini file, which a runbook rewrites to point at a restored server. */
  pgbouncerIni: string;
  /** The platform's manifests as files (`kubectl apply -f <dir>` in name order). */
  manifestsDir: string;
  /** Filled by the lab exporter on every scrape. */
  tableRows: TableRowsRecord;
  close(): Promise<void>;
}

/** The manual's redeploy order (`k8s/namespace.yaml`, `postgres.yaml`, `redis.yaml`, `backend.yaml`, `agents.yaml`, …). */
export const REDEPLOY_ORDER = [
  'namespace',
  'postgres',
  'redis',
  'pgbouncer',
  'backend',
  'agents',
  'selenium',
  'ollama',
] as const;
type Part = (typeof REDEPLOY_ORDER)[number];

function partOf(m: Manifest): Part {
  if (m.kind === 'Namespace') return 'namespace';
  const name = String((m.metadata as { name?: string } | undefined)?.name ?? '');
  if (name.endsWith('-agent')) return 'agents';
  if (name.startsWith('selenium-')) return 'selenium';
  if ((REDEPLOY_ORDER as readonly string[]).includes(name)) return name as Part;
  throw new Error(`no redeploy group for manifest ${m.kind}/${name}`);
}

/**
 * Writes `<dir>/NN-<part>.json` (a `List` per part): what a repository's `k8s/` directory holds, in the
 * order the manual applies it. Returns the directory.
 */
export async function writePlatformManifests(
  dir: string,
  options: PlatformManifestsOptions,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const manifests = platformManifests(options);
  for (const [i, part] of REDEPLOY_ORDER.entries()) {
    const items = manifests.filter((m) => partOf(m) === part);
    const list = { apiVersion: 'v1', kind: 'List', items };
    await writeFile(
      join(dir, `${String(i).padStart(2, '0')}-${part}.json`),
      `${JSON.stringify(list, null, 2)}\n`,
    );
  }
  return dir;
}

/**
 * Stops every PostgreSQL server an earlier lab in `<dir>` left running (its cluster, restored ones: pg_ctl
 * daemons outlive a lab process that was killed) and removes `<dir>`.
 */
async function clearPrevious(dir: string): Promise<void> {
  const runner = { binDir: LAB_PG_BIN, osUser: 'postgres' };
  const restores = join(dir, 'postgres', 'restores');
  const dataDirs = [
    join(dir, 'postgres', 'data'),
    ...(await readdir(restores).catch(() => [] as string[])).map((d) => join(restores, d)),
  ];
  for (const dataDir of dataDirs) await stopServer(runner, dataDir).catch(() => false);
  // A redis-server whose supervisor was killed (SIGKILL leaves it running): its pid file names it.
  const pid = Number(await readFile(join(dir, 'redis', LAB_REDIS_PID_FILE), 'utf8').catch(() => ''));
  if (Number.isInteger(pid) && pid > 0) {
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (command.includes('redis-server')) process.kill(pid, 'SIGKILL');
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Starts the lab's own PostgreSQL cluster and redis-server (in parallel) under `<dir>`. They are made afresh
 * at every start (what an earlier lab left there is stopped and removed): the seed again, a new base backup.
 */
export async function startLabDisasterRecovery(options: {
  dir: string;
  labDir: string;
}): Promise<LabDisasterRecovery> {
  await clearPrevious(options.dir);
  const [postgres, redis] = await Promise.allSettled([
    startLabPostgres({ dir: join(options.dir, 'postgres') }),
    startLabRedis({ dir: join(options.dir, 'redis') }),
  ]);
  if (postgres.status === 'rejected' || redis.status === 'rejected') {
    if (postgres.status === 'fulfilled') await postgres.value.close();
    if (redis.status === 'fulfilled') await redis.value.close();
    throw postgres.status === 'rejected' ? postgres.reason : (redis as PromiseRejectedResult).reason;
  }
  const dr: LabDisasterRecovery = {
    postgres: postgres.value,
    redis: redis.value,
    service: null,
    pgbouncerIni: join(options.labDir, 'pgbouncer', 'pgbouncer.ini'),
    manifestsDir: join(options.labDir, 'k8s'),
    tableRows: { last: null, servedAt: 0 },
    async close() {
      await dr.service?.close();
      await Promise.allSettled([dr.postgres.close(), dr.redis.close()]);
    },
  };
  return dr;
}
