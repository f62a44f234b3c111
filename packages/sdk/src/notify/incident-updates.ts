import type { EscalatedIncident } from './escalator';
import { SEVERITY_LEVELS, statusPageImpact } from './severity';
import type { SlackWebhook } from './slack';
import type { StatusPageClient } from './status-page';

/** Where an escalator's status updates go. Only `update` is required. */
export interface IncidentUpdates {
  /** An incident opened (of a severity with status updates); may return the status page incident's id. */
  opened?(incident: EscalatedIncident): Promise<{ statusPageId?: string } | undefined>;
  /** A cadence update while the incident is open. */
  update(incident: EscalatedIncident, now: Date): Promise<void>;
  /** The acknowledgement deadline passed with nobody responding. */
  overdue?(incident: EscalatedIncident): Promise<void>;
  acknowledged?(incident: EscalatedIncident): Promise<void>;
  resolved?(incident: EscalatedIncident): Promise<void>;
}

/**
 * Status updates to a Slack channel and a status page: a status page incident is opened (investigating) with the
 * incident, updated on every cadence tick (identified once acknowledged) and resolved with it; Slack gets a line
 * for each of those, plus "not acknowledged" when the deadline passes.
 */
export function incidentUpdates(sinks: {
  slack?: SlackWebhook;
  statusPage?: StatusPageClient;
}): IncidentUpdates {
  const label = (i: EscalatedIncident) => `[${i.severity} ${SEVERITY_LEVELS[i.severity].name}] ${i.summary}`;
  const post = async (text: string) => {
    if (sinks.slack) await sinks.slack.post({ text });
  };
  return {
    async opened(incident) {
      await post(`:rotating_light: Incident opened: ${label(incident)}. Paging on-call.`);
      if (!sinks.statusPage) return undefined;
      const created = await sinks.statusPage.createIncident({
        name: incident.summary.slice(0, 200),
        status: 'investigating',
        body: `We are investigating: ${incident.summary}`,
        impact: statusPageImpact(incident.severity),
      });
      return { statusPageId: created.id };
    },
    async update(incident, now) {
      const openFor = Math.round((now.getTime() - Date.parse(incident.openedAt)) / 60_000);
      const who = incident.acknowledgedBy
        ? `${incident.acknowledgedBy} is working on it`
        : 'not acknowledged yet';
      await post(
        `Status update #${incident.statusUpdates}: ${label(incident)}, open for ${openFor} min, ${who}.`,
      );
      if (sinks.statusPage && incident.statusPageId) {
        await sinks.statusPage.updateIncident(incident.statusPageId, {
          status: incident.acknowledgedAt ? 'identified' : 'investigating',
          body: incident.acknowledgedAt
            ? `The issue has been identified and is being worked on (open for ${openFor} minutes).`
            : `We are still investigating (open for ${openFor} minutes).`,
        });
      }
    },
    async overdue(incident) {
      await post(`:warning: ${label(incident)} is not acknowledged yet; escalation continues.`);
    },
    async acknowledged(incident) {
      await post(`${label(incident)} acknowledged by ${incident.acknowledgedBy ?? 'someone'}.`);
    },
    async resolved(incident) {
      await post(`:white_check_mark: Resolved: ${label(incident)} (by ${incident.resolvedBy ?? 'someone'}).`);
      if (sinks.statusPage && incident.statusPageId) {
        await sinks.statusPage.updateIncident(incident.statusPageId, {
          status: 'resolved',
          body: 'This incident has been resolved.',
        });
      }
    },
  };
}
