import { describe, expect, it } from 'vitest';
import { drillLabForFile, findingSummary as finding } from '../support/drill-lab';

// End to end: the login attack injected for real (through the backend's login), SecurityIncidentDetected fired
// by a real Prometheus scraping the lab exporter's security_incident_detected, delivered by a real Alertmanager
// to the runbook service, which runs security-breach (the drill's second identity approves the key rotation and
// the backdoor removal); the lab's `security incident` check passes again; the audit chain is intact.
const lab = drillLabForFile();

describe('incidents: security (runbook 12)', () => {
  it('login-attack → SecurityIncidentDetected → security-breach blocks, locks, rotates, removes the backdoor', async () => {
    const r = await lab().drill.drill('login-attack', { healthChecks: ['security incident'] });
    expect(r.alertname).toBe('SecurityIncidentDetected');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'failed-login-bursts')).toMatch(
      /failed logins in \d+ bursts over 10m from .*203\.0\.113\.66/,
    );
    expect(finding(r, 'failed-login-bursts')).toMatch(/successful login from them \(grace\)/);
    expect(finding(r, 'data-access')).toMatch(/grace: 3 data accesses over 24h, 1 export/);
    expect(finding(r, 'changed-files')).toContain('/app/backdoor.py');
    expect(finding(r, 'attack-contained')).toMatch(/failed logins in the last minute get through \(≤ 100\)/);
    // The key rotation (high risk) and the backdoor removal (destructive) each waited for the second person.
    expect(r.approvals).toBeGreaterThanOrEqual(2);
    expect(r.auditOk).toBe(true);
  }, 300_000);
});
