import { PitrError } from './errors';
import { lsnValue, normalizeLsn } from './lsn';

/**
 * What a restore needs to know about a base backup. Every field is plain JSON: it goes into the sealed plan,
 * so approvers see which backup is restored.
 */
export interface BackupInfo {
  /** The backup's label (`pg_basebackup -l`). */
  label: string;
  /** Where WAL replay starts (`START WAL LOCATION`). */
  startLsn: string;
  /** Where the backup becomes consistent: no recovery target before it can be reached. */
  stopLsn: string;
  /** The WAL segment holding `startLsn`; recovery needs it and every segment after it. */
  startWalFile: string;
  /** When the backup started (ISO 8601), `null` when the label does not say. */
  startTime: string | null;
  /**
   * When the backup ended (ISO 8601): an upper bound, so any time target at or after it is reachable.
   * PostgreSQL records the stop time to the second; where the manifest's modification time falls inside that
   * second it is used instead, otherwise the stop time plus one second.
   */
  endTime: string;
  /** Where `endTime` came from. */
  endTimeSource: 'backup-history-file' | 'backup-manifest-mtime';
  /** The timeline the backup was taken on; a restore that promotes moves to a higher one. */
  timeline: number;
  /** Major version of the backup's data directory (`PG_VERSION`). */
  pgVersion: string;
  /** Sum of the manifest's file sizes, for progress. */
  sizeBytes: number;
  files: number;
  /** True when the WAL the backup needs to become consistent is inside it (`-X fetch` or `-X stream`). */
  walIncluded: boolean;
  /** Tablespaces in `pg_tblspc` (a restore of them is not supported: they would point at the original's). */
  tablespaces: number;
}

/** The fields of a `backup_label` (or of a backup history file, which adds the STOP lines). */
export interface BackupLabel {
  startLsn: string;
  startWalFile: string;
  startTime: string | null;
  label: string;
  timeline: number;
  stopLsn: string | null;
  stopTime: string | null;
}

/** Parses a `backup_label` or a `*.backup` history file. Throws `PITR_BACKUP_INVALID` naming what is missing. */
export function parseBackupLabel(text: string, source: string): BackupLabel {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 2).trim());
  }
  const start = /^([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/i.exec(
    fields.get('START WAL LOCATION') ?? '',
  );
  if (!start) {
    throw new PitrError(
      'PITR_BACKUP_INVALID',
      `${source} has no readable "START WAL LOCATION" line: it is not a PostgreSQL backup label. Point the driver at the directory pg_basebackup wrote.`,
    );
  }
  const stop = /^([0-9A-F]+\/[0-9A-F]+)/i.exec(fields.get('STOP WAL LOCATION') ?? '');
  const startTime = fields.get('START TIME');
  const stopTime = fields.get('STOP TIME');
  return {
    startLsn: normalizeLsn(start[1] as string),
    startWalFile: (start[2] as string).toUpperCase(),
    startTime: startTime ? isoOrNull(parsePostgresTime(startTime)) : null,
    label: fields.get('LABEL') ?? '',
    timeline: Number(fields.get('START TIMELINE') ?? Number.parseInt((start[2] as string).slice(0, 8), 16)),
    stopLsn: stop ? normalizeLsn(stop[1] as string) : null,
    stopTime: stopTime ? isoOrNull(parsePostgresTime(stopTime)) : null,
  };
}

/** What the restore reads from a `backup_manifest`. */
export interface ManifestSummary {
  /** The last WAL range's end: the backup's consistency point. */
  endLsn: string;
  timeline: number;
  sizeBytes: number;
  files: number;
}

/** Reads the parts of a `backup_manifest` a restore needs. Throws `PITR_BACKUP_INVALID` when it is not one. */
export function parseManifest(text: string, source: string): ManifestSummary {
  let manifest: {
    'PostgreSQL-Backup-Manifest-Version'?: unknown;
    Files?: { Size?: unknown }[];
    'WAL-Ranges'?: { Timeline?: unknown; 'End-LSN'?: unknown }[];
  };
  try {
    manifest = JSON.parse(text);
  } catch (e) {
    throw new PitrError(
      'PITR_BACKUP_INVALID',
      `${source} is not valid JSON (${(e as Error).message}): the backup is damaged or incomplete. Take a new backup.`,
      { cause: e },
    );
  }
  const ranges = manifest['WAL-Ranges'];
  const last = Array.isArray(ranges) ? ranges[ranges.length - 1] : undefined;
  if (
    manifest['PostgreSQL-Backup-Manifest-Version'] === undefined ||
    !last ||
    typeof last['End-LSN'] !== 'string'
  ) {
    throw new PitrError(
      'PITR_BACKUP_INVALID',
      `${source} is not a PostgreSQL backup manifest (no WAL-Ranges). Take the backup with pg_basebackup, which writes one by default.`,
    );
  }
  const files = Array.isArray(manifest.Files) ? manifest.Files : [];
  return {
    endLsn: normalizeLsn(last['End-LSN']),
    timeline: Number(last.Timeline ?? 1),
    sizeBytes: files.reduce((sum, f) => sum + (typeof f.Size === 'number' ? f.Size : 0), 0),
    files: files.length,
  };
}

/**
 * The end of a backup as a time every consistent target may start at (see {@link BackupInfo.endTime}).
 * `stopTime` is the history file's (whole seconds), `manifestMtimeMs` when the manifest was written.
 */
export function backupEndTime(
  stopTime: string | null,
  manifestMtimeMs: number,
): { endTime: string; source: BackupInfo['endTimeSource'] } {
  if (stopTime === null) {
    return { endTime: new Date(manifestMtimeMs).toISOString(), source: 'backup-manifest-mtime' };
  }
  const stop = Date.parse(stopTime);
  const bound = manifestMtimeMs >= stop && manifestMtimeMs < stop + 1_000 ? manifestMtimeMs : stop + 1_000;
  return { endTime: new Date(bound).toISOString(), source: 'backup-history-file' };
}

/** True when `lsn` comes before `other`. */
export function lsnBefore(lsn: string, other: string): boolean {
  return lsnValue(lsn) < lsnValue(other);
}

/**
 * Parses a time as PostgreSQL writes it in backup labels and logs: `2024-05-01 12:00:00 UTC`, with a zone
 * abbreviation of UTC/GMT/Z or a numeric offset (`+02`, `-0530`). `null` for other zone names, whose offset
 * cannot be known from the abbreviation alone.
 */
export function parsePostgresTime(text: string): Date | null {
  const m =
    /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*([A-Za-z]+|[+-]\d{2}(?::?\d{2})?)?$/.exec(
      text.trim(),
    );
  if (!m) return null;
  const zone = m[3] ?? 'UTC';
  let offset: string;
  if (/^(UTC|GMT|Z|UT)$/i.test(zone)) offset = 'Z';
  else if (/^[+-]/.test(zone)) {
    const digits = zone.replace(':', '');
    offset = `${digits.slice(0, 3)}:${digits.slice(3, 5) || '00'}`;
  } else return null;
  const fraction = (m[2] as string).replace(/(\.\d{3})\d+$/, '$1');
  const ms = Date.parse(`${m[1]}T${fraction}${offset}`);
  return Number.isNaN(ms) ? null : new Date(ms);
}

function isoOrNull(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}
