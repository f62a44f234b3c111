import { constants } from 'node:fs';
import { access, chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { type Evidence, finding } from '../../core/finding';
import type { Json } from '../../core/json';
import { canonicalJson, sha256 } from '../../core/json';
import type { Change } from '../../core/plan';
import { resourceRef } from '../../core/resource';
import { type Action, defineAction, type StepContext } from '../../core/step';
import { connectPostgres, isPostgresError } from '../database';
import { type BackupInfo, lsnBefore } from './backup';
import { type DriverContext, formatBytes, type RestoreDriver } from './driver';
import { isPitrError, PitrError } from './errors';
import { tableFingerprint, tableRowCount } from './fingerprint';
import { canEnter, osUserIds, runningAsRoot, runProgram, SafePath } from './programs';
import { awaitPromotion, postmasterStatus, ServerLog, startServer, stopServer } from './server';
import {
  autoConf,
  describeTarget,
  MANAGED_SETTINGS,
  RecoveryTarget,
  type ResolvedTarget,
  resolveTarget,
  restoreSettings,
  SettingName,
  TargetTimeline,
  targetTimeMs,
} from './settings';

/** A table the restore checks on the restored server: that it is readable, and its row count or checksum. */
export const TableExpectation = z.object({
  /** `table` or `schema.table`. */
  name: z
    .string()
    .min(1)
    .max(127)
    .regex(/^[^\s".]+(\.[^\s".]+)?$/, 'expected "table" or "schema.table"'),
  /** The number of rows the table must have. */
  expectedCount: z.number().int().nonnegative().optional(),
  /** The table's content checksum as {@link tableFingerprint} computes it (on the source, at the target time). */
  expectedChecksum: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'expected an MD5 hex checksum from tableFingerprint()')
    .optional(),
});
export type TableExpectation = z.infer<typeof TableExpectation>;

/** What `verify` checks on the restored server, besides promotion and the new timeline. */
export const RestoreVerification = z.object({
  /** Tables that must be readable, with their expected row counts or checksums. @default [] */
  tables: z.array(TableExpectation).default([]),
  /** A query whose first row's first column must be `true` (e.g. `SELECT max(created_at) < '…' FROM orders`). */
  sql: z.string().min(1).optional(),
});
export type RestoreVerificationInput = z.input<typeof RestoreVerification>;

/** The restored server, as `switchTraffic` gets it. */
export interface RestoredServer {
  host: '127.0.0.1';
  port: number;
  dataDir: string;
  database: string;
  user: string;
  /** `postgres://user@127.0.0.1:port/database` (without the password). */
  url: string;
  /** The timeline it runs on after promotion. */
  timeline: number;
  /** The backup's timeline (lower). */
  backupTimeline: number;
  target: ResolvedTarget;
  logFile: string;
}

/** Called by `verify` once the restored server passed every check, to point clients at it. */
export type SwitchTraffic = (ctx: StepContext, restored: RestoredServer) => Promise<void>;

const isDriver = (v: unknown): v is RestoreDriver => {
  const d = v as Partial<RestoreDriver> | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.name === 'string' &&
    typeof d.describeBackup === 'function' &&
    typeof d.checkAccess === 'function' &&
    typeof d.verifyBackup === 'function' &&
    typeof d.prepareDataDirectory === 'function' &&
    typeof d.restoreCommand === 'function'
  );
};

/** Options of {@link pitrRestore}. */
export const PitrRestoreOptions = z.object({
  /** Where the backup and the WAL come from, e.g. {@link basebackupDriver}. */
  driver: z.custom<RestoreDriver>(isDriver, {
    message: 'expected a RestoreDriver such as basebackupDriver({ backupDir, archiveDir })',
  }),
  /** Where recovery stops: `{ time }`, `{ lsn }`, `{ name }` (exactly one) or `'immediate'`. */
  target: RecoveryTarget,
  /** The new data directory: must not exist (its parent must) or be empty. */
  dataDir: SafePath,
  /** The port the restored server listens on (127.0.0.1 only); must be free. */
  port: z.number().int().min(1024).max(65535),
  /** Name in resource references: the lock is held on `postgres:<name>/restore`. @default "postgres" */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"')
    .default('postgres'),
  /** Role for checking the restored server (it has the original's roles and pg_hba.conf). @default "postgres" */
  user: z.string().min(1).default('postgres'),
  /** Its password, if pg_hba.conf asks for one; never stored in the plan. */
  password: z.string().optional(),
  /** Database the checks connect to. @default "postgres" */
  database: z.string().min(1).default('postgres'),
  /** `recovery_target_timeline`. @default "latest" */
  timeline: TargetTimeline.default('latest'),
  /** `recovery_target_inclusive` for time and LSN targets: stop just after the target rather than before. @default true */
  inclusive: z.boolean().default(true),
  /** Directory of the server's Unix socket. @default the data directory */
  socketDir: SafePath.optional(),
  /** The server's log (`pg_ctl -l`); one outside the data directory is kept by revert. @default "<dataDir>/pitr_restore.log" */
  logFile: SafePath.optional(),
  /** Further settings of the restored server (`shared_buffers: '1GB'`); not the ones the restore manages. @default {} */
  settings: z
    .record(SettingName, z.union([z.string(), z.number(), z.boolean()]))
    .refine(
      (s) =>
        Object.keys(s).every(
          (k) => !(MANAGED_SETTINGS as readonly string[]).includes(k) && !k.startsWith('recovery_target'),
        ),
      `must not set what the restore manages (${MANAGED_SETTINGS.join(', ')})`,
    )
    .default({}),
  /** What `verify` checks. @default { tables: [] } */
  verify: RestoreVerification.default({ tables: [] }),
  /** Points clients at the restored server; called by `verify` only after every check passed. */
  switchTraffic: z
    .custom<SwitchTraffic>((v) => typeof v === 'function', { message: 'expected a function' })
    .optional(),
  /** Bound on `pg_verifybackup` and on copying the backup, each. @default "2h" */
  prepareTimeout: Duration.default('2h'),
  /** Bound from `pg_ctl start` until the server is consistent (the backup's own WAL replayed). @default "10m" */
  startTimeout: Duration.default('10m'),
  /** Bound from consistency until promotion (archived WAL replayed up to the target). @default "1h" */
  promoteTimeout: Duration.default('1h'),
  /** Bound on each verification query (`statement_timeout`). @default "10m" */
  verifyTimeout: Duration.default('10m'),
  /** How often recovery is looked at. @default "250ms" */
  pollInterval: Duration.default('250ms'),
  /** How often progress is logged. @default "5s" */
  progressInterval: Duration.default('5s'),
  /** Keep a failed restore's data directory (stopped) for inspection instead of removing it. @default false */
  keepOnFailure: z.boolean().default(false),
});
export type PitrRestoreOptions = z.output<typeof PitrRestoreOptions>;
export type PitrRestoreOptionsInput = z.input<typeof PitrRestoreOptions>;

/** What a restore plan fixes, and apply, verify and revert use. */
export type PitrRestoreParams = {
  /** Identifies this restore (backup, target, data directory, port); written into the data directory's marker. */
  restoreId: string;
  driver: string;
  source: string;
  backup: BackupInfo;
  target: ResolvedTarget;
  dataDir: string;
  /** The data directory as plan found it; apply refuses to go on when it is no longer so. */
  found: DataDirKind;
  port: number;
  socketDir: string;
  logFile: string;
  osUser: string;
  binDir: string;
  /** Exactly what is appended to `postgresql.auto.conf`. */
  settings: [string, string][];
  user: string;
  database: string;
  verify: { tables: TableExpectation[]; sql: string | null };
  switchTraffic: boolean;
  timeouts: {
    prepareMs: number;
    startMs: number;
    promoteMs: number;
    verifyMs: number;
    pollMs: number;
    progressMs: number;
  };
  keepOnFailure: boolean;
};

/** What apply returns. */
export type PitrRestoreApplied = {
  timeline: number;
  durationMs: number;
  segmentsRestored: number;
  lastRestored: string | null;
};

/** The file in the data directory that says which restore made it, so revert only removes its own. */
export const RESTORE_MARKER = 'pitr_restore.json';

interface RestoreMarker {
  restoreId: string;
  /** Apply created the directory (revert removes it) rather than filling an empty one (revert empties it). */
  createdDataDir: boolean;
  state: 'preparing' | 'recovering' | 'promoted' | 'failed';
  timeline: number | null;
  trafficSwitched: boolean;
  updatedAt: string;
}

/**
 * What a restore's data directory held: nothing (`absent`), an `empty` directory, or this restore's files,
 * with the server promoted and running (`done`) or not (`interrupted`). Plan refuses anything else.
 */
export type DataDirKind = 'absent' | 'empty' | 'interrupted' | 'done';

type DataDirState =
  | { kind: 'absent' }
  | { kind: 'empty' }
  | { kind: 'interrupted'; marker: RestoreMarker }
  | { kind: 'done'; marker: RestoreMarker };

const KIND = 'postgres.pitr-restore';

/**
 * Point-in-time restore of a PostgreSQL cluster from a base backup and its WAL archive into a new data
 * directory, started as a separate server on 127.0.0.1 (the original is not touched).
 *
 * - **plan** (reads only) describes the backup (label, start/end LSN and time, timeline), refuses a time or
 *   LSN target before the end of the backup, a backup or archive the server's OS user cannot read, a data
 *   directory that is not new or empty or whose parent that user cannot enter, a busy port, tablespaces;
 *   it lists the data directory and the server it will create, the exact settings, and the traffic switch.
 * - **apply** runs `pg_verifybackup`, creates the data directory (owner the OS user, mode 0700), has the driver
 *   copy the backup into it, writes `recovery.signal` and the settings into `postgresql.auto.conf` (one
 *   `recovery_target*`, `recovery_target_action = 'promote'`, the archive's `restore_command`, its own port,
 *   `listen_addresses = '127.0.0.1'`, `archive_mode = off` so the original archive stays clean), starts it
 *   with `pg_ctl` and waits until it has promoted, logging progress. When anything fails it stops the server
 *   and removes what it created (unless `keepOnFailure`), and the error says why: the server's FATAL line
 *   (WAL missing before the target, …) or the tool's output.
 * - **verify** checks that the server left recovery on a timeline above the backup's, that the named tables
 *   have their expected row counts or checksums and that `verify.sql` holds; then, and only then, calls
 *   `switchTraffic`. A failed check reverts the restore; a failed traffic switch is handed to a person
 *   (the restored server is left running, verified).
 * - **revert** stops the restored server and removes the data directory (or empties the one it was given),
 *   after checking its marker file says this restore made it.
 *
 * Risk `high`, destructive: it needs approval under the default policy. Runs the PostgreSQL programs as the
 * driver's OS user (through `runuser` when the process is root).
 */
export function pitrRestore(options: PitrRestoreOptionsInput): Action<PitrRestoreParams, PitrRestoreApplied> {
  const parsed = PitrRestoreOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      `options of ${KIND}`,
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const o = parsed.data;
  const driver = o.driver;
  const target = resourceRef('postgres', o.name, 'restore');
  const resolved = resolveTarget(o.target);
  const socketDir = o.socketDir ?? o.dataDir;
  const logFile = o.logFile ?? join(o.dataDir, 'pitr_restore.log');
  const urlOf = (p: { user: string; database: string; port: number }, withPassword: boolean) =>
    `postgres://${encodeURIComponent(p.user)}${withPassword && o.password !== undefined ? `:${encodeURIComponent(o.password)}` : ''}@127.0.0.1:${p.port}/${encodeURIComponent(p.database)}`;

  return defineAction<PitrRestoreParams, PitrRestoreApplied>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: true,
    description: `Point-in-time restore to ${describeTarget(resolved)} into ${o.dataDir} on 127.0.0.1:${o.port} (${driver.name})`,

    async plan(ctx) {
      const dctx = driverContext(ctx);
      const backup = await driver.describeBackup(dctx);
      assertReachable(backup, resolved);
      if (backup.tablespaces > 0) {
        throw new PitrError(
          'PITR_UNSUPPORTED',
          `The backup has ${backup.tablespaces} tablespace(s) in pg_tblspc: restoring them would write into the original's tablespace directories. Restore such a backup with tablespace mapping by hand (pg_basebackup -T), or move the tablespaces into the main data directory first.`,
        );
      }
      const socketPath = join(socketDir, `.s.PGSQL.${o.port}`);
      if (Buffer.byteLength(socketPath) > 107) {
        throw new PitrError(
          'PITR_UNSUPPORTED',
          `The server's socket path ${socketPath} is longer than the 107 bytes Unix sockets allow. Set socketDir to a shorter directory (such as /tmp).`,
        );
      }
      const restoreId = sha256(
        canonicalJson({
          source: driver.source,
          startLsn: backup.startLsn,
          label: backup.label,
          target: resolved,
          dataDir: o.dataDir,
          port: o.port,
        }),
      ).slice(0, 16);
      const state = await dataDirState(o.dataDir, restoreId);
      const [access, dirs] = await Promise.all([
        state.kind === 'done' ? [] : driver.checkAccess(dctx),
        dataDirProblems(o.dataDir, driver.osUser, state, ctx.signal),
      ]);
      const problems = [...access, ...dirs];
      if (problems.length > 0) {
        throw new PitrError(
          'PITR_PERMISSION',
          `The restore cannot work with these permissions: ${problems.join('; ')}. Nothing was changed.`,
          { details: { problems } },
        );
      }
      if (state.kind !== 'done') await assertPortFree(o.port, o.dataDir);

      const settings = restoreSettings({
        target: resolved,
        restoreCommand: driver.restoreCommand(),
        timeline: o.timeline,
        inclusive: o.inclusive,
        port: o.port,
        socketDir,
        extra: o.settings,
      });
      const dataDirAfter = {
        path: o.dataDir,
        contents: `backup "${backup.label}" recovered to ${describeTarget(resolved)}`,
        owner: driver.osUser,
        mode: '0700',
      };
      const serverAfter = {
        listen: `127.0.0.1:${o.port}`,
        state: 'promoted',
        timeline: `above ${backup.timeline}`,
      };
      const changes: Change[] =
        state.kind === 'done'
          ? []
          : [
              {
                target,
                field: 'data directory',
                before:
                  state.kind === 'absent'
                    ? null
                    : state.kind === 'empty'
                      ? { path: o.dataDir, contents: 'empty' }
                      : {
                          path: o.dataDir,
                          contents: `interrupted restore ${restoreId} (${state.marker.state}), replaced`,
                        },
                after: dataDirAfter,
              },
              { target, field: 'server', before: null, after: serverAfter },
              ...(o.switchTraffic
                ? [
                    {
                      target,
                      field: 'traffic',
                      before: null,
                      after: `switched to 127.0.0.1:${o.port} once verified`,
                    },
                  ]
                : []),
            ];
      const summary =
        state.kind === 'done'
          ? `Backup "${backup.label}" is already restored to ${describeTarget(resolved)} in ${o.dataDir}, running on 127.0.0.1:${o.port}`
          : `Restore backup "${backup.label}" (${formatBytes(backup.sizeBytes)}, ended ${backup.endTime}, timeline ${backup.timeline}) to ${describeTarget(resolved)} into ${o.dataDir} and start it on 127.0.0.1:${o.port}${o.switchTraffic ? '; once verified, switch traffic to it' : ''}`;
      return {
        summary,
        changes,
        params: {
          restoreId,
          driver: driver.name,
          source: driver.source,
          backup,
          target: resolved,
          dataDir: o.dataDir,
          found: state.kind,
          port: o.port,
          socketDir,
          logFile,
          osUser: driver.osUser,
          binDir: driver.binDir,
          settings,
          user: o.user,
          database: o.database,
          verify: { tables: o.verify.tables, sql: o.verify.sql ?? null },
          switchTraffic: o.switchTraffic !== undefined,
          timeouts: {
            prepareMs: toMillis(o.prepareTimeout),
            startMs: toMillis(o.startTimeout),
            promoteMs: toMillis(o.promoteTimeout),
            verifyMs: toMillis(o.verifyTimeout),
            pollMs: toMillis(o.pollInterval),
            progressMs: toMillis(o.progressInterval),
          },
          keepOnFailure: o.keepOnFailure,
        },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const started = Date.now();
      const state = await dataDirState(p.dataDir, p.restoreId);
      if (state.kind === 'done' && state.marker.timeline !== null) {
        ctx.log(`restore ${p.restoreId} is already complete in ${p.dataDir}; nothing to apply`);
        return { timeline: state.marker.timeline, durationMs: 0, segmentsRestored: 0, lastRestored: null };
      }
      if (state.kind !== p.found && !(p.found === 'interrupted' && state.kind === 'done')) {
        throw new PitrError(
          'PITR_DATA_DIR_NOT_EMPTY',
          `${p.dataDir} changed since the plan (it was ${p.found}, it is ${state.kind}). Nothing was changed; plan again.`,
        );
      }
      const dctx: DriverContext = { ...driverContext(ctx), timeoutMs: p.timeouts.prepareMs };
      const ids = runningAsRoot() ? await osUserIds(p.osUser) : null;

      // Verify before creating anything: a damaged backup leaves no trace.
      await driver.verifyBackup(dctx);

      let createdDataDir: boolean;
      if (state.kind === 'interrupted' || state.kind === 'done') {
        ctx.log(`clearing interrupted restore ${p.restoreId} in ${p.dataDir}`);
        await stopServer(p, p.dataDir);
        createdDataDir = state.marker.createdDataDir;
        await emptyDirectory(p.dataDir);
      } else {
        createdDataDir = state.kind === 'absent';
        if (createdDataDir) await mkdir(p.dataDir, { mode: 0o700 });
      }
      if (ids) await chown(p.dataDir, ids.uid, ids.gid);
      await chmod(p.dataDir, 0o700);
      const marker: RestoreMarker = {
        restoreId: p.restoreId,
        createdDataDir,
        state: 'preparing',
        timeline: null,
        trafficSwitched: false,
        updatedAt: new Date().toISOString(),
      };
      await writeMarker(p.dataDir, marker, ids);

      let startedServer = false;
      try {
        await driver.prepareDataDirectory(p.dataDir, dctx);
        // Whatever the driver did: every file the server's, the directory 0700 (PostgreSQL refuses others).
        if (ids) {
          await runProgram('chown', ['-R', `${ids.uid}:${ids.gid}`, '--', p.dataDir], {
            signal: ctx.signal,
            timeoutMs: p.timeouts.prepareMs,
            what: `chown -R of ${p.dataDir}`,
          });
        }
        await chmod(p.dataDir, 0o700);
        // A backup taken with -R would start a standby that follows the original, never promoting.
        await rm(join(p.dataDir, 'standby.signal'), { force: true });
        const autoConfPath = join(p.dataDir, 'postgresql.auto.conf');
        const existing = await readFile(autoConfPath, 'utf8').catch(() => '');
        await writeOwned(autoConfPath, autoConf(existing, p.settings, p.restoreId), ids);
        await writeOwned(join(p.dataDir, 'recovery.signal'), '', ids);
        await writeMarker(p.dataDir, { ...marker, state: 'recovering' }, ids);
        ctx.log(
          `starting the restored server on 127.0.0.1:${p.port} (recovery to ${describeTarget(p.target)})`,
          {
            settings: Object.fromEntries(p.settings),
          },
        );

        const log = new ServerLog(p.logFile);
        await log.read(); // skip what an earlier server wrote into a kept log file
        startedServer = true;
        await startServer(p, p.dataDir, p.logFile, ctx.signal);
        const promotion = await awaitPromotion({
          dataDir: p.dataDir,
          log,
          url: urlOf(p, true),
          startTimeoutMs: p.timeouts.startMs,
          promoteTimeoutMs: p.timeouts.promoteMs,
          pollMs: p.timeouts.pollMs,
          progressMs: p.timeouts.progressMs,
          signal: ctx.signal,
          progress: ctx.log,
          target: describeTarget(p.target),
          source: p.source,
        });
        await writeMarker(p.dataDir, { ...marker, state: 'promoted', timeline: promotion.timeline }, ids);
        ctx.log(`restore done in ${formatMillis(Date.now() - started)}: timeline ${promotion.timeline}`);
        return {
          timeline: promotion.timeline,
          durationMs: Date.now() - started,
          segmentsRestored: promotion.segmentsRestored,
          lastRestored: promotion.lastRestored,
        };
      } catch (e) {
        if (startedServer) await stopServer(p, p.dataDir).catch(() => {});
        let aftermath: string;
        if (p.keepOnFailure) {
          await writeMarker(p.dataDir, { ...marker, state: 'failed' }, ids).catch(() => {});
          aftermath = `The stopped data directory was kept for inspection in ${p.dataDir} (log ${p.logFile}); a new try of this restore replaces it.`;
        } else {
          await removeRestore(p.dataDir, createdDataDir).catch(() => {});
          aftermath = createdDataDir
            ? `The data directory ${p.dataDir} was removed.`
            : `The data directory ${p.dataDir} was emptied again.`;
        }
        if (isPitrError(e)) {
          throw new PitrError(e.code, `${e.message} ${aftermath}`, {
            cause: e,
            ...(e.details ? { details: e.details } : {}),
          });
        }
        throw e;
      }
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const status = await postmasterStatus(p.dataDir);
      if (!status?.alive) {
        return finding(
          'unknown',
          `the restored server in ${p.dataDir} is not running: start it (pg_ctl start -D ${p.dataDir}) and verify by hand, or revert`,
          null,
        );
      }
      const db = connectPostgres({
        url: urlOf(p, true),
        name: 'pitr-restored',
        connectTimeout: '5s',
        statementTimeout: p.timeouts.verifyMs,
        poolSize: 1,
      });
      const rows: (string | number | boolean | null)[][] = [];
      const failures: string[] = [];
      let timeline = 0;
      try {
        const { rows: stateRows } = await db.query<{ in_recovery: boolean; walfile: string | null }>(
          `SELECT pg_is_in_recovery() AS in_recovery,
                  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile`,
          [],
          { signal: ctx.signal },
        );
        const state = stateRows[0];
        if (!state || state.in_recovery || !state.walfile) {
          failures.push('the server is still in recovery (not promoted)');
        } else {
          timeline = Number.parseInt(state.walfile.slice(0, 8), 16);
          const higher = timeline > p.backup.timeline;
          rows.push(['timeline', `> ${p.backup.timeline}`, timeline, higher]);
          if (!higher) {
            failures.push(
              `the server runs on timeline ${timeline}, not above the backup's ${p.backup.timeline}`,
            );
          }
        }
        for (const table of p.verify.tables) {
          const fingerprint =
            table.expectedChecksum !== undefined
              ? await tableFingerprint(db, table.name, { signal: ctx.signal })
              : { rows: await tableRowCount(db, table.name, { signal: ctx.signal }), checksum: null };
          const countOk = table.expectedCount === undefined || fingerprint.rows === table.expectedCount;
          const sumOk =
            table.expectedChecksum === undefined || fingerprint.checksum === table.expectedChecksum;
          rows.push([`${table.name} rows`, table.expectedCount ?? null, fingerprint.rows, countOk]);
          if (table.expectedChecksum !== undefined) {
            rows.push([`${table.name} checksum`, table.expectedChecksum, fingerprint.checksum, sumOk]);
          }
          if (!countOk)
            failures.push(`${table.name} has ${fingerprint.rows} rows, expected ${table.expectedCount}`);
          if (!sumOk)
            failures.push(
              `${table.name} has checksum ${fingerprint.checksum}, expected ${table.expectedChecksum}`,
            );
        }
        if (p.verify.sql !== null) {
          const { rows: sqlRows } = await db.query(p.verify.sql, [], { signal: ctx.signal });
          const first = sqlRows[0] ? Object.values(sqlRows[0])[0] : undefined;
          rows.push(['verify.sql', true, first === undefined ? null : String(first), first === true]);
          if (first !== true)
            failures.push(`verify.sql returned ${first === undefined ? 'no row' : String(first)}, not true`);
        }
      } catch (e) {
        failures.push(
          isPostgresError(e) ? e.message : `checking the restored server failed: ${(e as Error).message}`,
        );
      } finally {
        await db.close();
      }
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: 'Restored server checks',
          columns: ['check', 'expected', 'actual', 'ok'],
          rows,
        },
      ];
      const data = { timeline, backupTimeline: p.backup.timeline, trafficSwitched: false } as Record<
        string,
        Json
      >;
      if (failures.length > 0) {
        return finding(
          'fail',
          `restore to ${describeTarget(p.target)} failed verification: ${failures.join('; ')}`,
          data,
          evidence,
        );
      }
      const summary = `restored to ${describeTarget(p.target)} on 127.0.0.1:${p.port}, timeline ${timeline} (backup's ${p.backup.timeline}), ${p.verify.tables.length} table check(s) passed`;
      if (!o.switchTraffic) return finding('ok', summary, data, evidence);

      const marker = await readMarker(p.dataDir);
      if (!marker?.trafficSwitched) {
        const restored: RestoredServer = {
          host: '127.0.0.1',
          port: p.port,
          dataDir: p.dataDir,
          database: p.database,
          user: p.user,
          url: urlOf(p, false),
          timeline,
          backupTimeline: p.backup.timeline,
          target: p.target,
          logFile: p.logFile,
        };
        try {
          await o.switchTraffic(ctx, restored);
        } catch (e) {
          return finding(
            'unknown',
            `${summary}, but switching traffic failed: ${(e as Error).message ?? String(e)}. The restored server is left running; finish the switch by hand`,
            data,
            evidence,
          );
        }
        if (marker) {
          await writeMarker(
            p.dataDir,
            { ...marker, trafficSwitched: true },
            runningAsRoot() ? await osUserIds(p.osUser) : null,
          );
        }
      }
      ctx.log(`traffic switched to 127.0.0.1:${p.port}`);
      return finding(
        'ok',
        `${summary}; traffic switched to it`,
        { ...data, trafficSwitched: true },
        evidence,
      );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      const exists = await stat(p.dataDir).then(
        () => true,
        () => false,
      );
      if (!exists) {
        ctx.log(`${p.dataDir} does not exist; nothing to revert`);
        return;
      }
      const marker = await readMarker(p.dataDir);
      if (!marker) {
        if ((await readdir(p.dataDir)).length === 0) return;
        throw new PitrError(
          'PITR_NOT_OURS',
          `${p.dataDir} has no ${RESTORE_MARKER}: this restore did not make it, so revert left it alone. Remove it by hand if it is not needed.`,
        );
      }
      if (marker.restoreId !== p.restoreId) {
        throw new PitrError(
          'PITR_NOT_OURS',
          `${p.dataDir} holds restore ${marker.restoreId}, not ${p.restoreId}: revert left it alone.`,
        );
      }
      // Once traffic was switched to the restored server, clients use it: stopping it and deleting its data
      // would be a new outage. A person decides (switch traffic back first, then remove it by hand).
      if (marker.trafficSwitched) {
        throw new PitrError(
          'PITR_TRAFFIC_SWITCHED',
          `Refused to revert: traffic was switched to the restored server on 127.0.0.1:${p.port} (${p.dataDir}). Switch traffic back first, then stop it and remove ${p.dataDir} by hand.`,
        );
      }
      if (await stopServer(p, p.dataDir)) ctx.log(`stopped the restored server on 127.0.0.1:${p.port}`);
      await removeRestore(p.dataDir, marker.createdDataDir);
      ctx.log(marker.createdDataDir ? `removed ${p.dataDir}` : `emptied ${p.dataDir}`);
    },
  });
}

function driverContext(ctx: StepContext): DriverContext {
  return { signal: ctx.signal, log: (message, data) => ctx.log(message, data) };
}

/** A time or LSN target before the backup's end cannot be reached: recovery must first make the backup consistent. */
function assertReachable(backup: BackupInfo, target: ResolvedTarget): void {
  if (target.kind === 'time' && targetTimeMs(target.value) < Date.parse(backup.endTime)) {
    throw new PitrError(
      'PITR_TARGET_BEFORE_BACKUP_END',
      `The target time ${target.value} is before the end of backup "${backup.label}" (${backup.endTime}): recovery cannot stop before the backup is consistent. Choose a time at or after ${backup.endTime}, or an older backup. Nothing was changed.`,
      { details: { target: target.value, backupEnd: backup.endTime, endTimeSource: backup.endTimeSource } },
    );
  }
  if (target.kind === 'lsn' && lsnBefore(target.value, backup.stopLsn)) {
    throw new PitrError(
      'PITR_TARGET_BEFORE_BACKUP_END',
      `The target WAL location ${target.value} is before the end of backup "${backup.label}" (${backup.stopLsn}): recovery cannot stop before the backup is consistent. Choose a location at or after ${backup.stopLsn}, or an older backup. Nothing was changed.`,
      { details: { target: target.value, backupEnd: backup.stopLsn } },
    );
  }
}

async function readMarker(dataDir: string): Promise<RestoreMarker | null> {
  const text = await readFile(join(dataDir, RESTORE_MARKER), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const marker = JSON.parse(text) as RestoreMarker;
    return typeof marker.restoreId === 'string' ? marker : null;
  } catch {
    return null;
  }
}

async function writeMarker(
  dataDir: string,
  marker: RestoreMarker,
  ids: { uid: number; gid: number } | null,
): Promise<void> {
  await writeOwned(
    join(dataDir, RESTORE_MARKER),
    `${JSON.stringify({ ...marker, updatedAt: new Date().toISOString() }, null, 2)}\n`,
    ids,
  );
}

async function writeOwned(
  path: string,
  text: string,
  ids: { uid: number; gid: number } | null,
): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
  if (ids) await chown(path, ids.uid, ids.gid);
}

/** What is at `dataDir`: nothing, an empty directory, or a restore's marker; anything else is refused. */
async function dataDirState(dataDir: string, restoreId: string): Promise<DataDirState> {
  let entries: string[];
  try {
    const s = await stat(dataDir);
    if (!s.isDirectory()) {
      throw new PitrError(
        'PITR_DATA_DIR_NOT_EMPTY',
        `${dataDir} exists and is not a directory. Choose another data directory.`,
      );
    }
    entries = await readdir(dataDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PitrError(
        'PITR_PERMISSION',
        `Cannot read ${dataDir}: permission denied. Nothing was changed.`,
        { cause: e },
      );
    }
    throw e;
  }
  if (entries.length === 0) return { kind: 'empty' };
  const marker = entries.includes(RESTORE_MARKER) ? await readMarker(dataDir) : null;
  if (marker?.restoreId === restoreId) {
    const running = await postmasterStatus(dataDir);
    return marker.state === 'promoted' && running?.alive
      ? { kind: 'done', marker }
      : { kind: 'interrupted', marker };
  }
  throw new PitrError(
    'PITR_DATA_DIR_NOT_EMPTY',
    marker
      ? `${dataDir} holds another restore (${marker.restoreId}, ${marker.state}). Revert that one, or choose another data directory; nothing was changed.`
      : `${dataDir} is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', …' : ''}). A restore needs a new or empty data directory; choose another one. Nothing was changed.`,
  );
}

/** Whether the server's OS user will be able to use `dataDir`, and we to create it. */
async function dataDirProblems(
  dataDir: string,
  osUser: string,
  state: DataDirState,
  signal: AbortSignal,
): Promise<string[]> {
  const parent = dirname(dataDir);
  const parentStat = await stat(parent).catch(() => null);
  if (!parentStat?.isDirectory()) {
    return [`the parent directory ${parent} of the data directory does not exist: create it first`];
  }
  if (runningAsRoot()) {
    return (await canEnter(osUser, parent, signal))
      ? []
      : [
          `the OS user ${osUser} cannot enter ${parent}, the parent of the data directory (it needs execute permission there and on every directory above; chmod o+x or chown it to ${osUser})`,
        ];
  }
  const needed = state.kind === 'absent' ? constants.W_OK | constants.X_OK : constants.X_OK;
  try {
    await access(state.kind === 'absent' ? parent : dataDir, needed);
    return [];
  } catch {
    return [
      state.kind === 'absent'
        ? `this process cannot create ${dataDir}: ${parent} is not writable by it`
        : `this process cannot use ${dataDir}: give it to ${osUser}`,
    ];
  }
}

async function assertPortFree(port: number, dataDir: string): Promise<void> {
  const ours = await postmasterStatus(dataDir);
  if (ours?.alive && ours.port === port) return; // an interrupted restore's server: apply stops it first
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  if (!free) {
    throw new PitrError(
      'PITR_PORT_IN_USE',
      `Port ${port} on 127.0.0.1 is in use: the restored server needs a free one. Choose another port; nothing was changed.`,
    );
  }
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

async function removeRestore(dataDir: string, createdDataDir: boolean): Promise<void> {
  if (createdDataDir) await rm(dataDir, { recursive: true, force: true });
  else await emptyDirectory(dataDir);
}
