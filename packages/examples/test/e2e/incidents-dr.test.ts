import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { AFTER_RECORD_MARKER } from '../../src/lab/dr/total-failure';
import { drillLabForFile, findingSummary as finding } from '../support/drill-lab';

// End to end, disaster recovery: `aiwebtest-lab up` with the lab's own PostgreSQL (WAL archive, base backup)
// and Redis (RDB snapshots); the complete failure injected for real; SystemDown fired by Prometheus from
// system_health, delivered by Alertmanager to the runbook service, which runs system-failure (a second
// identity approves the restores and the redeploy); every service healthy again, the data back at the
// pre-incident point.
const lab = drillLabForFile({ disasterRecovery: true });

describe('incidents: disaster recovery (runbook 13)', () => {
  it('total-failure → SystemDown → system-failure restores PostgreSQL to the pre-incident point and Redis, and redeploys', async () => {
    const { up, drill } = lab();
    const dr = up.lab.disasterRecovery;
    if (!dr) throw new Error('the drill lab has no disaster recovery');
    await up.lab.redis.set('aiwebtest:lab:dr-e2e', 'kept');

    const r = await drill.drill('total-failure', {
      healthChecks: ['platform workloads', 'database', 'backend', 'redis'],
      timeoutMs: 150_000,
    });
    const seconds = (ms: number) => (ms / 1000).toFixed(1);
    console.info(
      `total-failure MTTR (s from injection): detect ${seconds(r.detectMs)}, diagnose ${seconds(r.diagnoseMs)}, recover ${seconds(r.recoverMs)}, verify ${seconds(r.verifyMs)}; ${r.approvals} approvals`,
    );
    expect(r.alertname).toBe('SystemDown');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'database-server')).toMatch(/fails/);
    expect(finding(r, 'pre-incident-record')).toMatch(/^last record before the incident: users \d+/);
    expect(finding(r, 'restored-counts')).toMatch(
      /^counts on the restored server .* match the pre-incident record/,
    );
    expect(finding(r, 'data-integrity')).toMatch(/match the pre-incident record/);
    expect(r.approvals).toBeGreaterThanOrEqual(4);
    expect(r.auditOk).toBe(true);

    // The rows written after the record did not come back; the Redis key written before did.
    const client = new pg.Client({ connectionString: up.lab.env.databaseUrl, query_timeout: 5_000 });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM test_executions WHERE error_message = $1',
        [AFTER_RECORD_MARKER],
      );
      expect(rows[0]?.n).toBe('0');
    } finally {
      await client.end();
    }
    expect(await up.lab.redis.get('aiwebtest:lab:dr-e2e')).toBe('kept');
  }, 240_000);
});
