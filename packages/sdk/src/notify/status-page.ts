import { z } from 'zod';
import { parseOptions } from '../core/parse-options';
import { DeliveryRetryOptions, deliver } from './delivery';
import type { StatusPageImpact } from './severity';

/**
 * Options of {@link statusPage}. The API is Atlassian Statuspage's (v1): the status page the manual names
 * (status.aiwebtest.com) is assumed hosted there, and its incident model (investigating → identified →
 * monitoring → resolved) is the one most hosted status pages copy.
 */
export const StatusPageOptions = z.object({
  /** Base URL of the API. @default "https://api.statuspage.io" */
  url: z.url().default('https://api.statuspage.io'),
  /** The page's id. */
  pageId: z.string().min(1, 'expected the status page id'),
  /** The API key, sent as `Authorization: OAuth <key>`. A secret: never logged, never in errors. */
  apiKey: z.string().min(1, 'expected the status page API key'),
  /** Components shown as affected by incidents opened here. @default [] */
  componentIds: z.array(z.string().min(1)).default([]),
  /** Retries of 429, 5xx and network failures. @default see {@link DeliveryRetryOptions} */
  retry: DeliveryRetryOptions.default(DeliveryRetryOptions.parse({})),
});
export type StatusPageOptions = z.infer<typeof StatusPageOptions>;
/** {@link StatusPageOptions} as written by users. */
export type StatusPageOptionsInput = z.input<typeof StatusPageOptions>;

/** Statuses of a status page incident. */
export const IncidentStatus = z.enum(['investigating', 'identified', 'monitoring', 'resolved']);
export type IncidentStatus = z.infer<typeof IncidentStatus>;

/** A status page incident, as the API returns it (the fields used here). */
export interface StatusPageIncident {
  id: string;
  name: string;
  status: IncidentStatus;
  impact: string;
}

/** A status page client. */
export interface StatusPageClient {
  createIncident(incident: {
    name: string;
    status?: IncidentStatus;
    body: string;
    impact?: StatusPageImpact;
  }): Promise<StatusPageIncident>;
  updateIncident(
    id: string,
    update: { status?: IncidentStatus; body: string; name?: string },
  ): Promise<StatusPageIncident>;
}

const IncidentAnswer = z.object({
  id: z.string(),
  name: z.string(),
  status: IncidentStatus,
  impact: z.string().default('none'),
});

/**
 * An Atlassian Statuspage client: `POST /v1/pages/{page_id}/incidents` to open an incident,
 * `PATCH /v1/pages/{page_id}/incidents/{id}` to post an update (a new status and body).
 */
export function statusPage(options: StatusPageOptionsInput): StatusPageClient {
  const config = parseOptions('statusPage', StatusPageOptions, options);
  const base = `${config.url.replace(/\/+$/, '')}/v1/pages/${encodeURIComponent(config.pageId)}/incidents`;
  const request = async (method: 'POST' | 'PATCH', url: string, body: unknown) => {
    const answer = await deliver(
      {
        service: 'Status page',
        method,
        url,
        headers: { authorization: `OAuth ${config.apiKey}` },
        body,
        secrets: [config.apiKey],
        errorText: (parsed, text) => {
          const error = (parsed as { error?: unknown } | null)?.error;
          if (typeof error === 'string') return { message: error };
          if (Array.isArray(error)) return { message: 'invalid incident', errors: error.map(String) };
          return { message: text.slice(0, 300) || 'no message' };
        },
      },
      config.retry,
    );
    const incident = IncidentAnswer.safeParse(answer.body);
    if (!incident.success) {
      throw new TypeError(
        `The status page answered an incident without ${incident.error.issues[0]?.path.join('.')}.`,
      );
    }
    return incident.data;
  };
  return {
    createIncident(incident) {
      return request('POST', base, {
        incident: {
          name: incident.name,
          status: incident.status ?? 'investigating',
          body: incident.body,
          ...(incident.impact ? { impact_override: incident.impact } : {}),
          ...(config.componentIds.length ? { component_ids: config.componentIds } : {}),
        },
      });
    },
    updateIncident(id, update) {
      return request('PATCH', `${base}/${encodeURIComponent(id)}`, {
        incident: {
          body: update.body,
          ...(update.status ? { status: update.status } : {}),
          ...(update.name ? { name: update.name } : {}),
        },
      });
    },
  };
}
