import { z } from 'zod';
import { Lsn, normalizeLsn } from './lsn';

const TIME_PATTERN =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * A time with an explicit zone: a `Date`, or ISO 8601 text such as `2024-05-01T12:00:00.250Z` or
 * `2024-05-01 14:00:00.123456+02` (microseconds are kept and handed to PostgreSQL as written).
 */
export const TargetTime = z.union([
  z.date().refine((d) => !Number.isNaN(d.getTime()), 'expected a valid date'),
  z
    .string()
    .regex(TIME_PATTERN, 'expected an ISO 8601 time with a zone, such as "2024-05-01T12:00:00Z"')
    .refine((s) => !Number.isNaN(targetTimeMs(s)), 'expected a valid date and time'),
]);

/**
 * Where recovery stops: exactly one of a time, a WAL location (LSN) or a named restore point
 * (`pg_create_restore_point`), or `'immediate'` (as soon as the backup is consistent).
 */
export const RecoveryTarget = z.union([
  z.literal('immediate'),
  z
    .object({
      /** Stop before the first transaction that committed after this time. */
      time: TargetTime.optional(),
      /** Stop at this WAL location. */
      lsn: Lsn.optional(),
      /** Stop at this restore point (`SELECT pg_create_restore_point('…')`). */
      name: z
        .string()
        .min(1)
        .max(63)
        // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
        .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters')
        .optional(),
    })
    .strict()
    .refine(
      (t) => [t.time, t.lsn, t.name].filter((v) => v !== undefined).length === 1,
      'give exactly one of time, lsn or name (or the string "immediate")',
    ),
]);
export type RecoveryTarget = z.input<typeof RecoveryTarget>;

/** A recovery target as the plan records it. */
export type ResolvedTarget =
  | { kind: 'time'; value: string }
  | { kind: 'lsn'; value: string }
  | { kind: 'name'; value: string }
  | { kind: 'immediate'; value: null };

/** Turns a parsed {@link RecoveryTarget} into its recorded form (times as text, LSNs upper-case). */
export function resolveTarget(target: z.output<typeof RecoveryTarget>): ResolvedTarget {
  if (target === 'immediate') return { kind: 'immediate', value: null };
  if (target.time !== undefined) {
    // PostgreSQL reads recovery_target_time before time zone abbreviations are loaded, so "Z" (one of them)
    // is refused: UTC is written as a numeric offset.
    const text = target.time instanceof Date ? target.time.toISOString() : target.time.replace(' ', 'T');
    return { kind: 'time', value: text.replace(/Z$/i, '+00:00') };
  }
  if (target.lsn !== undefined) return { kind: 'lsn', value: normalizeLsn(target.lsn) };
  return { kind: 'name', value: target.name as string };
}

/** For people: `time 2024-05-01T12:00:00Z`, `restore point "before-migration"`, … */
export function describeTarget(target: ResolvedTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${target.value}`;
    case 'lsn':
      return `WAL location ${target.value}`;
    case 'name':
      return `restore point "${target.value}"`;
    case 'immediate':
      return 'the end of the backup (immediate)';
  }
}

/** Milliseconds since the epoch of a target time in the accepted text forms (NaN when invalid). */
export function targetTimeMs(text: string): number {
  const m = TIME_PATTERN.exec(text.trim());
  if (!m) return Number.NaN;
  const clock = (m[2] as string).length === 5 ? `${m[2]}:00` : (m[2] as string);
  const fraction = clock.replace(/(\.\d{3})\d+$/, '$1');
  const zone = (m[3] as string).toUpperCase();
  const offset = zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.replace(':', '').slice(3, 5) || '00'}`;
  return Date.parse(`${m[1]}T${fraction}${offset}`);
}

/** `recovery_target_timeline`: follow the newest timeline in the archive, stay on the backup's, or a number. */
export const TargetTimeline = z.union([z.literal('latest'), z.literal('current'), z.number().int().min(1)]);
export type TargetTimeline = z.infer<typeof TargetTimeline>;

/** A configuration parameter's name. */
export const SettingName = z
  .string()
  .regex(/^[a-z_][a-z0-9_.]*$/, 'expected a parameter name such as "shared_buffers"');

/** Settings the restore itself decides; `settings` may not override them. */
export const MANAGED_SETTINGS = [
  'restore_command',
  'recovery_target',
  'recovery_target_time',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_xid',
  'recovery_target_action',
  'recovery_target_timeline',
  'recovery_target_inclusive',
  'port',
  'listen_addresses',
  'unix_socket_directories',
  'archive_mode',
  'primary_conninfo',
  'primary_slot_name',
  'synchronous_standby_names',
  'archive_cleanup_command',
  'recovery_end_command',
  'external_pid_file',
  'logging_collector',
  'log_destination',
] as const;

/** What goes into the restored server's `postgresql.auto.conf`. */
export interface RestoreSettingsInput {
  target: ResolvedTarget;
  restoreCommand: string;
  timeline: TargetTimeline;
  inclusive: boolean;
  port: number;
  socketDir: string;
  /** Further settings for the restored server (`shared_buffers`, …). */
  extra: Record<string, string | number | boolean>;
}

/**
 * The restore's settings, in the order they are written: exactly one `recovery_target*` with
 * `recovery_target_action = 'promote'`, the archive's `restore_command`, and a server that listens on
 * 127.0.0.1 only, on its own port, never archives (it must not write into the original's archive), and
 * neither follows a primary nor waits for synchronous standbys. Values are quoted for the file.
 */
export function restoreSettings(input: RestoreSettingsInput): [name: string, value: string][] {
  const t = input.target;
  const target: [string, string] =
    t.kind === 'time'
      ? ['recovery_target_time', t.value]
      : t.kind === 'lsn'
        ? ['recovery_target_lsn', t.value]
        : t.kind === 'name'
          ? ['recovery_target_name', t.value]
          : ['recovery_target', 'immediate'];
  const settings: [string, string][] = [
    ['restore_command', confQuote(input.restoreCommand)],
    [target[0], confQuote(target[1])],
    ['recovery_target_action', confQuote('promote')],
    ['recovery_target_timeline', confQuote(String(input.timeline))],
  ];
  if (t.kind === 'time' || t.kind === 'lsn')
    settings.push(['recovery_target_inclusive', input.inclusive ? 'on' : 'off']);
  settings.push(
    ['port', String(input.port)],
    ['listen_addresses', confQuote('127.0.0.1')],
    ['unix_socket_directories', confQuote(input.socketDir)],
    ['archive_mode', 'off'],
    ['primary_conninfo', confQuote('')],
    ['primary_slot_name', confQuote('')],
    ['synchronous_standby_names', confQuote('')],
    // Commands and files a backup of a standby or a tuned primary carries over that would act on the
    // original: archive_cleanup_command deletes WAL from the shared archive at every restartpoint.
    ['archive_cleanup_command', confQuote('')],
    ['recovery_end_command', confQuote('')],
    ['external_pid_file', confQuote('')],
    // The server log must be the file pg_ctl writes, where the restore watches for FATAL and promotion.
    ['logging_collector', 'off'],
    ['log_destination', confQuote('stderr')],
  );
  for (const [name, value] of Object.entries(input.extra)) {
    settings.push([name, typeof value === 'string' ? confQuote(value) : String(value)]);
  }
  return settings;
}

/**
 * Quotes a value for `postgresql.conf`: single quotes doubled, backslashes escaped. A line break would end
 * the setting and start another, so values with control characters are refused.
 */
export function confQuote(value: string): string {
  if ([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw new RangeError(
      `A setting value may not contain control characters or line breaks: ${JSON.stringify(value)}`,
    );
  }
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** First line of the block the restore appends; a later restore of the same directory finds and replaces it. */
export const SETTINGS_HEADER = '# Point-in-time restore by @aiwebtest/runbooks';

/**
 * The new `postgresql.auto.conf`: the backup's own lines, minus every setting the restore manages (so a
 * copied `recovery_target_*` or `restore_command` cannot add a second target), then the restore's block.
 */
export function autoConf(existing: string, settings: [string, string][], restoreId: string): string {
  const managed = new Set<string>([...MANAGED_SETTINGS, ...settings.map(([name]) => name)]);
  const header = existing.indexOf(SETTINGS_HEADER);
  const kept = (header >= 0 ? existing.slice(0, header) : existing)
    .split('\n')
    .filter((line) => {
      const name = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?/.exec(line)?.[1]?.toLowerCase();
      return name === undefined || !(managed.has(name) || name.startsWith('recovery_target'));
    })
    .join('\n')
    .trimEnd();
  const block = [`${SETTINGS_HEADER} ${restoreId}`, ...settings.map(([n, v]) => `${n} = ${v}`)].join('\n');
  return `${kept ? `${kept}\n` : ''}${block}\n`;
}
