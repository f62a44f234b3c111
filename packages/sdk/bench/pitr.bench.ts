/**
 * Point-in-time restore: our orchestration (`pitrRestore` plan + apply + verify) against the same restore
 * done by hand with the PostgreSQL tools, in the same run, on the same backup and archive:
 *
 *   pg_verifybackup → mkdir + chown + chmod 0700 → cp -a → the same settings appended to postgresql.auto.conf
 *   → recovery.signal → pg_ctl start → poll pg_is_in_recovery() every 250 ms → read the timeline
 *
 * The database is pgbench's (`pgbench -i -s <scale>`, about 15 MB per scale unit), then a base backup, then
 * writes (pgbench), the target time, more writes, all archived. Before the timed runs the backup is read once
 * (pg_verifybackup), so both sides start with it in the page cache. Runs alternate (manual first).
 *
 *   npx tsx bench/pitr.bench.ts        BENCH_PITR_MB (default 1024), BENCH_PITR_RUNS (default 3),
 *                                      BENCH_PITR_WRITES (seconds of pgbench before and after the target, default 10)
 */
import { appendFile, chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatMillis } from '../src/core/duration';
import type { StepContext } from '../src/core/step';
import { connectPostgres } from '../src/postgres/database';
import {
  basebackupDriver,
  pitrRestore,
  postmasterStatus,
  restoreSettings,
  stopServer,
  takeBaseBackup,
} from '../src/postgres/pitr';
import { asPostgres, freePort, PG_BIN, startTestCluster } from '../test/support/postgres-cluster';

const SIZE_MB = Number(process.env.BENCH_PITR_MB ?? 1024);
const RUNS = Number(process.env.BENCH_PITR_RUNS ?? 3);
const WRITES_S = Number(process.env.BENCH_PITR_WRITES ?? 10);
const SCALE = Math.max(1, Math.round(SIZE_MB / 15));
const OS_USER = 'postgres';

const t0 = Date.now();
const say = (message: string) =>
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${message}`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

say(
  `PITR benchmark: pgbench scale ${SCALE} (~${SIZE_MB} MB), ${RUNS} run(s) each, ${WRITES_S}s of writes either side of the target`,
);
const cluster = await startTestCluster({ archive: true, settings: { max_wal_size: "'4GB'" } });
const work = await mkdtemp(join(tmpdir(), 'runbook-pitr-bench-'));
await chmod(work, 0o755);
const db = connectPostgres({ url: cluster.url, statementTimeout: '30m' });
const dataDirs: string[] = [];
const runner = { binDir: PG_BIN, osUser: OS_USER };
const ids = {
  uid: Number((await asPostgres('id', ['-u'])).stdout.trim()),
  gid: Number((await asPostgres('id', ['-g'])).stdout.trim()),
};

try {
  const pgbench = (args: string[]) =>
    asPostgres(join(PG_BIN, 'pgbench'), [
      '-h',
      '127.0.0.1',
      '-p',
      String(cluster.port),
      '-U',
      'postgres',
      ...args,
      'postgres',
    ]);

  say(`generating data: pgbench -i -s ${SCALE}`);
  await pgbench(['-i', '-s', String(SCALE), '-q']);
  const size = (
    await db.query<{ s: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS s')
  ).rows[0]?.s;
  say(`database is ${size}`);

  const backupDir = join(work, 'backup');
  say('base backup (pg_basebackup -X none -c fast)');
  const backup = await takeBaseBackup({ port: cluster.port, backupDir, wal: 'none', label: 'bench' });
  say(`base backup done in ${formatMillis(backup.durationMs)}`);

  say(`writes before the target: pgbench -T ${WRITES_S}`);
  await pgbench(['-T', String(WRITES_S), '-c', '2', '-n']);
  const target = (await db.query<{ t: Date }>('SELECT now() AS t')).rows[0]?.t as Date;
  await db.query('SELECT pg_sleep(1)');
  say(`target time ${target.toISOString()}; writes after it: pgbench -T ${WRITES_S}`);
  await pgbench(['-T', String(WRITES_S), '-c', '2', '-n']);
  const last = (await db.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]
    ?.f as string;
  for (;;) {
    const archived = (
      await db.query<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver')
    ).rows[0]?.w;
    if (archived && archived.slice(0, 24) >= last) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const { stdout: archiveSize } = await asPostgres('du', ['-sh', cluster.archiveDir]);
  say(`archived through ${last} (${archiveSize.split('\t')[0]} of WAL)`);

  const driver = basebackupDriver({ backupDir, archiveDir: cluster.archiveDir, binDir: PG_BIN });
  say('warming the page cache: pg_verifybackup once');
  await asPostgres(join(PG_BIN, 'pg_verifybackup'), ['-w', cluster.archiveDir, backupDir]);

  const ctx: StepContext = {
    runId: 'bench',
    runbookId: 'bench',
    step: 'restore',
    mode: 'execute',
    attempt: 1,
    actor: 'bench',
    signal: new AbortController().signal,
    log: (message) => say(`  ours: ${message}`),
  };

  const ours = async (n: number): Promise<number> => {
    const dataDir = join(work, `ours-${n}`);
    dataDirs.push(dataDir);
    const action = pitrRestore({
      driver,
      target: { time: target },
      dataDir,
      port: await freePort(),
      startTimeout: '30m',
      promoteTimeout: '2h',
    });
    const started = performance.now();
    const draft = await action.plan(ctx);
    const planned = performance.now();
    const plan = {
      ...draft,
      action: action.kind,
      target: action.target,
      risk: action.risk,
      destructive: true,
      hash: '',
    };
    const data = await action.apply(ctx, plan);
    const appliedAt = performance.now();
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    const verification = await action.verify?.(ctx, applied);
    const ms = performance.now() - started;
    say(
      `  ours: plan ${formatMillis(Math.round(planned - started))}, apply ${formatMillis(Math.round(appliedAt - planned))}, verify ${formatMillis(Math.round(started + ms - appliedAt))}`,
    );
    if (verification?.status !== 'ok') throw new Error(`verification: ${verification?.summary}`);
    await action.revert?.(ctx, applied);
    return ms;
  };

  const manual = async (n: number): Promise<number> => {
    const dataDir = join(work, `manual-${n}`);
    dataDirs.push(dataDir);
    const port = await freePort();
    const settings = restoreSettings({
      target: { kind: 'time', value: target.toISOString().replace('Z', '+00:00') },
      restoreCommand: driver.restoreCommand(),
      timeline: 'latest',
      inclusive: true,
      port,
      socketDir: dataDir,
      extra: {},
    });
    const started = performance.now();
    await asPostgres(join(PG_BIN, 'pg_verifybackup'), ['-w', cluster.archiveDir, backupDir]);
    const verified = performance.now();
    await mkdir(dataDir, { mode: 0o700 });
    await chown(dataDir, ids.uid, ids.gid);
    await asPostgres('cp', ['-a', '-T', backupDir, dataDir]);
    const copied = performance.now();
    await appendFile(
      join(dataDir, 'postgresql.auto.conf'),
      `${settings.map(([k, v]) => `${k} = ${v}`).join('\n')}\n`,
    );
    await writeFile(join(dataDir, 'recovery.signal'), '');
    await chown(join(dataDir, 'recovery.signal'), ids.uid, ids.gid);
    await asPostgres(join(PG_BIN, 'pg_ctl'), [
      'start',
      '-W',
      '-D',
      dataDir,
      '-l',
      join(dataDir, 'manual.log'),
    ]);
    const restored = connectPostgres({
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      connectTimeout: '3s',
    });
    try {
      for (;;) {
        const row = await restored
          .query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')
          .then((r) => r.rows[0])
          .catch(() => undefined);
        if (row && !row.r) break;
        const status = await postmasterStatus(dataDir);
        if (status && !status.alive) throw new Error('the manually restored server died');
        await new Promise((r) => setTimeout(r, 250));
      }
      await restored.query('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS timeline');
    } finally {
      await restored.close();
    }
    const ms = performance.now() - started;
    say(
      `  manual: pg_verifybackup ${formatMillis(Math.round(verified - started))}, copy ${formatMillis(Math.round(copied - verified))}, start to promoted ${formatMillis(Math.round(started + ms - copied))}; total ${formatMillis(Math.round(ms))}`,
    );
    await stopServer(runner, dataDir);
    await rm(dataDir, { recursive: true, force: true });
    return ms;
  };

  const oursMs: number[] = [];
  const manualMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    say(`run ${i + 1}/${RUNS}: by hand`);
    manualMs.push(await manual(i));
    say(`run ${i + 1}/${RUNS}: pitrRestore`);
    oursMs.push(await ours(i));
  }
  const o = median(oursMs);
  const m = median(manualMs);
  console.log('');
  console.log(
    `database ${size}, backup ${formatMillis(backup.durationMs)}, WAL archive ${archiveSize.split('\t')[0]}`,
  );
  console.log(
    `by hand      (median of ${RUNS}): ${formatMillis(Math.round(m))}   [${manualMs.map((x) => formatMillis(Math.round(x))).join(', ')}]`,
  );
  console.log(
    `pitrRestore  (median of ${RUNS}): ${formatMillis(Math.round(o))}   [${oursMs.map((x) => formatMillis(Math.round(x))).join(', ')}]`,
  );
  console.log(`ratio pitrRestore / by hand: ${(o / m).toFixed(3)}× (target ≤ 1.1×)`);
} finally {
  for (const dir of dataDirs) {
    if ((await postmasterStatus(dir))?.alive) await stopServer(runner, dir).catch(() => {});
  }
  await db.close();
  await cluster.destroy();
  await rm(work, { recursive: true, force: true });
}
