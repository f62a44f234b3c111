import { describe, expect, it } from 'vitest';
import { drillLabForFile, findingSummary as finding } from '../support/drill-lab';

// End to end: the incident injected for real, the manual's alert fired by a real Prometheus
// scraping the lab, delivered by a real Alertmanager to the runbook service, which runs the routed runbook
// (a second identity approves where policy asks); the lab healthy again; the audit chain intact.
const lab = drillLabForFile();

describe('incidents: data (runbooks 4, 5, 9)', () => {
  it('postgres-connection-loss → PostgresDown → postgres-connection-loss restarts PostgreSQL, PgBouncer and the backend', async () => {
    const r = await lab().drill.drill('postgres-connection-loss', {
      healthChecks: ['database', 'pgbouncer pool', 'backend'],
    });
    expect(r.alertname).toBe('PostgresDown');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'pgbouncer-pools')).toMatch(/pgbouncer.*down|no answer/i);
    expect(finding(r, 'postgres-pods')).toMatch(/crash|0\/1/i);
    expect(r.approvals).toBeGreaterThan(0);
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('database-slow → DatabaseSlow → database-performance ends the blocking session', async () => {
    const r = await lab().drill.drill('database-slow', { healthChecks: ['database activity'] });
    expect(r.alertname).toBe('DatabaseSlow');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'active-queries')).toMatch(/test_executions|lock|running/i);
    expect(r.approvals).toBeGreaterThan(0);
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('test-execution-slow → TestExecutionSlow → test-execution-high-latency scales the Selenium nodes', async () => {
    const r = await lab().drill.drill('test-execution-slow', { healthChecks: ['selenium grid'] });
    expect(r.alertname).toBe('TestExecutionSlow');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'grid-capacity')).toMatch(/saturated|busy/i);
    expect(r.auditOk).toBe(true);
  }, 300_000);
});
