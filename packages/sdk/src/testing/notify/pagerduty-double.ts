import { randomBytes } from 'node:crypto';
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
      sendJson(res, 202, { status: 'success', message: 'Event processed', dedup_key: dedupKey });
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
    clear() {
      events.length = 0;
      incidents.clear();
    },
    close: http.close,
  };
}
