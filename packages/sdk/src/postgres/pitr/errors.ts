import { isRunbookError, RunbookError } from '../../core/errors';

/** What went wrong in a point-in-time restore; the `code` of a {@link PitrError}. */
export type PitrErrorCode =
  /** The backup directory is not a complete backup (no `backup_label`, bad manifest) or `pg_verifybackup` failed. */
  | 'PITR_BACKUP_INVALID'
  /** The recovery target cannot be reached from this backup (a time or LSN before the end of the backup). */
  | 'PITR_TARGET_BEFORE_BACKUP_END'
  /** The server's OS user cannot read the backup or the archive, or cannot reach the data directory. */
  | 'PITR_PERMISSION'
  /** The new data directory holds files this restore did not put there. */
  | 'PITR_DATA_DIR_NOT_EMPTY'
  /** Something else listens on the port the restored server should use. */
  | 'PITR_PORT_IN_USE'
  /** The restore cannot work this way (tablespaces, a path PostgreSQL's shell commands cannot quote). */
  | 'PITR_UNSUPPORTED'
  /** Recovery ran out of WAL before it reached the target: a segment is missing from the archive. */
  | 'PITR_WAL_MISSING'
  /** The restored server stopped during recovery; the message quotes its FATAL line. */
  | 'PITR_RECOVERY_FAILED'
  /** Recovery or promotion took longer than its timeout. */
  | 'PITR_TIMEOUT'
  /** A PostgreSQL program (`pg_ctl`, `pg_basebackup`, `cp`) failed; the message quotes its output. */
  | 'PITR_COMMAND_FAILED'
  /** Revert found a data directory that this restore did not create, and left it alone. */
  | 'PITR_NOT_OURS'
  /** Revert refused: traffic was switched to the restored server. */
  | 'PITR_TRAFFIC_SWITCHED';

/**
 * A point-in-time restore failed or was refused. Never retriable: each code needs a person (or a different plan)
 * before another try can succeed. `details.serverLog` holds the last lines of the restored server's log when
 * the server was started.
 */
export class PitrError extends RunbookError {
  declare readonly code: PitrErrorCode;
  constructor(
    code: PitrErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, { ...options, retriable: false });
  }
}

/** True when `e` is a {@link PitrError} (of the given code, when one is named). */
export function isPitrError(e: unknown, code?: PitrErrorCode): e is PitrError {
  return isRunbookError(e) && e.code.startsWith('PITR_') && (code === undefined || e.code === code);
}
