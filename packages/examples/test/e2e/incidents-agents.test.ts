import { describe, expect, it } from 'vitest';
import { drillLabForFile, findingSummary as finding } from '../support/drill-lab';

// Runbooks 1–3 end to end: the incident injected for real, the manual's alert fired by a real Prometheus
// scraping the lab, delivered by a real Alertmanager to the runbook service, which runs the routed runbook
// (a second identity approves where policy asks); the lab healthy again; the audit chain intact.
const lab = drillLabForFile();

describe('incidents: agents (runbooks 1–3)', () => {
  it('requirements-agent-down → AgentDown → agent-failure restarts the agent', async () => {
    const r = await lab().drill.drill('requirements-agent-down', {
      healthChecks: ['agent requirements-agent'],
    });
    expect(r.alertname).toBe('AgentDown');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'pod-status')).toMatch(/^0\/2 pods ready .*app=requirements-agent.*CrashLoopBackOff/);
    expect(r.run.plans.find((p) => p.step === 'restart')?.summary).toContain('requirements-agent');
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('generation-quality-drop → GenerationAgentLowConfidence → generation-agent-failure clears the stale cache', async () => {
    const r = await lab().drill.drill('generation-quality-drop', { healthChecks: ['generation confidence'] });
    expect(r.alertname).toBe('GenerationAgentLowConfidence');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'decision-logs')).toMatch(/confidence/i);
    expect(finding(r, 'stale-cache')).toMatch(/stale/i);
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('execution-stuck → TestExecutionStuck → execution-agent-failure cancels them and restarts the Grid', async () => {
    const r = await lab().drill.drill('execution-stuck', {
      healthChecks: ['stuck executions', 'selenium grid'],
    });
    expect(r.alertname).toBe('TestExecutionStuck');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'active-executions')).toMatch(/stuck|longer than/i);
    expect(finding(r, 'selenium-grid')).toMatch(/not ready|unreachable/i);
    // The UPDATE of test_executions waits for a second person (service-lab.yaml routes it in "ask" mode).
    expect(r.approvals).toBeGreaterThan(0);
    expect(r.auditOk).toBe(true);
  }, 300_000);
});
