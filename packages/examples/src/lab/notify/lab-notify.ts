/**
 * The lab's paging, chat and status page: the SDK's PagerDuty, Slack and Statuspage doubles, with routing keys
 * for every on-call team. The keys are the lab's own (the doubles accept any 32-character key): they stand for
 * the secrets a production service reads from its environment.
 */
import {
  type PagerDutyDouble,
  type SlackDouble,
  type StatusPageDouble,
  startPagerDutyDouble,
  startSlackDouble,
  startStatusPageDouble,
} from '@aiwebtest/runbooks/testing';
import { ON_CALL_TEAMS } from '../../aiwebtest/on-call';

/** The lab's PagerDuty routing key of a team: 32 characters, like PagerDuty's integration keys. */
export function labRoutingKey(team: string): string {
  return `lab-${team}-routing-key`.padEnd(32, '0').slice(0, 32);
}

/** The lab's routing keys by team, `default` (the `pager` channel without escalation) included. */
export const LAB_ROUTING_KEYS: Readonly<Record<string, string>> = Object.fromEntries(
  ['default', ...ON_CALL_TEAMS].map((team) => [team, labRoutingKey(team)]),
);

/** The lab's status page id and API key. */
export const LAB_STATUS_PAGE = { pageId: 'aiwebtest', apiKey: 'lab-statuspage-api-key' } as const;

/** The lab's notification doubles. */
export interface LabNotifications {
  pagerDuty: PagerDutyDouble;
  slack: SlackDouble;
  statusPage: StatusPageDouble;
  close(): Promise<void>;
}

/** Starts the three doubles (a few milliseconds). */
export async function startLabNotifications(): Promise<LabNotifications> {
  const [pagerDuty, slack, statusPage] = await Promise.all([
    startPagerDutyDouble({ routingKeys: { ...LAB_ROUTING_KEYS } }),
    startSlackDouble({ channels: ['#incidents'] }),
    startStatusPageDouble(LAB_STATUS_PAGE),
  ]);
  return {
    pagerDuty,
    slack,
    statusPage,
    close: async () => {
      await Promise.all([pagerDuty.close(), slack.close(), statusPage.close()]);
    },
  };
}

/**
 * The environment variables `prometheus/service-lab.yaml`'s `notify:` section reads: the doubles' URLs (from
 * lab.json) and the lab's keys.
 */
export function labNotifyVariables(env: {
  pagerDutyUrl?: string | undefined;
  slackWebhookUrl?: string | undefined;
  statusPageUrl?: string | undefined;
}): Record<string, string> {
  if (!env.pagerDutyUrl || !env.slackWebhookUrl || !env.statusPageUrl) return {};
  return {
    PAGERDUTY_EVENTS_URL: env.pagerDutyUrl,
    SLACK_WEBHOOK_URL: env.slackWebhookUrl,
    STATUSPAGE_URL: env.statusPageUrl,
    STATUSPAGE_API_KEY: LAB_STATUS_PAGE.apiKey,
    ...Object.fromEntries(
      Object.entries(LAB_ROUTING_KEYS).map(([team, key]) => [
        `PAGERDUTY_ROUTING_KEY_${team.toUpperCase()}`,
        key,
      ]),
    ),
  };
}
