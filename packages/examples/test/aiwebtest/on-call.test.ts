import { join } from 'node:path';
import { notifierFromConfig, runDedupKey } from '@aiwebtest/runbooks/notify';
import { readServiceConfig } from '@aiwebtest/runbooks/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AIWEBTEST_ON_CALL_POLICY,
  AIWEBTEST_SEVERITIES,
  compressedOnCallPolicy,
  ON_CALL_CHANNELS,
} from '../../src/aiwebtest/on-call';
import { SECURITY_PAGER_CHANNEL } from '../../src/aiwebtest/security-breach';
import {
  type LabNotifications,
  labNotifyVariables,
  startLabNotifications,
} from '../../src/lab/notify/lab-notify';

const SERVICE_LAB = join(import.meta.dirname, '../../prometheus/service-lab.yaml');
const MIN = 60_000;

describe('the on-call procedure of AI-Web-Test', () => {
  it('has the manual’s severities and response times', () => {
    expect(
      Object.values(AIWEBTEST_SEVERITIES).map((s) => [
        s.severity,
        s.name,
        s.responseTimeMs / MIN,
        s.examples.join(', '),
      ]),
    ).toEqual([
      ['P0', 'Critical', 5, 'All services down, Database corrupted'],
      ['P1', 'High', 15, 'Agent failures, API errors >10%'],
      ['P2', 'Medium', 30, 'High latency, Model accuracy drop'],
      ['P3', 'Low', 60, 'Slow queries, UI glitches'],
    ]);
  });

  it('escalates primary → backup (15 min) → senior (P0/P1, 30 min) → manager (P0, 2 h) → CTO (P0, 4 h)', () => {
    const policy = AIWEBTEST_ON_CALL_POLICY;
    expect(policy.acknowledgeWithin).toBe('5m');
    expect(policy.levels.map((l) => [l.name, l.team, l.after, l.severities.join('/'), l.stopsOn])).toEqual([
      ['primary', 'primary', 0, 'P0/P1/P2/P3', 'acknowledge'],
      ['backup', 'backup', '15m', 'P0/P1/P2/P3', 'acknowledge'],
      ['senior', 'senior', '30m', 'P0/P1', 'acknowledge'],
      ['manager', 'manager', '2h', 'P0', 'resolve'],
      ['cto', 'cto', '4h', 'P0', 'resolve'],
    ]);
    expect(policy.statusUpdates).toEqual({ every: '30m', severities: ['P0', 'P1'] });
  });

  it('compresses time for drills, keeping the order of the levels', () => {
    const fast = compressedOnCallPolicy(900);
    expect(fast.levels.map((l) => l.after)).toEqual([0, 1_000, 2_000, 8_000, 16_000]);
    expect(fast.acknowledgeWithin).toBe(333);
    expect(fast.statusUpdates.every).toBe(2_000);
    expect(() => compressedOnCallPolicy(0.5)).toThrow(/at least 1/);
  });

  describe('the lab service config delivers every channel the pack uses', () => {
    let notifications: LabNotifications;
    beforeAll(async () => {
      notifications = await startLabNotifications();
    });
    afterAll(() => notifications.close());

    it('pager (escalated), pager:security, slack:#incidents and statuspage reach the lab doubles', async () => {
      const config = readServiceConfig(SERVICE_LAB);
      const wiring = notifierFromConfig(
        config.notify ?? {},
        labNotifyVariables({
          pagerDutyUrl: notifications.pagerDuty.url,
          slackWebhookUrl: notifications.slack.webhookUrl('#incidents'),
          statusPageUrl: notifications.statusPage.url,
        }),
      );
      expect(SECURITY_PAGER_CHANNEL).toBe(ON_CALL_CHANNELS.security);
      const base = { runId: 'run-1', runbookId: 'security-breach', severity: 'P0' as const };
      await wiring.notifier.notify({
        ...base,
        kind: 'escalate',
        channel: ON_CALL_CHANNELS.onCall,
        message: 'login attack continues',
      });
      await wiring.notifier.notify({
        ...base,
        kind: 'notify',
        channel: ON_CALL_CHANNELS.security,
        message: 'login attack',
      });
      await wiring.notifier.notify({
        ...base,
        kind: 'notify',
        channel: ON_CALL_CHANNELS.incidents,
        message: 'blocking IPs',
      });
      await wiring.notifier.notify({
        ...base,
        kind: 'notify',
        channel: ON_CALL_CHANNELS.statusPage,
        message: 'Login degraded',
      });
      await wiring.escalator?.settled();
      expect(notifications.pagerDuty.events.map((e) => [e.routedTo, e.dedupKey, e.severity])).toEqual([
        ['primary', 'run-1:primary', 'critical'],
        ['security', runDedupKey('run-1', 'notify', 'login attack'), 'critical'],
      ]);
      expect(notifications.slack.posted('#incidents').map((m) => m.text)).toEqual([
        ':rotating_light: Incident opened: [P0 Critical] security-breach: login attack continues. Paging on-call.',
        '[P0] security-breach: blocking IPs (run run-1)',
      ]);
      // One status page incident from the escalation (P0 opens one), one from the runbook's own notification.
      expect(notifications.statusPage.incidents().map((i) => [i.name, i.impact])).toEqual([
        ['security-breach: login attack continues', 'critical'],
        ['Login degraded', 'critical'],
      ]);
    });
  });
});
