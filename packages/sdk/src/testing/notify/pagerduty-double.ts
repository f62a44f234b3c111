import { createHmac, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  DoubleListenOptions,
  type InjectedFailureInput,
  secretFingerprint,
  sendJson,
  startHttpDouble,
} from './http-double';

/** Options of {@link startPagerDutyDouble}. */
export const PagerDutyDoubleOptions = z.object({
  ...DoubleListenOptions,
  /**
   * Routing keys the double knows, by name (`{ primary: "…", backup: "…" }`): requests are logged with the name
   * (`routedTo`), never with the key. An unknown 32-character key is accepted and logged by fingerprint. @default {}
   */
  routingKeys: z.record(z.string(), z.string()).default({}),
});
export type PagerDutyDoubleOptions = z.infer<typeof PagerDutyDoubleOptions>;
/** {@link PagerDutyDoubleOptions} as written by users. */
export type PagerDutyDoubleOptionsInput = z.input<typeof PagerDutyDoubleOptions>;

/** One event the double received (valid or not), without the routing key. */
export interface PagerDutyLoggedEvent {
  at: number;
  /** The routing key's name from the options, else `key:<fingerprint>`; undefined when there was none. */
  routedTo?: string;
  action?: string;
  dedupKey?: string;
  summary?: string;
  severity?: string;
  /** The HTTP status answered. */
  status: number;
  /** The validation errors, for a 400. */
  errors?: string[];
}

/** A PagerDuty incident as the double keeps it: one per routing key and dedup key. */
export interface PagerDutyDoubleIncident {
  routedTo: string;
  dedupKey: string;
  status: 'triggered' | 'acknowledged' | 'resolved';
  summary: string;
  severity: string;
  /** How many trigger events it received (repeats are deduplicated into the same incident). */
  triggers: number;
  /** Its history of actions, oldest first. */
  actions: string[];
}

/** A running PagerDuty Events API v2 double. */
export interface PagerDutyDouble {
  /** Base URL: the client posts to `<url>/v2/enqueue`. */
  readonly url: string;
  /** Every event received, oldest first. */
  readonly events: readonly PagerDutyLoggedEvent[];
  /** Incidents by routing name and dedup key. */
  incidents(): PagerDutyDoubleIncident[];
  /** The incident with this dedup key (for one routing name, when given). */
  incident(dedupKey: string, routedTo?: string): PagerDutyDoubleIncident | undefined;
  /** The next requests fail with a 429 or 5xx (before validation). */
  fail(failure: InjectedFailureInput): void;
  /**
   * The next `times` valid events are taken at once (the incident changes) but answered `ms` later, in real time
   * even under fake timers: a client whose timeout is shorter sees a failure PagerDuty in fact accepted.
   */
  answerLate(late: { ms: number; times?: number }): void;
  /** Sends v3 webhooks (signed with `secret`, like a webhook subscription) to `url` on {@link act}. */
  subscribe(subscription: { url: string; secret: string }): void;
  /**
   * Someone acknowledges or resolves the incident in PagerDuty: its status changes and every subscription gets an
   * `incident.acknowledged`/`incident.resolved` v3 webhook with `data.incident_key` (the dedup key) and
   * `data.title` (the trigger's summary); `withoutIncidentKey` leaves the key out, as some payloads do. Resolves
   * with each subscription's answer. Throws for an unknown incident.
   */
  act(
    dedupKey: string,
    action: 'acknowledge' | 'resolve',
    options?: { by?: string; routedTo?: string; withoutIncidentKey?: boolean },
  ): Promise<{ status: number; body: unknown }[]>;
  /** The webhooks delivered, oldest first. */
  readonly webhooks: readonly { eventType: string; dedupKey: string; status: number }[];
  clear(): void;
  close(): Promise<void>;
}

const SEVERITIES = ['critical', 'error', 'warning', 'info'];
const ACTIONS = ['trigger', 'acknowledge', 'resolve'];

/**
 * Starts a PagerDuty Events API v2 double on 127.0.0.1: `POST /v2/enqueue` validated like PagerDuty (400
 * `{status:"invalid event", message:"Event object is invalid", errors:[…]}`; 202
 * `{status:"success", message:"Event processed", dedup_key}`), incident state per routing key and dedup key,
 * injectable 429/5xx, and a request log that holds key names or fingerprints, never keys.
 */
export async function startPagerDutyDouble(
  options: PagerDutyDoubleOptionsInput = {},
): Promise<PagerDutyDouble> {
  const config = PagerDutyDoubleOptions.parse(options);
  const names = new Map(Object.entries(config.routingKeys).map(([name, key]) => [key, name]));
  const events: PagerDutyLoggedEvent[] = [];
  const incidents = new Map<string, PagerDutyDoubleIncident>();
  const late: { ms: number; times: number }[] = [];
  const subscriptions: { url: string; secret: string }[] = [];
  const webhooks: { eventType: string; dedupKey: string; status: number }[] = [];
  const nameOf = (key: unknown) =>
    typeof key === 'string' && key !== '' ? (names.get(key) ?? `key:${secretFingerprint(key)}`) : undefined;

  const http = await startHttpDouble(
    config.host,
    config.port,
    ({ method, path, body, res }) => {
      if (method !== 'POST' || path !== '/v2/enqueue') {
        sendJson(res, 404, { status: 'not found', message: `No route ${method} ${path}` });
        events.push({ at: Date.now(), status: 404 });
        return;
      }
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(body) as Record<string, unknown>;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          throw new Error('not an object');
      } catch {
        sendJson(res, 400, {
          status: 'invalid event',
          message: 'Event object is invalid',
          errors: ['Malformed JSON'],
        });
        events.push({ at: Date.now(), status: 400, errors: ['Malformed JSON'] });
        return;
      }
      const payload = (parsed.payload ?? undefined) as Record<string, unknown> | undefined;
      const errors: string[] = [];
      const key = parsed.routing_key;
      if (typeof key !== 'string' || key === '') errors.push("'routing_key' is missing or blank");
      else if (key.length !== 32)
        errors.push("Length of 'routing_key' is incorrect (should be 32 characters)");
      const action = parsed.event_action;
      if (typeof action !== 'string' || !ACTIONS.includes(action)) {
        errors.push("'event_action' is missing or invalid (expected trigger, acknowledge or resolve)");
      }
      const dedup = parsed.dedup_key;
      if (dedup !== undefined && (typeof dedup !== 'string' || dedup.length > 255)) {
        errors.push("'dedup_key' must be a string of at most 255 characters");
      }
      if (action === 'trigger') {
        if (!payload || typeof payload !== 'object') errors.push("'payload' is missing or not an object");
        else {
          if (typeof payload.summary !== 'string' || payload.summary === '')
            errors.push("'payload.summary' is missing or blank");
          else if (payload.summary.length > 1024)
            errors.push("'payload.summary' is longer than 1024 characters");
          if (typeof payload.source !== 'string' || payload.source === '')
            errors.push("'payload.source' is missing or blank");
          if (typeof payload.severity !== 'string' || !SEVERITIES.includes(payload.severity)) {
            errors.push("'payload.severity' is invalid (expected critical, error, warning or info)");
          }
        }
      } else if (action !== undefined && typeof dedup !== 'string') {
        errors.push("'dedup_key' is required for acknowledge and resolve events");
      }
      const routedTo = nameOf(key);
      const entry: PagerDutyLoggedEvent = {
        at: Date.now(),
        ...(routedTo ? { routedTo } : {}),
        ...(typeof action === 'string' ? { action } : {}),
        ...(typeof dedup === 'string' ? { dedupKey: dedup } : {}),
        ...(typeof payload?.summary === 'string' ? { summary: payload.summary } : {}),
        ...(typeof payload?.severity === 'string' ? { severity: payload.severity } : {}),
        status: 400,
      };
      events.push(entry);
      if (errors.length) {
        entry.errors = errors;
        sendJson(res, 400, { status: 'invalid event', message: 'Event object is invalid', errors });
        return;
      }
      const dedupKey = typeof dedup === 'string' ? dedup : randomBytes(16).toString('hex');
      entry.dedupKey = dedupKey;
      const id = `${routedTo}\u0000${dedupKey}`;
      const incident = incidents.get(id);
      if (action === 'trigger') {
        if (!incident || incident.status === 'resolved') {
          incidents.set(id, {
            routedTo: routedTo ?? '',
            dedupKey,
            status: 'triggered',
            summary: String(payload?.summary),
            severity: String(payload?.severity),
            triggers: 1,
            actions: ['trigger'],
          });
        } else {
          incident.triggers++;
          incident.actions.push('trigger');
        }
      } else if (incident && incident.status !== 'resolved') {
        // PagerDuty drops acknowledge/resolve for unknown or resolved incidents but still answers 202.
        if (action === 'acknowledge' && incident.status === 'triggered') incident.status = 'acknowledged';
        if (action === 'resolve') incident.status = 'resolved';
        incident.actions.push(String(action));
      }
      entry.status = 202;
      const answer = { status: 'success', message: 'Event processed', dedup_key: dedupKey };
      const lateness = late[0];
      if (lateness) {
        if (--lateness.times <= 0) late.shift();
        void sleep(lateness.ms).then(() => {
          if (!res.destroyed) sendJson(res, 202, answer);
        });
        return;
      }
      sendJson(res, 202, answer);
    },
    (_exchange, status) => {
      events.push({ at: Date.now(), status });
    },
  );

  return {
    url: http.url,
    events,
    incidents: () => [...incidents.values()].map((i) => structuredClone(i)),
    incident(dedupKey, routedTo) {
      const found = [...incidents.values()].find(
        (i) => i.dedupKey === dedupKey && (routedTo === undefined || i.routedTo === routedTo),
      );
      return found ? structuredClone(found) : undefined;
    },
    fail: http.fail,
    answerLate({ ms, times = 1 }) {
      late.push({ ms, times });
    },
    subscribe(subscription) {
      subscriptions.push(subscription);
    },
    webhooks,
    async act(dedupKey, action, options = {}) {
      const incident = [...incidents.values()].find(
        (i) => i.dedupKey === dedupKey && (options.routedTo === undefined || i.routedTo === options.routedTo),
      );
      if (!incident) throw new Error(`The PagerDuty double has no incident with dedup key ${dedupKey}.`);
      if (action === 'acknowledge' && incident.status === 'triggered') incident.status = 'acknowledged';
      if (action === 'resolve') incident.status = 'resolved';
      incident.actions.push(`${action} (web)`);
      const eventType = action === 'acknowledge' ? 'incident.acknowledged' : 'incident.resolved';
      const id = `Q${randomBytes(6).toString('hex').toUpperCase()}`;
      const body = JSON.stringify({
        event: {
          id: randomBytes(16).toString('hex'),
          event_type: eventType,
          resource_type: 'incident',
          occurred_at: new Date().toISOString(),
          agent: {
            id: 'PUSER01',
            type: 'user_reference',
            summary: options.by ?? 'On-call Engineer',
            self: 'https://api.pagerduty.com/users/PUSER01',
            html_url: 'https://example.pagerduty.com/users/PUSER01',
          },
          client: null,
          data: {
            id,
            type: 'incident',
            self: `https://api.pagerduty.com/incidents/${id}`,
            html_url: `https://example.pagerduty.com/incidents/${id}`,
            number: incidents.size,
            status: incident.status,
            ...(options.withoutIncidentKey ? {} : { incident_key: incident.dedupKey }),
            created_at: new Date().toISOString(),
            title: incident.summary,
            service: { id: 'PSERVICE', type: 'service_reference', summary: incident.routedTo },
            urgency: 'high',
          },
        },
      });
      const answers: { status: number; body: unknown }[] = [];
      for (const { url, secret } of subscriptions) {
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'PagerDuty-Webhook/V3.0',
            'x-webhook-id': randomBytes(8).toString('hex'),
            'x-pagerduty-signature': `v1=${createHmac('sha256', secret).update(body).digest('hex')}`,
          },
          body,
        });
        const text = await response.text();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Kept as text.
        }
        webhooks.push({ eventType, dedupKey, status: response.status });
        answers.push({ status: response.status, body: parsed });
      }
      return answers;
    },
    clear() {
      events.length = 0;
      incidents.clear();
      late.length = 0;
      webhooks.length = 0;
    },
    close: http.close,
  };
}
