import { z } from 'zod';
import { NonRetriableError } from '../core/errors';
import { finding } from '../core/finding';
import { parseOptions } from '../core/parse-options';
import type { Change } from '../core/plan';
import { type Action, defineAction } from '../core/step';
import { listSome, plural } from '../core/wording';
import type { PostgresDatabase } from '../postgres/database';
import { AuditTables, quotedTables } from './audit-tables';

/** Options of {@link lockAccounts}. */
export const LockAccountsOptions = z.object({
  /** The accounts to lock, by `users.username`. Every one must exist. */
  usernames: z
    .array(z.string().min(1).max(256))
    .min(1, 'give at least one username')
    .max(1_000)
    .refine((u) => new Set(u).size === u.length, 'a username is listed twice'),
  /** Written to `users.locked_reason`. @default "Security incident" (the manual's) */
  reason: z.string().min(1).max(500).default('Security incident'),
  tables: AuditTables,
});
export type LockAccountsOptions = z.output<typeof LockAccountsOptions>;
export type LockAccountsOptionsInput = z.input<typeof LockAccountsOptions>;

/** One account as the plan found it. */
export type AccountBefore = { username: string; status: string; lockedReason: string | null };

/** What a lock plan fixes. */
export type LockAccountsParams = {
  reason: string;
  /** The accounts that change, as they were: what revert restores. */
  accounts: AccountBefore[];
};

const KIND = 'security.lock-accounts';

/**
 * Runbook 12's "disable compromised user accounts": `UPDATE users SET status = 'locked', locked_reason = <reason>
 * WHERE username IN (…)`, reversibly.
 *
 * - **plan** reads each account; every change is `users[username=…].status: active → locked` and its
 *   `locked_reason`. Refused, naming them, when an account does not exist. Accounts already locked with the same
 *   reason are left out.
 * - **verify** reads them back: each must be locked with the reason.
 * - **revert** restores each account's status and reason from the plan, only where the lock is still this one
 *   (an account someone re-locked or unlocked since is left alone).
 *
 * Risk `medium`, not destructive.
 */
export function lockAccounts(
  db: PostgresDatabase,
  options: LockAccountsOptionsInput,
): Action<LockAccountsParams, { locked: number }> {
  const o = parseOptions(KIND, LockAccountsOptions, options);
  const t = quotedTables(o.tables);
  const target = db.ref(o.tables.users);
  const who = listSome(o.usernames);
  return defineAction<LockAccountsParams, { locked: number }>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Lock the accounts ${who}`,

    async plan(ctx) {
      const found = await db.query(
        `SELECT username, status, locked_reason FROM ${t.users} WHERE username = ANY($1::text[]) ORDER BY username`,
        [o.usernames],
        { signal: ctx.signal },
      );
      const known = new Set(found.rows.map((r) => String(r.username)));
      const unknown = o.usernames.filter((u) => !known.has(u));
      if (unknown.length > 0) {
        throw new NonRetriableError(
          `Cannot lock ${plural(unknown.length, 'account')} that ${unknown.length === 1 ? 'does' : 'do'} not exist in ${o.tables.users}: ${unknown.join(', ')}. Check the usernames (they are matched exactly).`,
          { code: 'SECURITY_UNKNOWN_USER', details: { unknown } },
        );
      }
      const accounts: AccountBefore[] = found.rows
        .map((r) => ({
          username: String(r.username),
          status: String(r.status),
          lockedReason: (r.locked_reason as string | null) ?? null,
        }))
        .filter((a) => !(a.status === 'locked' && a.lockedReason === o.reason));
      const changes: Change[] = accounts.flatMap((a) => [
        { target, field: `users[username=${a.username}].status`, before: a.status, after: 'locked' },
        {
          target,
          field: `users[username=${a.username}].locked_reason`,
          before: a.lockedReason,
          after: o.reason,
        },
      ]);
      return {
        summary:
          accounts.length === 0
            ? `${who}: already locked ("${o.reason}")`
            : `Lock ${plural(accounts.length, 'account')} (${listSome(accounts.map((a) => a.username))}): "${o.reason}"`,
        changes,
        params: { reason: o.reason, accounts },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      if (p.accounts.length === 0) return { locked: 0 };
      const result = await db.query(
        `UPDATE ${t.users} SET status = 'locked', locked_reason = $2 WHERE username = ANY($1::text[])`,
        [p.accounts.map((a) => a.username), p.reason],
        { signal: ctx.signal },
      );
      ctx.log(`locked ${result.rowCount ?? 0} account(s)`);
      return { locked: result.rowCount ?? 0 };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const names = p.accounts.map((a) => a.username);
      const rows = await db.query(
        `SELECT username FROM ${t.users} WHERE username = ANY($1::text[]) AND status = 'locked' AND locked_reason = $2`,
        [names, p.reason],
        { signal: ctx.signal },
      );
      const locked = new Set(rows.rows.map((r) => String(r.username)));
      const open = names.filter((n) => !locked.has(n));
      return open.length === 0
        ? finding('ok', `${plural(names.length, 'account')} locked`, { open })
        : finding('fail', `Not locked: ${listSome(open)}`, { open });
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      if (p.accounts.length === 0) return;
      const result = await db.query(
        `UPDATE ${t.users} AS u SET status = b.status, locked_reason = b.locked_reason
           FROM unnest($1::text[], $2::text[], $3::text[]) AS b(username, status, locked_reason)
          WHERE u.username = b.username AND u.status = 'locked' AND u.locked_reason = $4`,
        [
          p.accounts.map((a) => a.username),
          p.accounts.map((a) => a.status),
          p.accounts.map((a) => a.lockedReason),
          p.reason,
        ],
        { signal: ctx.signal },
      );
      ctx.log(`restored ${result.rowCount ?? 0} of ${p.accounts.length} account(s)`);
    },
  });
}
