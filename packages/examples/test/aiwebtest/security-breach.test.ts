import { DEFAULT_BLOCKLIST_KEY } from '@aiwebtest/runbooks/security';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecurityBreachRunbook } from '../../src/aiwebtest/security-breach';
import { labHealth } from '../../src/lab/lab-health';
import { createLabMetrics } from '../../src/lab/lab-metrics';
import { podsMatching } from '../../src/lab/platform/platform-status';
import { type Injected, SCENARIO_CATALOG } from '../../src/lab/scenarios';
import { labPasswordOf } from '../../src/lab/security/backend-guard';
import { OPENROUTER_SECRET_PATH } from '../../src/lab/security/lab-vault';
import { ATTACKER_IPS, BACKDOOR_PATH, COMPROMISED_USER } from '../../src/lab/security/login-attack';
import { resultOf, said, stepsOf } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';

// Runbook 12 against the real lab: the attack goes through the real backend's login (audit_logs in the real
// PostgreSQL), the blocklist is in the real Redis and enforced by the backend, the secret is rotated in the
// Vault double, the backdoor lives in a simulated pod's files and is found and removed through pods/exec.

let harness: RunbookLab;
let attack: Injected | undefined;

beforeAll(async () => {
  harness = await startRunbookLab(createSecurityBreachRunbook);
}, 90_000);
afterAll(async () => {
  await attack?.undo();
  await harness?.close();
});

const login = (ip: string, username: string, password: string) =>
  fetch(`${harness.lab.backend.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ username, password }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: { code: string } } }));

/** `security_incident_detected` as the lab exporter serves it to Prometheus. */
const incidentMetric = async () => {
  const text = await createLabMetrics(harness.lab).getSingleMetricAsString('security_incident_detected');
  return Number(/^security_incident_detected (\d+)$/m.exec(text)?.[1]);
};

const securityCheck = async () =>
  (await labHealth(harness.lab)).checks.find((c) => c.name === 'security incident');

describe('security-breach', () => {
  it('on a quiet lab finds no burst and changes nothing', async () => {
    const run = await harness.engine.start('security-breach', {}, { mode: 'execute', actor: 'alertmanager' });
    expect(run.status).toBe('succeeded');
    expect(said(run)).toMatch(/^no failed-login burst \(No failed-login burst over 10m/);
    expect((await securityCheck())?.ok).toBe(true);
    expect(await incidentMetric()).toBe(0);
  });

  it('contains the login attack, rotates the key and removes the backdoor after approvals', async () => {
    const { lab, engine } = harness;
    attack = await SCENARIO_CATALOG['login-attack'].inject(lab);
    const backend = podsMatching(lab.simulator.store, lab.namespace, { app: 'backend' }).map(
      (p) => p.metadata.name,
    );
    const infected = backend.find((pod) => lab.simulator.files(lab.namespace, pod).has(BACKDOOR_PATH));
    expect(infected).toBeDefined();
    expect(await securityCheck()).toMatchObject({ ok: false });
    expect(await incidentMetric()).toBe(1);
    const oldKey = lab.vault?.read(OPENROUTER_SECRET_PATH)?.api_key;
    // Bursts whose address was recorded as text no blocklist can take: another service writing "unknown", or the
    // whole X-Forwarded-For list. They are reported, and do not stop the containment.
    await lab.pool.query(
      `INSERT INTO audit_logs (username, action, resource, ip_address, success, created_at)
       SELECT 'alice', 'login_failed', 'auth', ip, false, now() - interval '3 minutes'
         FROM unnest($1::text[]) AS ip, generate_series(1, 12)`,
      [['unknown', '203.0.113.80, 10.0.0.1']],
    );

    const started = await engine.start(
      'security-breach',
      { namespace: 'aiwebtest' },
      { mode: 'execute', actor: 'alertmanager' },
    );
    // Blocked and locked at once; the key rotation (high risk) waits for a second person.
    expect(started.status).toBe('waiting_approval');
    // Security was paged right after the diagnosis, before anything that can wait or fail.
    const early = await stepsOf(engine, started.runId);
    expect([...early.keys()].slice(0, 5)).toEqual([
      'security-metric',
      'recent-audit-activity',
      'failed-login-bursts',
      'page-security',
      'block-ips',
    ]);
    const page = resultOf<{ channel: string; severity: string; message: string }>(early, 'page-security');
    expect(page).toMatchObject({ channel: 'pager:security', severity: 'P0' });
    expect(page.message).toMatch(/^Security incident in aiwebtest: \d+ failed logins in \d+ bursts over 10m/);
    expect(page.message).toContain(
      `; not blockable (no address or block as recorded): "203.0.113.80, 10.0.0.1", "unknown". Containment follows: block ${[...ATTACKER_IPS].sort().join(', ')} for 1h; lock ${COMPROMISED_USER}; rotate secret/api/openrouter (waits for a second person's approval).`,
    );
    const blocked = await lab.redis.zrangebyscore(DEFAULT_BLOCKLIST_KEY, Date.now(), '+inf');
    expect(blocked.sort()).toEqual([...ATTACKER_IPS].sort());
    expect((await login(ATTACKER_IPS[0], COMPROMISED_USER, labPasswordOf(COMPROMISED_USER))).status).toBe(
      403,
    );
    expect(await login('192.0.2.10', COMPROMISED_USER, labPasswordOf(COMPROMISED_USER))).toEqual({
      status: 403,
      body: { error: { code: 'ACCOUNT_LOCKED', message: `The account ${COMPROMISED_USER} is locked.` } },
    });
    // Blocking the addresses ends the metric at once; the backdoor still fails the health check.
    expect(await incidentMetric()).toBe(0);
    expect((await securityCheck())?.detail).toContain(`${BACKDOOR_PATH} in pod ${infected}`);

    await engine.approve(started.runId, { actor: 'security-lead' });
    const second = await engine.resume(started.runId);
    // The backdoor removal is destructive: the exact path waits for approval.
    expect(second.status).toBe('waiting_approval');
    expect(lab.vault?.versions(OPENROUTER_SECRET_PATH).map((v) => v.version)).toEqual([1, 2]);
    expect(lab.vault?.read(OPENROUTER_SECRET_PATH)?.api_key).not.toBe(oldKey);
    const steps = await stepsOf(engine, started.runId);
    const scan = resultOf<{ data: { files: { pod: string; path: string }[] } }>(steps, 'changed-files');
    expect(scan.data.files).toEqual([{ pod: infected, path: BACKDOOR_PATH }]);

    await engine.approve(started.runId, { actor: 'security-lead' });
    const done = await engine.resume(started.runId);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(said(done)).toMatch(
      /^blocked 3 address\(es\) for 1h, locked 1 account\(s\), rotated secret\/api\/openrouter, removed 1 changed file\(s\), strict rate limiting on; \d+ failed logins in the last minute get through \(≤ 100\); not blockable \(no address or block as recorded\): "203\.0\.113\.80, 10\.0\.0\.1", "unknown"$/,
    );
    expect(lab.simulator.files(lab.namespace, infected as string).has(BACKDOOR_PATH)).toBe(false);
    const deployment = await harness.platform.k8s.cluster.apps.readNamespacedDeployment({
      name: 'backend',
      namespace: 'aiwebtest',
    });
    expect(deployment.spec?.template.spec?.containers[0]?.env).toEqual(
      expect.arrayContaining([
        { name: 'RATE_LIMIT_STRICT', value: 'true' },
        { name: 'RATE_LIMIT_GLOBAL', value: '10' },
      ]),
    );

    const all = await stepsOf(engine, started.runId);
    expect([...all.keys()]).toEqual([
      'security-metric',
      'recent-audit-activity',
      'failed-login-bursts',
      'page-security',
      'block-ips',
      'lock-accounts',
      'rotate-openrouter-key',
      'breach-scope',
      'data-access',
      'changed-files',
      `remove-files-${infected}`,
      'strict-rate-limit',
      'attack-contained',
    ]);
    expect(resultOf<{ status: string }>(all, 'data-access').status).toBe('fail'); // the export
    // No secret anywhere in the stored run: neither key, nor the Vault token.
    const stored = JSON.stringify([...all.values()]);
    expect(stored).not.toContain(oldKey);
    expect(stored).not.toContain(lab.vault?.read(OPENROUTER_SECRET_PATH)?.api_key);
    expect(stored).not.toContain(lab.env.vaultToken);

    expect(await securityCheck()).toMatchObject({ ok: true });
    expect((await engine.verifyAudit()).ok).toBe(true);
  }, 120_000);
});
