/**
 * Point-in-time restore: {@link pitrRestore} (an action: plan, apply, verify, revert) over a
 * {@link RestoreDriver} ({@link basebackupDriver} for pg_basebackup backups and a directory WAL archive),
 * and the pieces a runbook may call directly.
 */
export {
  type BackupInfo,
  type BackupLabel,
  backupEndTime,
  type ManifestSummary,
  parseBackupLabel,
  parseManifest,
  parsePostgresTime,
} from './backup';
export {
  type BaseBackup,
  BaseBackupOptions,
  type BaseBackupOptionsInput,
  takeBaseBackup,
} from './base-backup';
export {
  BasebackupDriverOptions,
  type BasebackupDriverOptionsInput,
  basebackupDriver,
  type DriverContext,
  type RestoreDriver,
} from './driver';
export { isPitrError, PitrError, type PitrErrorCode } from './errors';
export { type Queryable, type TableFingerprint, tableFingerprint, tableRowCount } from './fingerprint';
export { Lsn, lsnValue, normalizeLsn } from './lsn';
export { type ProgramRunner, SafePath } from './programs';
export {
  type DataDirKind,
  type PitrRestoreApplied,
  PitrRestoreOptions,
  type PitrRestoreOptionsInput,
  type PitrRestoreParams,
  pitrRestore,
  RESTORE_MARKER,
  type RestoredServer,
  RestoreVerification,
  type RestoreVerificationInput,
  type SwitchTraffic,
  TableExpectation,
} from './restore';
export {
  type PostmasterStatus,
  postmasterStatus,
  ServerLog,
  stopServer,
} from './server';
export {
  confQuote,
  describeTarget,
  RecoveryTarget,
  type ResolvedTarget,
  type RestoreSettingsInput,
  restoreSettings,
  TargetTime,
  TargetTimeline,
} from './settings';
