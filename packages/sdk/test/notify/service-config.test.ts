import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotifyConfig, notifierFromConfig, runDedupKey } from '../../src/notify';
import { readServiceConfig } from '../../src/server/service-config';
import {
  type PagerDutyDouble,
  type SlackDouble,
  startPagerDutyDouble,
  startSlackDouble,
} from '../../src/testing/notify';

const KEYS = { primary: '1'.repeat(32), backup: '2'.repeat(32), security: '3'.repeat(32) };

describe('the service config notify: section', () => {
  let pd: PagerDutyDouble;
  let slack: SlackDouble;
  let dir: string;
  beforeAll(async () => {
    [pd, slack] = await Promise.all([startPagerDutyDouble({ routingKeys: KEYS }), startSlackDouble()]);
    dir = mkdtempSync(join(tmpdir(), 'notify-config-'));
  });
  afterAll(async () => {
    await Promise.all([pd.close(), slack.close()]);
  });

  const write = (yaml: string) => {
    const path = join(dir, `service-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, yaml);
    return path;
  };

  it('reads secrets from env and files, and pages escalations through the escalator', async () => {
    const keyFile = join(dir, 'security-key');
    writeFileSync(keyFile, `${KEYS.security}\n`);
    const config = readServiceConfig(
      write(`
notify:
  pagerduty:
    url: { env: PAGERDUTY_EVENTS_URL }
    routingKeys:
      primary: { env: PD_PRIMARY }
      backup: { env: PD_BACKUP }
      security: { file: ${keyFile} }
  slack:
    webhooks:
      "#incidents": { env: SLACK_WEBHOOK_URL }
  escalation:
    levels:
      - { name: primary, team: primary }
      - { name: backup, team: backup, after: 15m }
`),
    );
    const env = {
      PAGERDUTY_EVENTS_URL: pd.url,
      PD_PRIMARY: KEYS.primary,
      PD_BACKUP: KEYS.backup,
      SLACK_WEBHOOK_URL: slack.webhookUrl('#incidents'),
    };
    const wiring = notifierFromConfig(config.notify ?? { slack: { webhooks: {} } }, env);
    expect(wiring.notifier.channels).toEqual([
      'pager:primary',
      'pager:backup',
      'pager:security',
      'pager',
      'slack:#incidents',
    ]);
    expect(wiring.secrets).toEqual(
      expect.arrayContaining([KEYS.primary, KEYS.security, env.SLACK_WEBHOOK_URL]),
    );

    await wiring.notifier.notify({
      kind: 'escalate',
      channel: 'pager',
      runId: 'r9',
      runbookId: 'agent-failure',
      message: 'agent down',
      severity: 'P1',
    });
    await wiring.notifier.notify({
      kind: 'notify',
      channel: 'pager:security',
      runId: 'r9',
      runbookId: 'security-breach',
      message: 'login attack',
      severity: 'P0',
    });
    expect(pd.events.map((e) => [e.routedTo, e.dedupKey])).toEqual([
      ['primary', 'r9:primary'],
      ['security', runDedupKey('r9', 'notify', 'login attack')],
    ]);
    expect(wiring.escalator?.incident('r9')?.paged).toHaveProperty('primary');
    // The escalation's status updates go to #incidents (P1 opens with a line there).
    await wiring.escalator?.settled();
    expect(slack.posted('#incidents').map((m) => m.text)).toEqual([
      expect.stringContaining('Incident opened: [P1 High] agent-failure: agent down'),
    ]);
  });

  it('names the missing secret, never a value, and refuses inline secrets', () => {
    const config = readServiceConfig(
      write(`
notify:
  pagerduty:
    routingKeys:
      default: { env: PD_DEFAULT }
`),
    );
    expect(() => notifierFromConfig(config.notify ?? {}, {})).toThrow(
      'notify.pagerduty.routingKeys.default: environment variable PD_DEFAULT is empty or not set.',
    );
    expect(() =>
      readServiceConfig(
        write(`
notify:
  pagerduty:
    routingKeys:
      default: ${KEYS.primary}
`),
      ),
    ).toThrow(/notify\.pagerduty\.routingKeys\.default/);
    const inline = (() => {
      try {
        readServiceConfig(write(`notify: { pagerduty: { routingKeys: { default: ${KEYS.primary} } } }`));
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(inline).not.toContain(KEYS.primary);
  });

  it('refuses a Slack webhook URL written inline, and reads the PagerDuty webhook secret as a secret', () => {
    const url = 'https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX';
    const inline = (() => {
      try {
        readServiceConfig(write(`notify: { slack: { webhooks: { "#incidents": "${url}" } } }`));
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(inline).toContain('notify.slack.webhooks.#incidents');
    expect(inline).not.toContain('XXXXXXXXXXXXXXXXXXXXXXXX');

    const config = readServiceConfig(
      write(`
notify:
  pagerduty:
    routingKeys: { primary: { env: PD_PRIMARY } }
    webhookSecret: { env: PD_WEBHOOK_SECRET }
  escalation:
    levels: [{ name: primary, team: primary }]
`),
    );
    const wiring = notifierFromConfig(config.notify ?? {}, {
      PD_PRIMARY: KEYS.primary,
      PD_WEBHOOK_SECRET: 'webhook-signing-secret',
    });
    expect(wiring.secrets).toContain('webhook-signing-secret');
    expect(wiring.escalator?.acceptsPagerDutyWebhooks).toBe(true);
    expect(() => notifierFromConfig(config.notify ?? {}, { PD_PRIMARY: KEYS.primary })).toThrow(
      'notify.pagerduty.webhookSecret: environment variable PD_WEBHOOK_SECRET is empty or not set.',
    );
    expect(() =>
      notifierFromConfig(
        { pagerduty: { routingKeys: { primary: { env: 'PD_PRIMARY' } }, webhookSecret: { env: 'S' } } },
        { PD_PRIMARY: KEYS.primary, S: 'x' },
      ),
    ).toThrow('notify.pagerduty.webhookSecret: PagerDuty webhooks report to the escalator');
  });

  it('keeps escalations in a state file: a restarted service pages on and never pages a level twice', async () => {
    const stateFile = join(dir, 'escalations.json');
    const notify = NotifyConfig.parse({
      pagerduty: {
        url: pd.url,
        routingKeys: { primary: { env: 'PD_PRIMARY' }, backup: { env: 'PD_BACKUP' } },
      },
      escalation: {
        name: 'fast',
        acknowledgeWithin: 100,
        levels: [
          { name: 'primary', team: 'primary', after: 0, severities: ['P1'], stopsOn: 'acknowledge' },
          { name: 'backup', team: 'backup', after: 300, severities: ['P1'], stopsOn: 'acknowledge' },
        ],
        statusUpdates: { every: 60_000, severities: ['P1'] },
      },
      escalationStateFile: stateFile,
    });
    const env = { PD_PRIMARY: KEYS.primary, PD_BACKUP: KEYS.backup };
    const first = notifierFromConfig(notify, env);
    await first.notifier.notify({
      kind: 'escalate',
      channel: 'pager',
      runId: 'r-state',
      runbookId: 'rb',
      message: 'down',
      severity: 'P1',
    });
    await first.escalator?.settled();
    const byRun = () => pd.events.filter((e) => e.dedupKey?.startsWith('r-state:')).map((e) => e.routedTo);
    expect(byRun()).toEqual(['primary']);
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).incidents[0]).toMatchObject({
      key: 'r-state',
      paged: { primary: expect.any(String) },
    });

    // The service restarts before the backup is due: the new escalator knows the incident.
    const second = notifierFromConfig(notify, env);
    await second.notifier.notify({
      kind: 'escalate',
      channel: 'pager',
      runId: 'r-state',
      runbookId: 'rb',
      message: 'down',
      severity: 'P1',
    });
    await new Promise((r) => setTimeout(r, 350));
    await second.escalator?.tick();
    expect(byRun()).toEqual(['primary', 'backup']);
  });

  it('the example in SERVICE.md is a valid service config', () => {
    const markdown = readFileSync(new URL('../../SERVICE.md', import.meta.url), 'utf8');
    const yaml = /## Notifications out[\s\S]*?```yaml\n([\s\S]*?)```/.exec(markdown)?.[1] ?? '';
    const config = readServiceConfig(write(yaml));
    expect(Object.keys(config.notify?.pagerduty?.routingKeys ?? {})).toEqual([
      'default',
      'security',
      'primary',
      'backup',
    ]);
    expect(config.notify?.escalation).toMatchObject({
      levels: [{ name: 'primary' }, { name: 'backup', after: '15m' }],
    });
  });

  it('refuses an escalation whose levels have no routing key', () => {
    const config = readServiceConfig(
      write(`
notify:
  pagerduty:
    routingKeys:
      default: { env: PD_DEFAULT }
  escalation: true
`),
    );
    expect(() => notifierFromConfig(config.notify ?? {}, { PD_DEFAULT: KEYS.primary })).toThrow(
      'notify.escalation: no routing key for team(s) primary, backup, senior, manager, cto',
    );
  });
});
