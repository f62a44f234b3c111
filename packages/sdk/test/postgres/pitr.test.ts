import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import type { Plan } from '../../src/core/plan';
import { createRedactor } from '../../src/core/redact';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { sealRedacted } from '../../src/engine/seal';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import {
  basebackupDriver,
  isPitrError,
  type PitrRestoreOptionsInput,
  type PitrRestoreParams,
  parseBackupLabel,
  parsePostgresTime,
  pitrRestore,
  type RestoredServer,
  restoreSettings,
  stopServer,
  takeBaseBackup,
} from '../../src/postgres/pitr';
import { freePort, PG_BIN, startTestCluster, type TestCluster } from '../support/postgres-cluster';

// Point-in-time restores of a real PostgreSQL 15 cluster of this file's own, archiving its WAL. The history:
// a table, a base backup, batch A (500 rows), a restore point, time T, one second, batch B (300 rows), all of
// it archived. Each restore goes into a new data directory on a free port and is reverted at the end.

const run = promisify(execFile);
const BATCH_A = 500;
const BATCH_B = 300;

let cluster: TestCluster;
let db: PostgresDatabase;
let work: string;
let backupDir: string;
const history = {
  beforeBackup: new Date(0),
  targetTime: new Date(0),
  segmentA: '',
  checksumA: '',
  originalTimeline: 0,
};
const dataDirs: string[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ archive: true });
  work = await mkdtemp(join(tmpdir(), 'runbook-pitr-'));
  await chmod(work, 0o755);
  db = connectPostgres({ url: cluster.url, statementTimeout: '30s' });
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, batch text NOT NULL, payload text NOT NULL)');
  history.beforeBackup = await serverNow();
  await db.query('SELECT pg_sleep(1.1)');
  backupDir = join(work, 'backup');
  await takeBaseBackup({ port: cluster.port, backupDir, wal: 'none', label: 'pitr-test' });

  await db.query(`INSERT INTO orders SELECT g, 'A', md5(g::text) FROM generate_series(1, ${BATCH_A}) g`);
  history.segmentA = (await db.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f'))
    .rows[0]?.f as string;
  await db.query("SELECT pg_create_restore_point('after-a')");
  history.checksumA = (
    await db.query<{ sum: string }>(
      // Computed independently of tableFingerprint: md5 over the sorted md5s of the rows.
      `SELECT md5(string_agg(md5(t::text), '' ORDER BY md5(t::text) COLLATE "C")) AS sum FROM (SELECT * FROM orders WHERE batch = 'A') t`,
    )
  ).rows[0]?.sum as string;
  await db.query('SELECT pg_switch_wal()');
  history.targetTime = await serverNow();
  await db.query('SELECT pg_sleep(1.1)');
  await db.query(
    `INSERT INTO orders SELECT g, 'B', md5(g::text) FROM generate_series(${BATCH_A + 1}, ${BATCH_A + BATCH_B}) g`,
  );
  const last = (await db.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]
    ?.f as string;
  history.originalTimeline = Number.parseInt(last.slice(0, 8), 16);
  await waitForArchive(last);
});

afterAll(async () => {
  for (const dir of dataDirs) await stopServer({ binDir: PG_BIN, osUser: 'postgres' }, dir).catch(() => {});
  await db?.close();
  await cluster?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

async function serverNow(): Promise<Date> {
  return (await db.query<{ t: Date }>('SELECT now() AS t')).rows[0]?.t as Date;
}

async function waitForArchive(segment: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await db.query<{ last: string | null }>(
      'SELECT last_archived_wal AS last FROM pg_stat_archiver',
    );
    const archived = rows[0]?.last;
    if (archived && archived.slice(0, 24) >= segment) return;
    if (Date.now() > deadline)
      throw new Error(`WAL ${segment} was not archived within 20s (last ${archived})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function context(lines: string[] = []): StepContext {
  return {
    runId: 'run-pitr',
    runbookId: 'disaster-recovery',
    step: 'restore',
    mode: 'execute',
    attempt: 1,
    actor: 'tester',
    signal: new AbortController().signal,
    log: (message) => lines.push(message),
  };
}

const redactor = createRedactor();
const seal = <P>(
  action: Action<P, unknown>,
  draft: Awaited<ReturnType<Action<P, unknown>['plan']>>,
): Plan<P> => sealRedacted(action, draft, redactor);

async function restoreAction(
  dir: string,
  options: Partial<PitrRestoreOptionsInput> & Pick<PitrRestoreOptionsInput, 'target'>,
  archiveDir = cluster.archiveDir,
) {
  const dataDir = join(work, dir);
  dataDirs.push(dataDir);
  return pitrRestore({
    driver: basebackupDriver({ backupDir, archiveDir, binDir: PG_BIN }),
    dataDir,
    port: await freePort(),
    startTimeout: '30s',
    promoteTimeout: '30s',
    progressInterval: '1s',
    ...options,
  });
}

/** plan → seal (as the engine stores it) → apply → verify. */
async function execute<A>(action: Action<PitrRestoreParams, A>, lines: string[] = []) {
  const ctx = context(lines);
  const plan = seal(action, await action.plan(ctx));
  const data = await action.apply(ctx, plan);
  const applied: Applied<PitrRestoreParams, A> = {
    plan,
    data,
    appliedAt: new Date().toISOString(),
    recovered: false,
  };
  const verification = await action.verify?.(ctx, applied);
  return { plan, applied, verification, ctx };
}

async function batches(port: number): Promise<Record<string, number>> {
  const restored = connectPostgres({ url: `postgres://postgres@127.0.0.1:${port}/postgres` });
  try {
    const { rows } = await restored.query<{ batch: string; n: string }>(
      'SELECT batch, count(*)::text AS n FROM orders GROUP BY batch ORDER BY batch',
    );
    return Object.fromEntries(rows.map((r) => [r.batch, Number(r.n)]));
  } finally {
    await restored.close();
  }
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('pitrRestore against PostgreSQL 15', () => {
  it('restores to a time: exactly batch A, on a timeline above the original, then switches traffic', async () => {
    const switched: RestoredServer[] = [];
    const lines: string[] = [];
    const action = await restoreAction('restore-time', {
      target: { time: history.targetTime },
      verify: {
        tables: [{ name: 'public.orders', expectedCount: BATCH_A, expectedChecksum: history.checksumA }],
        sql: "SELECT count(*) = 0 FROM orders WHERE batch = 'B'",
      },
      switchTraffic: async (_ctx, restored) => {
        switched.push(restored);
      },
    });
    expect(action.risk).toBe('high');
    expect(action.destructive).toBe(true);

    const { plan, applied, verification, ctx } = await execute(action, lines);
    expect(plan.changes.map((c) => c.field)).toEqual(['data directory', 'server', 'traffic']);
    expect(plan.params.backup).toMatchObject({ label: 'pitr-test', timeline: history.originalTimeline });
    expect(
      plan.params.settings.filter(([name]) => /^recovery_target(_time|_lsn|_name|_xid)?$/.test(name)),
    ).toEqual([['recovery_target_time', `'${history.targetTime.toISOString().replace('Z', '+00:00')}'`]]);
    expect(Object.fromEntries(plan.params.settings)).toMatchObject({
      recovery_target_action: "'promote'",
      archive_mode: 'off',
      listen_addresses: "'127.0.0.1'",
      port: String(plan.params.port),
    });

    expect(applied.data?.timeline).toBeGreaterThan(history.originalTimeline);
    expect(verification?.status).toBe('ok');
    expect(verification?.summary).toContain('traffic switched');
    expect(switched).toHaveLength(1);
    expect(switched[0]).toMatchObject({ port: plan.params.port, host: '127.0.0.1' });
    expect(await batches(plan.params.port)).toEqual({ A: BATCH_A });
    expect(lines.some((l) => /verifying backup/.test(l))).toBe(true);
    expect(lines.some((l) => /promoted to timeline \d+/.test(l))).toBe(true);

    // The data directory is the server's, mode 0700; the original archive got nothing from the restore.
    const dir = await stat(plan.params.dataDir);
    expect(dir.mode & 0o777).toBe(0o700);
    const { stdout: owner } = await run('stat', ['-c', '%U', plan.params.dataDir]);
    expect(owner.trim()).toBe('postgres');
    expect((await readdir(cluster.archiveDir)).some((f) => f.endsWith('.history'))).toBe(false);

    // A second plan of the same restore finds it done.
    const again = await action.plan(ctx);
    expect(again.changes).toEqual([]);

    // Traffic now goes to the restored server: revert refuses to stop it and delete its data.
    await expect(action.revert?.(ctx, applied)).rejects.toMatchObject({ code: 'PITR_TRAFFIC_SWITCHED' });
    expect(await exists(plan.params.dataDir)).toBe(true);
    expect(await batches(plan.params.port)).toEqual({ A: BATCH_A });
    await stopServer(plan.params, plan.params.dataDir);
    await rm(plan.params.dataDir, { recursive: true, force: true });
  });

  it('restores to a named restore point; a failed traffic switch is handed to a person, not reverted', async () => {
    const action = await restoreAction('restore-name', {
      target: { name: 'after-a' },
      verify: { tables: [{ name: 'orders', expectedCount: BATCH_A }] },
      switchTraffic: async () => {
        throw new Error('load balancer unreachable');
      },
    });
    const { plan, applied, verification, ctx } = await execute(action);
    expect(plan.params.settings).toContainEqual(['recovery_target_name', "'after-a'"]);
    // 'unknown': the engine neither reverts nor reports success; the verified server stays up.
    expect(verification?.status).toBe('unknown');
    expect(verification?.summary).toContain('switching traffic failed: load balancer unreachable');
    expect(await batches(plan.params.port)).toEqual({ A: BATCH_A });
    await action.revert?.(ctx, applied);
    expect(await exists(plan.params.dataDir)).toBe(false);
  });

  it('fails verification (so the engine reverts) when a table does not have the expected rows', async () => {
    const action = await restoreAction('restore-immediate', {
      target: 'immediate',
      verify: { tables: [{ name: 'orders', expectedCount: BATCH_A }] },
      switchTraffic: async () => {
        throw new Error('must not be called when verification fails');
      },
    });
    const { applied, verification, ctx } = await execute(action);
    // 'immediate' stops at the end of the backup, before batch A.
    expect(verification?.status).toBe('fail');
    expect(verification?.summary).toContain(`orders has 0 rows, expected ${BATCH_A}`);
    await action.revert?.(ctx, applied);
    expect(await exists(applied.plan.params.dataDir)).toBe(false);
  });

  it('refuses at plan a time or LSN target before the end of the backup', async () => {
    const byTime = await restoreAction('refused-time', { target: { time: history.beforeBackup } });
    const error = await byTime.plan(context()).catch((e: unknown) => e);
    expect(isPitrError(error, 'PITR_TARGET_BEFORE_BACKUP_END')).toBe(true);
    expect((error as Error).message).toMatch(
      /is before the end of backup "pitr-test" \(.+\): recovery cannot stop before the backup is consistent/,
    );

    const byLsn = await restoreAction('refused-lsn', { target: { lsn: '0/1' } });
    await expect(byLsn.plan(context())).rejects.toThrow(
      /target WAL location 0\/1 is before the end of backup/,
    );
    expect(await exists(join(work, 'refused-time'))).toBe(false);
  });

  it('fails with the server FATAL line when WAL before the target is missing, and removes what it made', async () => {
    const gap = join(work, 'archive-gap');
    await run('cp', ['-a', cluster.archiveDir, gap]);
    await rm(join(gap, history.segmentA));
    const action = await restoreAction('restore-gap', { target: { time: history.targetTime } }, gap);
    const ctx = context();
    const plan = seal(action, await action.plan(ctx));
    const error = await action.apply(ctx, plan).catch((e: unknown) => e);
    expect(isPitrError(error, 'PITR_WAL_MISSING')).toBe(true);
    expect((error as Error).message).toContain(
      'FATAL: recovery ended before configured recovery target was reached',
    );
    expect((error as Error).message).toMatch(
      /The last WAL segment restored from the archive was [0-9A-F]{24}; the next one is missing/,
    );
    expect((error as Error).message).toContain('was removed');
    expect(await exists(plan.params.dataDir)).toBe(false);
  });

  it('stops the server and removes the data directory when cancelled during recovery', async () => {
    const action = await restoreAction('restore-cancelled', { target: { name: 'after-a' } });
    const controller = new AbortController();
    const ctx: StepContext = {
      ...context(),
      signal: controller.signal,
      log: (message) => {
        if (message.startsWith('consistent after')) controller.abort(new Error('operator cancelled'));
      },
    };
    const plan = seal(action, await action.plan(ctx));
    await expect(action.apply(ctx, plan)).rejects.toThrow('operator cancelled');
    expect(await exists(plan.params.dataDir)).toBe(false);
  });

  it('fails at once, and cleans up, when it cannot log in to the restored server', async () => {
    const action = await restoreAction('restore-login', { target: 'immediate', user: 'nobody' });
    const ctx = context();
    const plan = seal(action, await action.plan(ctx));
    const started = Date.now();
    const error = await action.apply(ctx, plan).catch((e: unknown) => e);
    expect(isPitrError(error, 'PITR_PERMISSION')).toBe(true);
    expect((error as Error).message).toMatch(/cannot log in to it: .*role "nobody" does not exist/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await exists(plan.params.dataDir)).toBe(false);
  });

  it('refuses at plan a data directory whose parent the postgres user cannot enter', async () => {
    const locked = await mkdtemp(join(work, 'locked-')); // root's, mode 0700
    const action = pitrRestore({
      driver: basebackupDriver({ backupDir, archiveDir: cluster.archiveDir, binDir: PG_BIN }),
      target: { time: history.targetTime },
      dataDir: join(locked, 'data'),
      port: await freePort(),
    });
    const error = await action.plan(context()).catch((e: unknown) => e);
    expect(isPitrError(error, 'PITR_PERMISSION')).toBe(true);
    expect((error as Error).message).toContain(`the OS user postgres cannot enter ${locked}`);
  });

  it('refuses at plan an archive the postgres user cannot read', async () => {
    const closed = join(work, 'archive-closed');
    await run('cp', ['-a', cluster.archiveDir, closed]);
    await chown(closed, 0, 0);
    await chmod(closed, 0o700);
    const action = await restoreAction('restore-closed', { target: { time: history.targetTime } }, closed);
    const error = await action.plan(context()).catch((e: unknown) => e);
    expect(isPitrError(error, 'PITR_PERMISSION')).toBe(true);
    expect((error as Error).message).toContain(`the OS user postgres cannot read the WAL archive ${closed}`);
    expect((error as Error).message).toContain('Permission denied');
  });

  it('refuses a data directory that is not empty', async () => {
    const action = await restoreAction('backup', { target: 'immediate' });
    // 'backup' is the backup itself: certainly not empty.
    await expect(action.plan(context())).rejects.toThrow(/is not empty .*choose another one/);
  });
});

describe('pitrRestore options and parsing', () => {
  const driver = () => basebackupDriver({ backupDir: '/backups/base', archiveDir: '/archive' });

  it('takes exactly one recovery target', () => {
    const bad = [
      {},
      { time: new Date(), lsn: '0/1' },
      { name: 'a', lsn: '0/1' },
      { time: '2024-01-01 12:00' },
    ];
    for (const target of bad) {
      const error = (() => {
        try {
          pitrRestore({ driver: driver(), target: target as never, dataDir: '/srv/restore', port: 6543 });
        } catch (e) {
          return e;
        }
      })();
      expect(isInputValidationError(error)).toBe(true);
    }
    expect(() =>
      pitrRestore({
        driver: driver(),
        target: { time: '2024-01-01 12:00:00+02' },
        dataDir: '/srv/r',
        port: 6543,
      }),
    ).not.toThrow();
  });

  it('refuses paths PostgreSQL would have to quote, and relative ones', () => {
    expect(() => basebackupDriver({ backupDir: "/b/it's", archiveDir: '/a' })).toThrow(/quotes/);
    expect(() => basebackupDriver({ backupDir: 'b', archiveDir: '/a' })).toThrow(/absolute/);
    expect(() => basebackupDriver({ backupDir: '/b', archiveDir: '/a/%f' })).toThrow(/"%"/);
  });

  it('writes one recovery target, quoted for postgresql.conf', () => {
    const settings = restoreSettings({
      target: { kind: 'name', value: "it's \\ here" },
      restoreCommand: driver().restoreCommand(),
      timeline: 'latest',
      inclusive: true,
      port: 6543,
      socketDir: '/srv/restore',
      extra: {},
    });
    expect(settings.slice(0, 3)).toEqual([
      ['restore_command', "'test -f ''/archive/%f'' && cp ''/archive/%f'' ''%p'''"],
      ['recovery_target_name', "'it''s \\\\ here'"],
      ['recovery_target_action', "'promote'"],
    ]);
  });

  it('reads backup labels and PostgreSQL times', () => {
    const label = parseBackupLabel(
      [
        'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)',
        'STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)',
        'START TIME: 2026-11-28 02:59:42 UTC',
        'LABEL: nightly',
        'START TIMELINE: 1',
        'STOP TIME: 2026-11-28 02:59:43 UTC',
      ].join('\n'),
      'x.backup',
    );
    expect(label).toMatchObject({
      startLsn: '0/2000028',
      stopLsn: '0/2000100',
      startWalFile: '000000010000000000000002',
      label: 'nightly',
      timeline: 1,
      stopTime: '2026-11-28T02:59:43.000Z',
    });
    expect(parsePostgresTime('2024-05-01 14:00:00 +02')?.toISOString()).toBe('2024-05-01T12:00:00.000Z');
    expect(parsePostgresTime('2024-05-01 14:00:00 CEST')).toBeNull();
  });
});
