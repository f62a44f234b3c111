import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { apiKeyFingerprint } from '../../resilience/api-keys';

/** How many matching requests a fault hits before it clears itself. @default until cleared */
const Times = z.number().int().positive().optional();

/**
 * The host is down. `reset` (the default) accepts each connection and destroys it unanswered (clients see a
 * reset socket); `refuse` stops listening, so connections are refused (`ECONNREFUSED`) until the fault is
 * cleared and the double listens on the same port again. Hits every endpoint.
 */
export const OutageFault = z.strictObject({
  kind: z.literal('outage'),
  mode: z.enum(['reset', 'refuse']).default('reset'),
});

/** Chat requests wait this long before they are served (a slow model, an overloaded provider). */
export const LatencyFault = z.strictObject({
  kind: z.literal('latency'),
  delay: Duration,
  times: Times,
});

/** Chat requests get a 429 (for every key, or for one key), with a `Retry-After` header when `retryAfter` is set. */
export const RateLimitFault = z.strictObject({
  kind: z.literal('rateLimit'),
  /** The `Retry-After` to send (rounded up to whole seconds). @default no header */
  retryAfter: Duration.optional(),
  /** `seconds` sends delay-seconds (`"2"`), `http-date` an HTTP date that far ahead. @default "seconds" */
  retryAfterFormat: z.enum(['seconds', 'http-date']).default('seconds'),
  /** Only requests with this API key (OpenRouter). The double keeps its fingerprint, not the key. @default every key */
  key: z.string().min(1).optional(),
  times: Times,
});

/** Chat requests get a 5xx (503 by default), optionally with `Retry-After`. */
export const ServerErrorFault = z.strictObject({
  kind: z.literal('serverError'),
  status: z.number().int().min(500).max(599).default(503),
  /** The `Retry-After` to send (whole seconds). @default no header */
  retryAfter: Duration.optional(),
  times: Times,
});

/**
 * A fault of an LLM provider double. All but `outage` hit the chat endpoint only (`POST /api/v1/chat/completions`,
 * `POST /api/chat`): the health and key endpoints keep answering, as they do when a model backend is in trouble.
 */
export const LlmFault = z.discriminatedUnion('kind', [
  OutageFault,
  LatencyFault,
  RateLimitFault,
  ServerErrorFault,
]);
/** A fault of an LLM provider double, as written by tests. */
export type LlmFault = z.input<typeof LlmFault>;

/** An injected fault as `list()` shows it: its id, hits so far, and a key fingerprint instead of a key. */
export type InjectedLlmFault = Omit<LlmFault, 'key'> & { id: string; hits: number; keyFingerprint?: string };

/** What a chat request gets from the faults: a wait, then possibly an error answer. */
export interface LlmFaultEffect {
  delayMs: number;
  error?: { kind: 'rateLimit' | 'serverError'; status: number; headers: Record<string, string> };
}

type Parsed = z.output<typeof LlmFault>;
interface Entry {
  id: string;
  fault: Parsed;
  keyFingerprint: string | undefined;
  hits: number;
}

/** The faults injected into one double. */
export class LlmFaults {
  readonly #entries = new Map<string, Entry>();
  readonly #onOutageChange: () => void;
  readonly #keysAllowed: boolean;

  /** @internal The double builds it: `onOutageChange` starts or stops its listening socket. */
  constructor(onOutageChange: () => void, keysAllowed: boolean) {
    this.#onOutageChange = onOutageChange;
    this.#keysAllowed = keysAllowed;
  }

  /** Validates and adds a fault (an `InputValidationError` names a bad field); returns its id and a `clear()`. */
  inject(fault: LlmFault): { id: string; clear(): void } {
    const parsed = LlmFault.safeParse(fault);
    if (!parsed.success) {
      throw new InputValidationError(
        'LLM double fault',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const data = parsed.data;
    if (data.kind === 'rateLimit' && data.key !== undefined && !this.#keysAllowed) {
      throw new InputValidationError('LLM double fault', [
        { path: 'key', message: 'this provider has no API keys: leave key out' },
      ]);
    }
    const id = `llm-${randomUUID().slice(0, 8)}`;
    const keyFingerprint = data.kind === 'rateLimit' && data.key ? apiKeyFingerprint(data.key) : undefined;
    if (data.kind === 'rateLimit') delete data.key;
    this.#entries.set(id, { id, fault: data, keyFingerprint, hits: 0 });
    if (data.kind === 'outage') this.#onOutageChange();
    return { id, clear: () => this.clear(id) };
  }

  /** Removes one fault; false when there was none with that id. */
  clear(id: string): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#entries.delete(id);
    if (entry.fault.kind === 'outage') this.#onOutageChange();
    return true;
  }

  /** Removes every fault. */
  clearAll(): void {
    const hadOutage = this.outage() !== undefined;
    this.#entries.clear();
    if (hadOutage) this.#onOutageChange();
  }

  /** The injected faults. */
  list(): InjectedLlmFault[] {
    return [...this.#entries.values()].map(({ id, fault, hits, keyFingerprint }) => ({
      ...fault,
      id,
      hits,
      ...(keyFingerprint ? { keyFingerprint } : {}),
    }));
  }

  /** The outage mode in force, if any (the first injected outage wins). */
  outage(): 'reset' | 'refuse' | undefined {
    for (const { fault } of this.#entries.values()) if (fault.kind === 'outage') return fault.mode;
    return undefined;
  }

  /**
   * What hits a chat request made with the key of `keyFingerprint`: latencies add up, the first error fault (in
   * injection order) that matches answers. Counts the hits and drops faults whose `times` are used up.
   */
  take(keyFingerprint: string | undefined, now: number = Date.now()): LlmFaultEffect {
    const effect: LlmFaultEffect = { delayMs: 0 };
    for (const entry of [...this.#entries.values()]) {
      const { fault } = entry;
      if (fault.kind === 'outage') continue;
      if (fault.kind !== 'latency') {
        if (effect.error) continue;
        if (entry.keyFingerprint !== undefined && entry.keyFingerprint !== keyFingerprint) continue;
      }
      entry.hits++;
      if (fault.times !== undefined && entry.hits >= fault.times) this.#entries.delete(entry.id);
      if (fault.kind === 'latency') effect.delayMs += toMillis(fault.delay);
      else if (fault.kind === 'rateLimit') {
        effect.error = {
          kind: 'rateLimit',
          status: 429,
          headers: retryAfterHeader(fault.retryAfter, fault.retryAfterFormat, now),
        };
      } else {
        effect.error = {
          kind: 'serverError',
          status: fault.status,
          headers: retryAfterHeader(fault.retryAfter, 'seconds', now),
        };
      }
    }
    return effect;
  }
}

function retryAfterHeader(
  retryAfter: z.output<typeof Duration> | undefined,
  format: 'seconds' | 'http-date',
  now: number,
): Record<string, string> {
  if (retryAfter === undefined) return {};
  const seconds = Math.ceil(toMillis(retryAfter) / 1000);
  // An HTTP date has whole seconds: round the target up so that the wait is never shorter than asked.
  const value =
    format === 'seconds' ? String(seconds) : new Date(Math.ceil(now / 1000 + seconds) * 1000).toUTCString();
  return { 'retry-after': value };
}
