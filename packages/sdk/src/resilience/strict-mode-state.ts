import { z } from 'zod';

/**
 * Strict mode as stored in Redis under `<prefix>:strict-mode:<service>` (JSON). The action writes every field;
 * an operator may write just `{"limit":10}` or `{"factor":0.1}` with `redis-cli SET … PX …` and every limiter
 * of the service honours it the same way. Strict mode is off when the key is absent, holds the off marker that
 * {@link disableStrictMode} leaves (`{"off":true,"id":…}`), or holds anything unreadable.
 */
export const StrictModeState = z
  .object({
    /** Who set it: `<runId>/<step>` for {@link enableStrictMode}; revert and disable compare it. @default "manual" */
    id: z.string().min(1).default('manual'),
    /** Ceiling on every key's `limit` (and `burst`) per its period. @default null */
    limit: z.number().int().min(1).nullable().default(null),
    /** Multiplier in (0, 1] on every key's `limit` and `burst` (rounded down, at least 1). @default null */
    factor: z.number().gt(0).max(1).nullable().default(null),
    /** Why it was enabled, for people reading it. @default null */
    reason: z.string().max(500).nullable().default(null),
    /** How long it was set to last, in ms; `null` until disabled. @default null */
    expiresAfter: z.number().int().positive().nullable().default(null),
    /** When it was enabled (Redis clock, ms since the epoch). @default null */
    enabledAt: z.number().nullable().default(null),
    /** When it ends (Redis clock, ms since the epoch); the key's TTL removes it then. @default null */
    expiresAt: z.number().nullable().default(null),
  })
  .refine((s) => s.limit !== null || s.factor !== null, {
    message: 'strict mode needs a limit or a factor',
    path: ['limit'],
  });
/** Strict mode as every limiter of a service reads it. */
export type StrictModeState = z.output<typeof StrictModeState>;

/** The Redis key that holds strict mode for `service`. */
export function strictModeKey(prefix: string, service: string): string {
  return `${prefix}:strict-mode:${service}`;
}

/** Parses the stored JSON; `null` when off or unreadable (an unreadable value does not tighten anything). */
export function parseStrictModeState(raw: string | null): StrictModeState | null {
  const json = parseJson(raw);
  if (isOffMarker(json)) return null;
  const parsed = StrictModeState.safeParse(withRenamedFields(json));
  return parsed.success ? parsed.data : null;
}

/**
 * Earlier versions stored `expiresAfter` as `expiresIn`: a state they wrote (still in force after an upgrade)
 * keeps its lifetime, and so plans and the outlive rule compare it correctly.
 */
function withRenamedFields(json: unknown): unknown {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return json;
  const state = json as Record<string, unknown>;
  if (state.expiresAfter !== undefined || state.expiresIn === undefined) return json;
  return { ...state, expiresAfter: state.expiresIn };
}

/**
 * The value {@link disableStrictMode} leaves instead of deleting the key: strict mode off, and the step that
 * turned it off. It has no TTL, so the step's revert can tell that nobody changed the key since (someone
 * else's enable and disable would leave their own id).
 */
export function strictModeOffMarker(id: string): string {
  return JSON.stringify({ off: true, id });
}

/** Whether `raw` turns strict mode off on purpose: no key, or an off marker (not merely an unreadable value). */
export function isStrictModeOff(raw: string | null): boolean {
  return raw === null || isOffMarker(parseJson(raw));
}

/** Who turned strict mode off, from an off marker; `null` for anything else. */
export function offMarkerId(raw: string | null): string | null {
  const json = parseJson(raw);
  return isOffMarker(json) && typeof json.id === 'string' ? json.id : null;
}

function parseJson(raw: string | null): unknown {
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function isOffMarker(json: unknown): json is { off: true; id?: unknown } {
  return typeof json === 'object' && json !== null && (json as { off?: unknown }).off === true;
}

/** A key's limits: `limit` units per `periodMs`, at most `burst` at once. */
export interface EffectiveLimits {
  limit: number;
  periodMs: number;
  burst: number;
}

/**
 * The limits strict mode leaves: `factor` scales limit and burst down (at least 1 each), `limit` caps both.
 * The period is unchanged. Without strict mode the limits are returned as they are.
 */
export function strictLimits(limits: EffectiveLimits, state: StrictModeState | null): EffectiveLimits {
  if (!state) return limits;
  let { limit, burst } = limits;
  if (state.factor !== null) {
    limit = Math.max(1, Math.floor(limit * state.factor));
    burst = Math.max(1, Math.floor(burst * state.factor));
  }
  if (state.limit !== null) {
    limit = Math.min(limit, state.limit);
    burst = Math.min(burst, state.limit);
  }
  return { limit, periodMs: limits.periodMs, burst };
}
