/**
 * `security_incident_detected` (runbook 12's alert, `security_incident_detected == 1`): 1 while more than 100
 * failed logins a minute (the manual's threshold) come from addresses that are not blocked. Blocking the
 * attackers' addresses ends it at once: what they still send is refused before it reaches the login.
 */
import { ipBlocklist } from '@aiwebtest/runbooks/security';
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { boundedQueryable } from '../bounded-query';
import type { Queryable } from '../database/database-metrics';
import type { LabParts } from '../lab-parts';
import { podsMatching } from '../platform/platform-status';
import { BACKDOOR_PATH } from './login-attack';

/** Failed logins a minute above which an attack is on (the manual's "Failed login attempts >100 per minute"). */
export const FAILED_LOGINS_PER_MINUTE = 100;

/** Failed logins of the last minute from addresses not on the blocklist. */
export async function unblockedFailedLogins(db: Queryable, redis: Redis): Promise<number> {
  const { rows } = await db.query<{ ip_address: string | null; n: number }>(
    `SELECT ip_address, count(*)::int AS n FROM audit_logs
      WHERE action = 'login_failed' AND created_at > now() - interval '1 minute' GROUP BY ip_address`,
  );
  const blocklist = ipBlocklist(redis, { cacheTtl: 0 });
  let total = 0;
  for (const r of rows) if (r.ip_address === null || !(await blocklist.isBlocked(r.ip_address))) total += r.n;
  return total;
}

/** Registers `security_incident_detected` on the lab exporter. */
export function registerSecurityMetrics(registry: Registry, db: Queryable, redis: Redis): void {
  new Gauge({
    name: 'security_incident_detected',
    help: `1 while more than ${FAILED_LOGINS_PER_MINUTE} failed logins a minute come from addresses not blocked (runbook 12), else 0.`,
    registers: [registry],
    async collect() {
      try {
        this.set((await unblockedFailedLogins(db, redis)) > FAILED_LOGINS_PER_MINUTE ? 1 : 0);
      } catch {
        // The database or Redis did not answer: the last value stands (lab_exporter_source_up says why).
      }
    },
  });
}

/**
 * The lab health check of runbook 12, `security incident`: fails while the attack goes on unblocked (more than
 * 100 failed logins a minute from addresses not blocked) or a backdoor file is in a backend pod.
 */
export async function securityCheck(
  parts: LabParts,
  timeoutMs: number,
): Promise<{ name: string; ok: boolean; detail: string }> {
  const name = 'security incident';
  try {
    const failed = await unblockedFailedLogins(boundedQueryable(parts.pool, timeoutMs), parts.redis);
    const backdoors = podsMatching(parts.simulator.store, parts.namespace, { app: 'backend' }).filter((p) =>
      parts.simulator.files(parts.namespace, p.metadata.name).has(BACKDOOR_PATH),
    );
    const problems = [
      ...(failed > FAILED_LOGINS_PER_MINUTE
        ? [`${failed} failed logins in the last minute from addresses not blocked (runbook 12: block them)`]
        : []),
      ...backdoors.map((p) => `${BACKDOOR_PATH} in pod ${p.metadata.name} (runbook 12: remove it)`),
    ];
    return problems.length === 0
      ? {
          name,
          ok: true,
          detail: `${failed} failed logins in the last minute from addresses not blocked; no backdoor`,
        }
      : { name, ok: false, detail: problems.join('; ') };
  } catch (e) {
    return {
      name,
      ok: false,
      detail: `could not read audit_logs or the blocklist: ${(e as Error).message?.split('\n')[0]}`,
    };
  }
}
