import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../core/duration';
import { type Evidence, type FindingStatus, finding } from '../core/finding';
import { parseOptions } from '../core/parse-options';
import { type Check, defineCheck, type ReplayableCheck } from '../core/step';
import { listSome, plural } from '../core/wording';
import type { PostgresDatabase } from '../postgres/database';
import {
  AUDIT_COLUMNS,
  AUDIT_SELECT,
  type AuditEntry,
  AuditTables,
  auditCells,
  auditEntryOf,
  intervalParam,
  quotedTables,
} from './audit-tables';
import { IpOrCidr } from './ip-blocklist';

const Username = z.string().min(1).max(256);
const IpText = z.string().min(1).max(64);

// ---- failed-login bursts ------------------------------------------------------------------------------

/** Options of {@link failedLoginBursts}. */
export const FailedLoginBurstsOptions = z.object({
  /** How far back to count. @default "10m" (the manual's `INTERVAL '10 minutes'`) */
  window: Duration.default('10m'),
  /** A (username, IP) pair with more failed logins than this in the window is a burst. @default 10 (the manual's `HAVING COUNT(*) > 10`) */
  threshold: z.number().int().min(0).default(10),
  /** Most bursts reported (the busiest first). @default 50 */
  limit: z.number().int().min(1).max(1_000).default(50),
  tables: AuditTables,
});
export type FailedLoginBurstsOptionsInput = z.input<typeof FailedLoginBurstsOptions>;

/** One (username, IP) pair with too many failed logins. */
export type LoginBurst = {
  username: string | null;
  ipAddress: string | null;
  attempts: number;
  firstAt: string;
  lastAt: string;
};

/** What {@link failedLoginBursts} found. */
export type FailedLoginBurstsData = {
  windowMs: number;
  threshold: number;
  bursts: LoginBurst[];
  /** The distinct source addresses of the bursts that are IP addresses: what to block. */
  ips: string[];
  /**
   * Source values of bursts that are not a single IP address (`unknown`, an `X-Forwarded-For` list as recorded):
   * they cannot be blocked as they are, and are reported for a person to look at.
   */
  otherAddresses: string[];
  /** The distinct usernames attacked. */
  usernames: string[];
  /** Successful logins from a burst's address in the window: accounts to treat as compromised. */
  compromised: { username: string; ipAddress: string; at: string }[];
};

/**
 * What {@link failedLoginBursts} read: the bursts over the `threshold` it read with (busiest first, at most
 * `limit`), and the successful logins from their addresses. Replaying it with a higher `threshold` (or a
 * lower `limit`) judges them again; a lower one cannot see the pairs the recorded run did not read.
 */
export type FailedLoginBurstsObservation = {
  bursts: LoginBurst[];
  compromised: { username: string; ipAddress: string; at: string }[];
};

/**
 * Runbook 12's failed-login query, parameterized: `SELECT username, ip_address, COUNT(*) FROM audit_logs WHERE
 * action = 'login_failed' AND created_at > NOW() - <window> GROUP BY username, ip_address HAVING COUNT(*) >
 * <threshold>`, plus the successful logins from those addresses in the same window (a guessed password).
 * `fail` when there is a burst, `ok` otherwise.
 *
 * Replayable: `read` queries the audit log ({@link FailedLoginBurstsObservation}), `judge` applies
 * `threshold` and `limit`.
 */
export function failedLoginBursts(
  db: PostgresDatabase,
  options: FailedLoginBurstsOptionsInput = {},
): ReplayableCheck<FailedLoginBurstsData, FailedLoginBurstsObservation> {
  const o = parseOptions('security.failed-login-bursts', FailedLoginBurstsOptions, options);
  const t = quotedTables(o.tables);
  const windowMs = toMillis(o.window);
  const within = formatMillis(windowMs);
  const addressesOf = (list: LoginBurst[]) =>
    [...new Set(list.map((b) => b.ipAddress).filter((ip): ip is string => ip !== null))].sort();
  return defineCheck({
    kind: 'security.failed-login-bursts',
    description: `Failed logins per user and address over ${within} (more than ${o.threshold} is a burst)`,
    async read(ctx): Promise<FailedLoginBurstsObservation> {
      const bursts = await db.query(
        `SELECT username, ip_address, COUNT(*)::int AS attempts, min(created_at) AS first_at, max(created_at) AS last_at
           FROM ${t.auditLogs}
          WHERE action = 'login_failed' AND created_at > now() - $1::interval
          GROUP BY username, ip_address
         HAVING COUNT(*) > $2
          ORDER BY attempts DESC, username, ip_address
          LIMIT $3`,
        [intervalParam(windowMs), o.threshold, o.limit],
        { signal: ctx.signal },
      );
      const list: LoginBurst[] = bursts.rows.map((r) => ({
        username: (r.username as string | null) ?? null,
        ipAddress: (r.ip_address as string | null) ?? null,
        attempts: Number(r.attempts),
        firstAt: (r.first_at as Date).toISOString(),
        lastAt: (r.last_at as Date).toISOString(),
      }));
      const recorded = addressesOf(list);
      const compromised =
        recorded.length === 0
          ? []
          : (
              await db.query(
                `SELECT username, ip_address, max(created_at) AS at
                   FROM ${t.auditLogs}
                  WHERE action = 'login' AND success AND username IS NOT NULL
                    AND ip_address = ANY($1::text[]) AND created_at > now() - $2::interval
                  GROUP BY username, ip_address
                  ORDER BY username, ip_address`,
                [recorded, intervalParam(windowMs)],
                { signal: ctx.signal },
              )
            ).rows.map((r) => ({
              username: String(r.username),
              ipAddress: String(r.ip_address),
              at: (r.at as Date).toISOString(),
            }));
      return { bursts: list, compromised };
    },
    judge(seen) {
      // The read kept the pairs over its own threshold: judged again by this one (the same, or higher).
      const list = seen.bursts.filter((b) => b.attempts > o.threshold).slice(0, o.limit);
      const recorded = addressesOf(list);
      const ips = recorded.filter((ip) => IpOrCidr.safeParse(ip).success);
      const otherAddresses = recorded.filter((ip) => !ips.includes(ip));
      const usernames = [
        ...new Set(list.map((b) => b.username).filter((u): u is string => u !== null)),
      ].sort();
      const compromised = seen.compromised.filter((c) => recorded.includes(c.ipAddress));
      const data: FailedLoginBurstsData = {
        windowMs,
        threshold: o.threshold,
        bursts: list,
        ips,
        otherAddresses,
        usernames,
        compromised,
      };
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Failed logins over ${within}, more than ${o.threshold} per user and address`,
          columns: ['username', 'ip_address', 'attempts', 'first_at', 'last_at'],
          rows: list.map((b) => [b.username, b.ipAddress, b.attempts, b.firstAt, b.lastAt]),
        },
      ];
      if (compromised.length > 0) {
        evidence.push({
          kind: 'table',
          title: 'Successful logins from those addresses',
          columns: ['username', 'ip_address', 'last_login'],
          rows: compromised.map((c) => [c.username, c.ipAddress, c.at]),
        });
      }
      if (list.length === 0) {
        return finding(
          'ok',
          `No failed-login burst over ${within} (none above ${o.threshold} per user and address)`,
          data,
          evidence,
        );
      }
      const total = list.reduce((n, b) => n + b.attempts, 0);
      const taken =
        compromised.length > 0
          ? `; ${plural(compromised.length, 'successful login')} from them (${listSome(compromised.map((c) => c.username))})`
          : '';
      return finding(
        'fail',
        `${plural(total, 'failed login')} in ${plural(list.length, 'burst')} over ${within} from ${listSome(recorded)} against ${listSome(usernames)}${taken}`,
        data,
        evidence,
      );
    },
  });
}

// ---- recent audit activity ------------------------------------------------------------------------------

/** Options of {@link recentAuditActivity}. */
export const RecentAuditActivityOptions = z.object({
  /** How far back. @default "1h" (the manual's `INTERVAL '1 hour'`) */
  window: Duration.default('1h'),
  /** Entries shown, newest first. @default 100 (the manual's `LIMIT 100`) */
  limit: z.number().int().min(1).max(1_000).default(100),
  /** `warn` when the window holds at least this many failed logins. @default 50 */
  failedLoginsWarn: z.number().int().min(1).default(50),
  tables: AuditTables,
});
export type RecentAuditActivityOptionsInput = z.input<typeof RecentAuditActivityOptions>;

/** What {@link recentAuditActivity} found. */
export type RecentAuditActivityData = {
  windowMs: number;
  /** Entries in the window per action. */
  byAction: Record<string, number>;
  failedLogins: number;
  /** The newest entries, at most `limit`. */
  entries: AuditEntry[];
};

/**
 * What {@link recentAuditActivity} read: the entries of the window per action, and the newest entries.
 * Replaying it with another `failedLoginsWarn` judges the same counts again.
 */
export type RecentAuditActivityObservation = {
  byAction: Record<string, number>;
  entries: AuditEntry[];
};

/**
 * Runbook 12's "check audit logs for suspicious activity": the newest entries, and counts per action.
 *
 * Replayable: `read` queries the audit log ({@link RecentAuditActivityObservation}), `judge` applies
 * `failedLoginsWarn`.
 */
export function recentAuditActivity(
  db: PostgresDatabase,
  options: RecentAuditActivityOptionsInput = {},
): ReplayableCheck<RecentAuditActivityData, RecentAuditActivityObservation> {
  const o = parseOptions('security.recent-audit-activity', RecentAuditActivityOptions, options);
  const t = quotedTables(o.tables);
  const windowMs = toMillis(o.window);
  const within = formatMillis(windowMs);
  return defineCheck({
    kind: 'security.recent-audit-activity',
    description: `Audit log entries of the last ${within}`,
    async read(ctx): Promise<RecentAuditActivityObservation> {
      const counts = await db.query(
        `SELECT action, COUNT(*)::int AS n FROM ${t.auditLogs} WHERE created_at > now() - $1::interval GROUP BY action ORDER BY n DESC, action`,
        [intervalParam(windowMs)],
        { signal: ctx.signal },
      );
      const recent = await db.query(
        `SELECT ${AUDIT_SELECT} FROM ${t.auditLogs} WHERE created_at > now() - $1::interval ORDER BY created_at DESC, id DESC LIMIT $2`,
        [intervalParam(windowMs), o.limit],
        { signal: ctx.signal },
      );
      return {
        byAction: Object.fromEntries(counts.rows.map((r) => [String(r.action), Number(r.n)])),
        entries: recent.rows.map(auditEntryOf),
      };
    },
    judge({ byAction, entries }) {
      const failedLogins = byAction.login_failed ?? 0;
      const total = Object.values(byAction).reduce((a, b) => a + b, 0);
      const data: RecentAuditActivityData = { windowMs, byAction, failedLogins, entries };
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Entries per action, last ${within}`,
          columns: ['action', 'entries'],
          rows: Object.entries(byAction),
        },
        {
          kind: 'table',
          title: `Newest ${entries.length} entries`,
          columns: AUDIT_COLUMNS,
          rows: entries.map(auditCells),
        },
      ];
      const status: FindingStatus = failedLogins >= o.failedLoginsWarn ? 'warn' : 'ok';
      return finding(
        status,
        `${plural(total, 'audit entry', 'audit entries')} in the last ${within}, ${plural(failedLogins, 'failed login')}${status === 'warn' ? ` (≥ ${o.failedLoginsWarn})` : ''}`,
        data,
        evidence,
      );
    },
  });
}

// ---- breach scope ------------------------------------------------------------------------------------

/** Options of {@link breachScope}. */
export const BreachScopeOptions = z
  .object({
    /** Accounts believed compromised. @default [] */
    usernames: z.array(Username).max(1_000).default([]),
    /** Addresses believed malicious (exact text as logged). @default [] */
    ips: z.array(IpText).max(1_000).default([]),
    /** How far back. @default "24h" (the manual's `INTERVAL '24 hours'`) */
    window: Duration.default('24h'),
    /** Entries shown, oldest first. @default 200 */
    limit: z.number().int().min(1).max(5_000).default(200),
    tables: AuditTables,
  })
  .refine((o) => o.usernames.length + o.ips.length > 0, {
    message: 'give at least one username or IP address',
    path: ['usernames'],
  });
export type BreachScopeOptionsInput = z.input<typeof BreachScopeOptions>;

/** What {@link breachScope} found. */
export type BreachScopeData = {
  windowMs: number;
  entries: AuditEntry[];
  /** Successful actions other than logging in: what the attacker did. */
  actionsTaken: { action: string; resource: string | null; count: number }[];
};

/**
 * Runbook 12's "review audit logs for scope of breach": every action by the given accounts or from the given
 * addresses in the window. `fail` when any of it is a successful action other than a login attempt (the
 * attacker got in and did something), `warn` when there are only login attempts, `ok` when nothing.
 */
export function breachScope(db: PostgresDatabase, options: BreachScopeOptionsInput): Check<BreachScopeData> {
  const o = parseOptions('security.breach-scope', BreachScopeOptions, options);
  const t = quotedTables(o.tables);
  const windowMs = toMillis(o.window);
  const within = formatMillis(windowMs);
  const who = listSome([...o.usernames, ...o.ips]);
  return defineCheck({
    kind: 'security.breach-scope',
    description: `Actions of ${who} over ${within}`,
    async run(ctx) {
      const rows = await db.query(
        `SELECT ${AUDIT_SELECT} FROM ${t.auditLogs}
          WHERE created_at > now() - $1::interval AND (username = ANY($2::text[]) OR ip_address = ANY($3::text[]))
          ORDER BY created_at, id LIMIT $4`,
        [intervalParam(windowMs), o.usernames, o.ips, o.limit],
        { signal: ctx.signal },
      );
      const entries = rows.rows.map(auditEntryOf);
      const taken = new Map<string, { action: string; resource: string | null; count: number }>();
      for (const e of entries) {
        if (!e.success || e.action === 'login' || e.action === 'login_failed') continue;
        const key = `${e.action}\u0000${e.resource ?? ''}`;
        const seen = taken.get(key) ?? { action: e.action, resource: e.resource, count: 0 };
        seen.count++;
        taken.set(key, seen);
      }
      const actionsTaken = [...taken.values()];
      const data: BreachScopeData = { windowMs, entries, actionsTaken };
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Actions of ${who}, last ${within}`,
          columns: AUDIT_COLUMNS,
          rows: entries.map(auditCells),
        },
      ];
      if (actionsTaken.length > 0) {
        return finding(
          'fail',
          `${who}: ${plural(
            actionsTaken.reduce((n, a) => n + a.count, 0),
            'successful action',
          )} beyond logging in over ${within} (${listSome(actionsTaken.map((a) => `${a.action} ${a.resource ?? ''}`.trim()))})`,
          data,
          evidence,
        );
      }
      if (entries.length > 0) {
        return finding(
          'warn',
          `${who}: ${plural(entries.length, 'login attempt')} over ${within}, nothing else`,
          data,
          evidence,
        );
      }
      return finding('ok', `${who}: no activity over ${within}`, data, evidence);
    },
  });
}

// ---- data access ---------------------------------------------------------------------------------------

/** Options of {@link dataAccess}. */
export const DataAccessOptions = z.object({
  /** The accounts whose reads and exports to list. */
  usernames: z.array(Username).min(1, 'give at least one username').max(1_000),
  /** The actions that count as data access. @default ["read", "export"] (the manual's) */
  actions: z.array(z.string().min(1)).min(1).default(['read', 'export']),
  /** How far back. @default "24h" */
  window: Duration.default('24h'),
  /** Entries shown, newest first. @default 200 */
  limit: z.number().int().min(1).max(5_000).default(200),
  tables: AuditTables,
});
export type DataAccessOptionsInput = z.input<typeof DataAccessOptions>;

/** What {@link dataAccess} found. */
export type DataAccessData = {
  windowMs: number;
  entries: AuditEntry[];
  /** The distinct resources read or exported: the data to treat as disclosed. */
  resources: string[];
  exports: number;
};

/**
 * Runbook 12's "check data access logs": reads and exports by the given accounts. `fail` when anything was
 * exported, `warn` when read, `ok` when neither.
 */
export function dataAccess(db: PostgresDatabase, options: DataAccessOptionsInput): Check<DataAccessData> {
  const o = parseOptions('security.data-access', DataAccessOptions, options);
  const t = quotedTables(o.tables);
  const windowMs = toMillis(o.window);
  const within = formatMillis(windowMs);
  const who = listSome(o.usernames);
  return defineCheck({
    kind: 'security.data-access',
    description: `${o.actions.join('/')} by ${who} over ${within}`,
    async run(ctx) {
      const rows = await db.query(
        `SELECT ${AUDIT_SELECT} FROM ${t.auditLogs}
          WHERE action = ANY($1::text[]) AND username = ANY($2::text[]) AND created_at > now() - $3::interval
          ORDER BY created_at DESC, id DESC LIMIT $4`,
        [o.actions, o.usernames, intervalParam(windowMs), o.limit],
        { signal: ctx.signal },
      );
      const entries = rows.rows.map(auditEntryOf);
      const resources = [
        ...new Set(entries.map((e) => e.resource).filter((r): r is string => r !== null)),
      ].sort();
      const exports = entries.filter((e) => e.action === 'export').length;
      const data: DataAccessData = { windowMs, entries, resources, exports };
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `${o.actions.join('/')} by ${who}, last ${within}`,
          columns: AUDIT_COLUMNS,
          rows: entries.map(auditCells),
        },
      ];
      if (entries.length === 0)
        return finding('ok', `${who}: no ${o.actions.join('/')} over ${within}`, data, evidence);
      const status: FindingStatus = exports > 0 ? 'fail' : 'warn';
      return finding(
        status,
        `${who}: ${plural(entries.length, 'data access', 'data accesses')} over ${within}${exports > 0 ? `, ${plural(exports, 'export')}` : ''} (${listSome(resources)})`,
        data,
        evidence,
      );
    },
  });
}
