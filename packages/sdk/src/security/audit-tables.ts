import { z } from 'zod';
import type { Cell } from '../core/finding';
import { quoteQualified } from '../postgres/database';

const TableName = z
  .string()
  .regex(
    /^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$/,
    'expected a table name such as "audit_logs" or "app.audit_logs"',
  );

/**
 * Where the manual's tables are. Their columns are fixed (runbook 12's schema): `audit_logs(username, action,
 * resource, ip_address, success, details, created_at)` and `users(username, status, locked_reason)`; only the
 * table names may differ (another schema, a test's own copy).
 */
export const AuditTables = z
  .object({
    /** @default "audit_logs" */
    auditLogs: TableName.default('audit_logs'),
    /** @default "users" */
    users: TableName.default('users'),
  })
  .default({ auditLogs: 'audit_logs', users: 'users' });
export type AuditTables = z.output<typeof AuditTables>;

/** Quoted table names to put in SQL text (identifiers, never values: those are always bound). */
export function quotedTables(tables: AuditTables): { auditLogs: string; users: string } {
  return { auditLogs: quoteQualified(tables.auditLogs), users: quoteQualified(tables.users) };
}

/** An interval parameter for `$n::interval` from milliseconds. */
export function intervalParam(ms: number): string {
  return `${Math.round(ms)} milliseconds`;
}

/** An audit row as checks report it. */
export type AuditEntry = {
  createdAt: string;
  username: string | null;
  action: string;
  resource: string | null;
  ipAddress: string | null;
  success: boolean;
};

/** The columns every audit evidence table shows, in order. */
export const AUDIT_COLUMNS = ['created_at', 'username', 'action', 'resource', 'ip_address', 'success'];

/** The select list for {@link AUDIT_COLUMNS}. */
export const AUDIT_SELECT = 'created_at, username, action, resource, ip_address, success';

export function auditEntryOf(row: Record<string, unknown>): AuditEntry {
  return {
    createdAt: row.created_at instanceof Date ? row.created_at.toISOString() : String(row.created_at),
    username: (row.username as string | null) ?? null,
    action: String(row.action),
    resource: (row.resource as string | null) ?? null,
    ipAddress: (row.ip_address as string | null) ?? null,
    success: row.success === true,
  };
}

export function auditCells(e: AuditEntry): Cell[] {
  return [e.createdAt, e.username, e.action, e.resource, e.ipAddress, e.success];
}
