import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Json } from '../core/json';
import type { AuditEntry } from '../store/records';
import { errorResponse, isHttpError } from './errors';

/** The statuses that are refusals of the caller: unauthenticated, forbidden, rate limited. */
const REFUSALS = new Set([401, 403, 429]);
const MINUTE_MS = 60_000;
/** Above this many tracked keys, keys whose minute is over (and owe no count) are forgotten. */
const SWEEP_ABOVE = 10_000;

/**
 * How many refusal entries each key (client address and actor) may still write this minute. Refusals over
 * the budget are only counted; the count is reported as `suppressed` in the next entry written for the
 * key, so the audit log shows a flood without being flooded. A key that never comes back after a
 * suppressed burst takes its count with it; the entries written before it already show the flood.
 */
export class RefusalBudget {
  private readonly keys = new Map<string, { windowStart: number; written: number; suppressed: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** `undefined` when the entry for `key` is to be suppressed; otherwise how many were suppressed before it. */
  take(key: string): { suppressed: number } | undefined {
    const now = this.now();
    let state = this.keys.get(key);
    if (!state) {
      if (this.keys.size >= SWEEP_ABOVE) this.sweep(now);
      state = { windowStart: now, written: 0, suppressed: 0 };
      this.keys.set(key, state);
    } else if (now - state.windowStart >= MINUTE_MS) {
      state.windowStart = now;
      state.written = 0;
    }
    if (state.written >= this.perMinute) {
      state.suppressed += 1;
      return undefined;
    }
    state.written += 1;
    const suppressed = state.suppressed;
    state.suppressed = 0;
    return { suppressed };
  }

  private sweep(now: number): void {
    for (const [key, state] of this.keys) {
      if (now - state.windowStart >= MINUTE_MS && state.suppressed === 0) this.keys.delete(key);
    }
  }
}

/** Where refusal entries go: the engine's run store. */
export interface RefusalAuditSink {
  appendAudit(entry: AuditEntry): Promise<void>;
}

/**
 * Audits every 401, 403 and 429 of `scope` as an `access.refused` entry: method, route pattern (never the
 * raw URL with its query), status, code, actor (or `anonymous`), how it was identified, client address and
 * the role needed when known. Never a token or a header's value. At most `perMinute` entries per client
 * address and actor per minute ({@link RefusalBudget}).
 *
 * The entry is written once the response has been sent, so auditing never delays a refusal, and a failed
 * write is logged, never answered. Granted requests need no entry here: what they change is audited by the
 * engine itself (`run.created` with the actor, approvals with `decided_by`, cancellations).
 */
export function auditRefusals(scope: FastifyInstance, sink: RefusalAuditSink, perMinute: number): void {
  const budget = new RefusalBudget(perMinute);
  const errors = new WeakMap<FastifyRequest, unknown>();
  // Writes still under way when the server closes are waited for, so that closing the store after the
  // server never cuts one off.
  const pending = new Set<Promise<void>>();
  scope.addHook('onClose', async () => {
    await Promise.allSettled(pending);
  });
  scope.addHook('onError', async (request, _reply, error) => {
    errors.set(request, error);
  });
  scope.addHook('onResponse', async (request, reply) => {
    const status = reply.statusCode;
    if (!REFUSALS.has(status)) return;
    const error = errors.get(request);
    const named = (error as { actor?: { name: string; via: string } } | undefined)?.actor;
    const actor = request.identity?.name ?? named?.name ?? 'anonymous';
    const allowed = budget.take(`${request.ip}\n${actor}`);
    if (!allowed) return;

    const details = isHttpError(error) ? error.details : undefined;
    const needed =
      typeof details?.needed === 'string' ? details.needed : (request.routeOptions.config.role ?? null);
    const data: Record<string, Json> = {
      method: request.method,
      route: request.routeOptions.url ?? '(no route)',
      status,
      code: error === undefined ? 'REFUSED' : errorResponse(error).body.error.code,
      via: request.identity?.via ?? named?.via ?? null,
      ip: request.ip,
      needed,
    };
    if (request.identity?.grafana) data.grafana = request.identity.grafana;
    if (allowed.suppressed > 0) data.suppressed = allowed.suppressed;
    const write = sink
      .appendAudit({ ts: new Date().toISOString(), actor, kind: 'access.refused', data })
      .catch((e: unknown) => {
        request.log.error({ err: e, status, actor }, 'could not audit a refused request');
      })
      .finally(() => pending.delete(write));
    pending.add(write);
    await write;
  });
}
