import { createHash } from 'node:crypto';
import type { Severity } from '../core/runbook';
import type { Notifier } from '../engine/events';
import { UnknownChannelError } from './errors';
import type { Escalator } from './escalator';
import type { PagerDutyClient } from './pagerduty';
import { statusPageImpact } from './severity';
import type { SlackWebhook } from './slack';
import { IncidentStatus, type StatusPageClient } from './status-page';

/** What {@link createNotifier} routes to. Every part is optional; a channel without its part is an error. */
export interface NotifierSinks {
  /** `pager` (team `default`) and `pager:<team>`. */
  pagerDuty?: PagerDutyClient;
  /** `slack:#<channel>` → the webhook of that channel (keys like `"#incidents"`). */
  slack?: Record<string, SlackWebhook>;
  /** `statuspage` and `statuspage:<status>`. */
  statusPage?: StatusPageClient;
  /**
   * When set, escalations (`kind: "escalate"`) to these pager channels open an incident in the escalator, which
   * pages its policy's levels over time, instead of one direct page.
   */
  escalator?: Escalator;
  /** The pager channels the escalator takes. @default ["pager"] */
  escalatorChannels?: string[];
  /** Where notifications without a channel (`"default"`) go. @default none: they are an error */
  defaultChannel?: string;
}

/** The notification as the engine hands it over. */
export type EngineNotification = Parameters<Notifier['notify']>[0];

/**
 * The PagerDuty dedup key of a run's direct page: `run:<runId>:<kind>:<8 hex of the message's SHA-256>`. The
 * same notification sent again (a retried or resumed step) updates its PagerDuty incident instead of paging twice;
 * another page of the run (an escalation after a notification to the same team, a new message) opens its own
 * incident and pages again, where one key per run would have been folded into an acknowledged incident.
 */
export function runDedupKey(runId: string, kind: 'notify' | 'escalate', message: string): string {
  return `run:${runId}:${kind}:${createHash('sha256').update(message).digest('hex').slice(0, 8)}`;
}

/** How a run ended, as the engine's `onRunEnd` reports it. */
export interface RunEnded {
  runId: string;
  status: string;
}

/**
 * The engine's {@link Notifier} over PagerDuty, Slack and a status page. Channels:
 *
 * - `pager`, `pager:<team>`: a PagerDuty trigger with the team's routing key, dedup key {@link runDedupKey}
 *   (an `escalate` to an escalator channel opens an escalator incident keyed by the run id instead); when the run
 *   then succeeds (`runEnded` below), its direct pages are resolved;
 * - `slack:#<channel>`: a post to that channel's webhook;
 * - `statuspage`, `statuspage:<status>`: the run's status page incident, opened by the first notification
 *   (investigating) and updated by later ones (`identified`, or the status the channel names).
 *
 * Any other channel throws an `UnknownChannelError` (not retried): a typo must fail loudly, not vanish. An
 * escalation whose `to` is not a channel (a runbook or team name) pages `pager` instead, naming where it was meant
 * to go.
 */
export function createNotifier(sinks: NotifierSinks): Notifier & {
  /** The channels this notifier serves (team and Slack channel names spelled out). */
  readonly channels: readonly string[];
  /**
   * Tell it a run ended (wire it to the engine's `onRunEnd`): a run that `succeeded` gets a PagerDuty `resolve`
   * for each of its direct pages; any final status forgets them. Rejects with the failures (the client already
   * retried them), after trying every page.
   */
  runEnded(run: RunEnded): Promise<void>;
} {
  const escalatorChannels = new Set(sinks.escalatorChannels ?? ['pager']);
  // Run id → status page incident id. In memory: after a restart a run's next notification opens a new one.
  const statusPageIncidents = new Map<string, string>();
  // Run id → its direct pages (dedup key → team), to resolve them when the run succeeds. In memory, like the
  // status page incidents: pages of a run that succeeds after a restart (or on another replica) stay open.
  const directPages = new Map<string, Map<string, string>>();
  const channels = [
    ...(sinks.pagerDuty ? sinks.pagerDuty.teams.map((t) => (t === 'default' ? 'pager' : `pager:${t}`)) : []),
    ...(sinks.escalator ? [...escalatorChannels] : []),
    ...Object.keys(sinks.slack ?? {}).map((c) => `slack:${c}`),
    ...(sinks.statusPage ? ['statuspage'] : []),
  ];
  const known = [...new Set(channels)];

  const notify = async (notification: EngineNotification): Promise<void> => {
    let n = notification;
    // `step.escalate(reason, { to })` may name a runbook or a team rather than a channel (`to: "openrouter-outage"`):
    // an escalation must still reach a person, so it pages on-call and says where it was meant to go.
    if (n.kind === 'escalate' && n.channel !== undefined && !isChannelName(n.channel)) {
      n = { ...n, channel: 'pager', message: `${n.message} (escalated to ${n.channel})` };
    }
    const channel = n.channel === undefined || n.channel === 'default' ? sinks.defaultChannel : n.channel;
    if (!channel) throw new UnknownChannelError(n.channel ?? 'default', known);
    const severity: Severity = n.severity ?? 'P2';
    const text = `[${severity}] ${n.runbookId ? `${n.runbookId}: ` : ''}${n.message}`;

    if (channel === 'pager' || channel.startsWith('pager:')) {
      if (n.kind === 'escalate' && sinks.escalator && escalatorChannels.has(channel)) {
        await sinks.escalator.open({
          key: n.runId,
          severity,
          summary: n.runbookId ? `${n.runbookId}: ${n.message}` : n.message,
          ...(n.runbookId ? { runbookId: n.runbookId } : {}),
        });
        return;
      }
      const team = channel === 'pager' ? 'default' : channel.slice('pager:'.length);
      if (!sinks.pagerDuty?.teams.includes(team)) throw new UnknownChannelError(channel, known);
      const dedupKey = runDedupKey(n.runId, n.kind, n.message);
      const pages = directPages.get(n.runId) ?? new Map<string, string>();
      // Remembered before the call: a trigger that timed out may still have reached PagerDuty.
      pages.set(dedupKey, team);
      directPages.set(n.runId, pages);
      await sinks.pagerDuty.trigger({
        team,
        dedupKey,
        summary: text,
        severity,
        ...(n.runbookId ? { component: n.runbookId } : {}),
        customDetails: { runId: n.runId, runbookId: n.runbookId, kind: n.kind },
      });
      return;
    }
    if (channel.startsWith('slack:')) {
      const webhook = sinks.slack?.[channel.slice('slack:'.length)];
      if (!webhook) throw new UnknownChannelError(channel, known);
      await webhook.post({
        text: `${n.kind === 'escalate' ? ':rotating_light: Escalated: ' : ''}${text} (run ${n.runId})`,
      });
      return;
    }
    if (channel === 'statuspage' || channel.startsWith('statuspage:')) {
      if (!sinks.statusPage) throw new UnknownChannelError(channel, known);
      const named = channel === 'statuspage' ? undefined : channel.slice('statuspage:'.length);
      const status = named === undefined ? undefined : IncidentStatus.safeParse(named);
      if (status && !status.success) {
        throw new UnknownChannelError(channel, [
          ...known,
          ...IncidentStatus.options.map((s) => `statuspage:${s}`),
        ]);
      }
      const existing = statusPageIncidents.get(n.runId);
      if (existing) {
        await sinks.statusPage.updateIncident(existing, {
          status: status?.data ?? 'identified',
          body: n.message,
        });
      } else {
        const created = await sinks.statusPage.createIncident({
          name: n.message.split('\n')[0]?.slice(0, 200) || n.runbookId,
          status: status?.data ?? 'investigating',
          body: n.message,
          impact: statusPageImpact(severity),
        });
        statusPageIncidents.set(n.runId, created.id);
      }
      return;
    }
    throw new UnknownChannelError(channel, known);
  };

  const runEnded = async ({ runId, status }: RunEnded): Promise<void> => {
    if (!FINAL_STATUSES.has(status)) return;
    const pages = directPages.get(runId);
    directPages.delete(runId);
    if (!pages || status !== 'succeeded' || !sinks.pagerDuty) return;
    const failures: unknown[] = [];
    for (const [dedupKey, team] of pages) {
      await sinks.pagerDuty.resolve({ team, dedupKey }).catch((error: unknown) => failures.push(error));
    }
    if (failures.length) {
      throw new AggregateError(
        failures,
        `Could not resolve ${failures.length} PagerDuty page(s) of run ${runId}.`,
      );
    }
  };

  return { channels: known, notify, runEnded };
}

/** The run statuses after which a run never changes again. */
const FINAL_STATUSES = new Set(['succeeded', 'failed', 'escalated', 'cancelled']);

/** True for the channel forms the notifier knows: `pager[:team]`, `slack:#…`, `statuspage[:status]`, `default`. */
function isChannelName(channel: string): boolean {
  return (
    channel === 'default' ||
    channel === 'pager' ||
    channel.startsWith('pager:') ||
    channel.startsWith('slack:') ||
    channel === 'statuspage' ||
    channel.startsWith('statuspage:')
  );
}
