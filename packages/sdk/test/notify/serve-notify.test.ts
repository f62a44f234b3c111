import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/server/identity';
import {
  type PagerDutyDouble,
  type SlackDouble,
  startPagerDutyDouble,
  startSlackDouble,
} from '../../src/testing/notify';
import { tempDir } from '../cli/harness';

// `runbook serve` with a `notify:` section, as operators run it (the real CLI entry in a child process): an
// escalated run pages level 1 on the PagerDuty double at once and level 2 on its timer, #incidents gets the
// runbook's message and the escalation's, and no routing key or webhook URL ever reaches the service's log.
const sdk = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(sdk, 'node_modules', '.bin', 'tsx');
const main = join(sdk, 'src', 'cli', 'main.ts');
const FIXTURE = fileURLToPath(new URL('./fixtures/escalating.ts', import.meta.url));
const TOKEN = 'serve-notify-admin-token';
const KEYS = { primary: 'P'.repeat(32), backup: 'B'.repeat(32), senior: 'S'.repeat(32) };
const WEBHOOK_SECRET = 'pagerduty-webhook-signing-secret';

const dir = tempDir('serve-notify');
let pd: PagerDutyDouble;
let slack: SlackDouble;
let child: ChildProcessWithoutNullStreams | undefined;
let output = '';

beforeAll(async () => {
  [pd, slack] = await Promise.all([startPagerDutyDouble({ routingKeys: KEYS }), startSlackDouble()]);
});
afterAll(async () => {
  // SIGTERM, which tsx forwards to the service (a SIGKILL of tsx would leave the service running).
  if (child && child.exitCode === null) {
    const closed = new Promise((resolve) => child?.once('close', resolve));
    child.kill('SIGTERM');
    await closed;
  }
  await Promise.all([pd.close(), slack.close()]);
  dir.dispose();
});

async function until(what: string, probe: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('runbook serve with notify:', () => {
  it('pages the escalation levels of an escalated run and keeps the secrets out of its log', async () => {
    const tokens = join(dir.path, 'tokens.json');
    writeFileSync(
      tokens,
      JSON.stringify({ tokens: [{ name: 'ci', sha256: hashToken(TOKEN), role: 'admin' }] }),
    );
    const config = join(dir.path, 'service.yaml');
    writeFileSync(
      config,
      [
        'notify:',
        '  pagerduty:',
        '    url: { env: PAGERDUTY_EVENTS_URL }',
        '    routingKeys:',
        '      primary: { env: PD_PRIMARY }',
        '      backup: { env: PD_BACKUP }',
        '      senior: { env: PD_SENIOR }',
        '    webhookSecret: { env: PD_WEBHOOK_SECRET }',
        '  slack:',
        '    webhooks:',
        '      "#incidents": { env: SLACK_WEBHOOK_URL }',
        '  escalation:',
        '    levels:',
        '      - { name: primary, team: primary }',
        '      - { name: backup, team: backup, after: 2s }',
        '      - { name: senior, team: senior, after: 5s }',
      ].join('\n'),
    );
    child = spawn(
      tsx,
      [
        main,
        'serve',
        '--port',
        '0',
        '--config',
        config,
        '--tokens-file',
        tokens,
        '--data-dir',
        join(dir.path, 'store'),
      ],
      {
        cwd: sdk,
        env: {
          ...process.env,
          RUNBOOK_MODULES: FIXTURE,
          PAGERDUTY_EVENTS_URL: pd.url,
          PD_PRIMARY: KEYS.primary,
          PD_BACKUP: KEYS.backup,
          PD_SENIOR: KEYS.senior,
          PD_WEBHOOK_SECRET: WEBHOOK_SECRET,
          SLACK_WEBHOOK_URL: slack.webhookUrl('#incidents'),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    await until('the service to listen', () => /runbook service listening on http/.test(output), 60_000);
    const base = /runbook service listening on (http:\/\/\S+)/.exec(output)?.[1] ?? '';

    const response = await fetch(`${base}/api/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ runbookId: 'page-on-call', input: { service: 'checkout' }, mode: 'execute' }),
    });
    expect(response.status).toBeLessThan(300);
    const { runId } = (await response.json()) as { runId: string };
    const triggers = () => pd.events.filter((e) => e.action === 'trigger' && e.status === 202);
    await until('primary paged', () => triggers().length >= 1);
    const primaryAt = triggers()[0]?.at ?? 0;
    expect(triggers().map((e) => [e.routedTo, e.dedupKey])).toEqual([['primary', `${runId}:primary`]]);
    await until('backup paged', () => triggers().length >= 2, 10_000);
    expect(triggers().map((e) => e.routedTo)).toEqual(['primary', 'backup']);
    expect((triggers()[1]?.at ?? 0) - primaryAt).toBeGreaterThanOrEqual(1_900);
    expect(slack.posted('#incidents').map((m) => m.text)).toEqual([
      `[P1] page-on-call: checkout is down (run ${runId})`,
      ':rotating_light: Incident opened: [P1 High] page-on-call: checkout does not recover: page on-call. Paging on-call.',
    ]);

    // The on-call engineer acknowledges the backup's page in PagerDuty, whose webhook reaches the service: the
    // senior engineer (at 5 s) is never paged.
    const api = (method: string, path: string) =>
      fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
    pd.subscribe({ url: `${base}/api/v1/incidents/pagerduty`, secret: WEBHOOK_SECRET });
    const acked = await pd.act(`${runId}:backup`, 'acknowledge', { by: 'Dana' });
    expect(acked).toEqual([
      { status: 200, body: { status: 'acknowledged', incident: runId, level: 'backup' } },
    ]);
    expect(await (await api('POST', `/incidents/${runId}/acknowledge`)).json()).toMatchObject({
      key: runId,
      acknowledgedBy: 'pagerduty:Dana',
      severity: 'P1',
    });
    await new Promise((r) => setTimeout(r, 4_000));
    expect(triggers().map((e) => e.routedTo)).toEqual(['primary', 'backup']);
    expect(pd.incident(`${runId}:primary`, 'primary')?.status).toBe('acknowledged');
    expect((await api('POST', `/incidents/${runId}/resolve`)).status).toBe(200);
    expect(pd.incident(`${runId}:primary`, 'primary')?.status).toBe('resolved');
    expect((await api('POST', '/incidents/no-such-run/acknowledge')).status).toBe(404);
    const listed = (await (await api('GET', '/incidents')).json()) as {
      incidents: { key: string; resolvedBy?: string }[];
    };
    expect(listed.incidents).toEqual([expect.objectContaining({ key: runId, resolvedBy: 'ci' })]);
    // The decisions are in the run's audit, where its timeline and report read them.
    const audit = (await (await api('GET', `/audit?runId=${runId}`)).json()) as {
      entries: { entry: { kind: string } }[];
    };
    expect(audit.entries.map((e) => e.entry.kind)).toEqual(
      expect.arrayContaining(['escalation.acknowledged', 'escalation.resolved']),
    );

    expect(output).not.toContain(KEYS.primary);
    expect(output).not.toContain(WEBHOOK_SECRET);
    expect(output).not.toContain(new URL(slack.webhookUrl('#incidents')).pathname);
  }, 120_000);
});
