import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { DoubleListenOptions, type InjectedFailureInput, sendJson, startHttpDouble } from './http-double';

/** Options of {@link startStatusPageDouble}. */
export const StatusPageDoubleOptions = z.object({
  ...DoubleListenOptions,
  /** The page id the API serves. @default "aiwebtest" */
  pageId: z.string().min(1).default('aiwebtest'),
  /** The API key it accepts (`Authorization: OAuth <key>`). @default "statuspage-double-key" */
  apiKey: z.string().min(1).default('statuspage-double-key'),
});
export type StatusPageDoubleOptions = z.infer<typeof StatusPageDoubleOptions>;
/** {@link StatusPageDoubleOptions} as written by users. */
export type StatusPageDoubleOptionsInput = z.input<typeof StatusPageDoubleOptions>;

/** An incident update (the body posted with a status). */
export interface StatusPageDoubleUpdate {
  id: string;
  status: string;
  body: string;
  created_at: string;
}

/** An incident as the double keeps it (Statuspage's JSON field names). */
export interface StatusPageDoubleIncident {
  id: string;
  page_id: string;
  name: string;
  status: string;
  impact: string;
  component_ids: string[];
  created_at: string;
  updated_at: string;
  resolved_at: string | null;
  shortlink: string;
  incident_updates: StatusPageDoubleUpdate[];
}

/** A request the double received, without the API key. */
export interface StatusPageLoggedRequest {
  at: number;
  method: string;
  path: string;
  status: number;
  incidentId?: string;
  /** `incident.status` of the body, when it had one. */
  incidentStatus?: string;
}

/** A running Atlassian Statuspage API double. */
export interface StatusPageDouble {
  readonly url: string;
  readonly pageId: string;
  readonly requests: readonly StatusPageLoggedRequest[];
  incidents(): StatusPageDoubleIncident[];
  fail(failure: InjectedFailureInput): void;
  clear(): void;
  close(): Promise<void>;
}

const STATUSES = ['investigating', 'identified', 'monitoring', 'resolved'];
const IMPACTS = ['none', 'minor', 'major', 'critical'];

/**
 * Starts a Statuspage (v1) double on 127.0.0.1: `POST /v1/pages/{page_id}/incidents`,
 * `PATCH|GET /v1/pages/{page_id}/incidents/{id}`, `GET /v1/pages/{page_id}/incidents`; `Authorization: OAuth <key>`
 * (401 otherwise), 422 `{error:[…]}` for invalid incidents, injectable 429/5xx.
 */
export async function startStatusPageDouble(
  options: StatusPageDoubleOptionsInput = {},
): Promise<StatusPageDouble> {
  const config = StatusPageDoubleOptions.parse(options);
  const incidents = new Map<string, StatusPageDoubleIncident>();
  const requests: StatusPageLoggedRequest[] = [];
  const base = `/v1/pages/${config.pageId}/incidents`;

  const http = await startHttpDouble(
    config.host,
    config.port,
    ({ method, path, headers, body, res }) => {
      const entry: StatusPageLoggedRequest = { at: Date.now(), method, path, status: 0 };
      requests.push(entry);
      const answer = (status: number, payload: unknown) => {
        entry.status = status;
        sendJson(res, status, payload);
      };
      if (headers.authorization !== `OAuth ${config.apiKey}`)
        return answer(401, { error: 'Could not authenticate' });
      if (!path.startsWith(base)) return answer(404, { error: 'Page not found' });
      const rest = path.slice(base.length);
      if (rest === '' && method === 'GET') return answer(200, [...incidents.values()]);
      let parsed: { incident?: Record<string, unknown> } = {};
      if (method === 'POST' || method === 'PATCH') {
        try {
          parsed = JSON.parse(body) as { incident?: Record<string, unknown> };
        } catch {
          return answer(400, { error: 'Malformed JSON' });
        }
        if (!parsed || typeof parsed.incident !== 'object' || parsed.incident === null) {
          return answer(400, { error: 'incident is missing' });
        }
        if (typeof parsed.incident.status === 'string') entry.incidentStatus = parsed.incident.status;
      }
      const input = parsed.incident ?? {};
      const errors: string[] = [];
      if (input.status !== undefined && !STATUSES.includes(String(input.status)))
        errors.push('Status is not included in the list');
      if (input.impact_override !== undefined && !IMPACTS.includes(String(input.impact_override))) {
        errors.push('Impact override is not included in the list');
      }
      const now = new Date().toISOString();
      const update = (status: string, text: unknown): StatusPageDoubleUpdate => ({
        id: randomBytes(6).toString('hex'),
        status,
        body: typeof text === 'string' ? text : '',
        created_at: now,
      });
      if (rest === '' && method === 'POST') {
        if (typeof input.name !== 'string' || input.name.trim() === '') errors.push("Name can't be blank");
        if (errors.length) return answer(422, { error: errors });
        const id = randomBytes(6).toString('hex');
        const status = String(input.status ?? 'investigating');
        const incident: StatusPageDoubleIncident = {
          id,
          page_id: config.pageId,
          name: String(input.name),
          status,
          impact: String(input.impact_override ?? 'none'),
          component_ids: Array.isArray(input.component_ids) ? input.component_ids.map(String) : [],
          created_at: now,
          updated_at: now,
          resolved_at: status === 'resolved' ? now : null,
          shortlink: `https://stspg.io/${id}`,
          incident_updates: [update(status, input.body)],
        };
        incidents.set(id, incident);
        entry.incidentId = id;
        return answer(201, incident);
      }
      const id = decodeURIComponent(rest.replace(/^\//, ''));
      const incident = incidents.get(id);
      entry.incidentId = id;
      if (!incident) return answer(404, { error: 'Incident not found' });
      if (method === 'GET') return answer(200, incident);
      if (method !== 'PATCH') return answer(405, { error: 'Method not allowed' });
      if (input.name !== undefined && (typeof input.name !== 'string' || input.name.trim() === '')) {
        errors.push("Name can't be blank");
      }
      if (errors.length) return answer(422, { error: errors });
      if (typeof input.name === 'string') incident.name = input.name;
      if (typeof input.status === 'string') incident.status = input.status;
      if (incident.status === 'resolved' && !incident.resolved_at) incident.resolved_at = now;
      incident.updated_at = now;
      incident.incident_updates.unshift(update(incident.status, input.body));
      return answer(200, incident);
    },
    (exchange, status) => {
      requests.push({ at: Date.now(), method: exchange.method, path: exchange.path, status });
    },
  );

  return {
    url: http.url,
    pageId: config.pageId,
    requests,
    incidents: () => [...incidents.values()].map((i) => structuredClone(i)),
    fail: http.fail,
    clear() {
      requests.length = 0;
      incidents.clear();
    },
    close: http.close,
  };
}
