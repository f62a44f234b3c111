import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { StatusError } from './status-error';

/** Which requests a fault hits. Both members absent: every request. */
const RequestMatch = {
  /** HTTP method, compared case-insensitively. @default every method */
  method: z.string().min(1).optional(),
  /**
   * The URL path (no query): a string hits that path and everything below it (`/apis/apps/v1` hits
   * `/apis/apps/v1/namespaces/x/deployments`); a RegExp is tested against the whole path.
   * @default every path
   */
  path: z.union([z.string().startsWith('/'), z.instanceof(RegExp)]).optional(),
  /** How many matching requests it hits before it clears itself. @default unlimited */
  times: z.number().int().positive().optional(),
};

/** The API server answers matching requests with a `Status` error instead of serving them. */
export const ApiErrorFault = z.strictObject({
  kind: z.literal('apiError'),
  /** HTTP status code of the answer, e.g. 503, 429, 500, 403. */
  code: z.number().int().min(400).max(599),
  /** `Status.reason`. @default the API server's reason for `code` (`ServiceUnavailable` for 503…) */
  reason: z.string().min(1).optional(),
  /** `Status.message`. @default a message naming the injected fault */
  message: z.string().optional(),
  ...RequestMatch,
});

/** The API server waits before serving matching requests (a slow or overloaded control plane). */
export const ApiLatencyFault = z.strictObject({
  kind: z.literal('apiLatency'),
  /** How long each matching request is held before it is served. */
  delay: Duration,
  ...RequestMatch,
});

/** A fault of the simulated API server itself (as opposed to a fault of the workloads on the cluster). Unknown fields are refused. */
export const ApiFault = z.discriminatedUnion('kind', [ApiErrorFault, ApiLatencyFault]);
export type ApiFault = z.input<typeof ApiFault>;

/** An injected fault as `list()` reports it: the fault, its id, and how many requests it has hit so far. */
export type InjectedApiFault = ApiFault & { id: string; hits: number };

/** What the server does about a request: wait `delayMs`, then answer `error` if there is one. */
export interface FaultEffect {
  delayMs: number;
  error?: StatusError;
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

interface Entry {
  id: string;
  fault: z.output<typeof ApiFault>;
  input: ApiFault;
  hits: number;
}

/** Faults injected into the API server: errors and latency on chosen requests, optionally a limited number of times. */
export class ApiFaults {
  readonly #entries = new Map<string, Entry>();

  /** Validates and adds a fault (an `InputValidationError` names a bad field); returns its id and a `clear()`. */
  inject(fault: ApiFault): { id: string; clear(): void } {
    const parsed = ApiFault.safeParse(fault);
    if (!parsed.success) {
      throw new InputValidationError(
        'API fault',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const id = `api-${randomUUID().slice(0, 8)}`;
    this.#entries.set(id, { id, fault: parsed.data, input: fault, hits: 0 });
    return { id, clear: () => this.clear(id) };
  }

  /** Removes one fault; returns false when there was none with that id. */
  clear(id: string): boolean {
    return this.#entries.delete(id);
  }

  clearAll(): void {
    this.#entries.clear();
  }

  list(): InjectedApiFault[] {
    return [...this.#entries.values()].map(({ id, input, hits }) => ({ ...input, id, hits }));
  }

  /**
   * The combined effect of every fault hitting this request (latencies add up; the first error in
   * injection order answers). Counts the hit, and removes faults whose `times` are used up.
   */
  take(method: string, path: string): FaultEffect {
    const effect: FaultEffect = { delayMs: 0 };
    for (const entry of [...this.#entries.values()]) {
      const { fault } = entry;
      if (!matches(fault, method, path)) continue;
      if (fault.kind === 'apiError' && effect.error) continue;
      entry.hits++;
      if (fault.times !== undefined && entry.hits >= fault.times) this.#entries.delete(entry.id);
      if (fault.kind === 'apiLatency') effect.delayMs += toMillis(fault.delay);
      else effect.error = statusFor(fault);
    }
    return effect;
  }
}

function matches(fault: z.output<typeof ApiFault>, method: string, path: string): boolean {
  if (fault.method && fault.method.toUpperCase() !== method.toUpperCase()) return false;
  if (fault.path === undefined) return true;
  if (fault.path instanceof RegExp) {
    fault.path.lastIndex = 0; // a /g or /y RegExp remembers where it stopped
    return fault.path.test(path);
  }
  const prefix = fault.path.endsWith('/') ? fault.path.slice(0, -1) : fault.path;
  return path === prefix || path.startsWith(`${prefix}/`);
}

function statusFor(fault: z.output<typeof ApiErrorFault>): StatusError {
  const reason = fault.reason ?? REASONS[fault.code] ?? 'InternalError';
  const message = fault.message ?? `injected API fault: ${fault.code} ${reason}`;
  return new StatusError(fault.code, reason, message);
}
