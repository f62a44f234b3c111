import type { Redis } from 'ioredis';
import { z } from 'zod';
import { formatMillis, toMillis } from '../core/duration';
import { NonRetriableError } from '../core/errors';
import { type Cell, finding } from '../core/finding';
import type { Json } from '../core/json';
import { parseOptions } from '../core/parse-options';
import type { Change } from '../core/plan';
import type { ResourceRef } from '../core/resource';
import { type Action, defineAction, type StepContext } from '../core/step';
import { LuaScript } from '../redis/lua-script';
import { ExpiresAfter } from './breaker-control-store';
import {
  DISABLE_STRICT_MODE_SCRIPT,
  ENABLE_STRICT_MODE_SCRIPT,
  RESTORE_STRICT_MODE_SCRIPT,
} from './lua/strict-mode';
import { redisRef, ServiceName } from './names';
import { RedisKeyPrefix } from './rate-limit-keys';
import { RatePeriod } from './rate-limiter';
import {
  type EffectiveLimits,
  isStrictModeOff,
  offMarkerId,
  parseStrictModeState,
  type StrictModeState,
  strictLimits,
  strictModeKey,
  strictModeOffMarker,
} from './strict-mode-state';

/**
 * A limiter to show in a strict-mode plan: pass the {@link RateLimiter} itself (its `name`, `limit`, `period`
 * and `burst` are read) or the same fields by hand for a limiter that lives in another process.
 */
export const StrictModeLimiter = z.object({
  /** The limiter's name. */
  name: ServiceName,
  /** Its own limit per period. */
  limit: z.number().int().min(1),
  /** Its period: ms or `"1m"`. */
  period: RatePeriod,
  /** Its burst. @default limit */
  burst: z.number().int().min(1).optional(),
});
/** See {@link StrictModeLimiter}. */
export type StrictModeLimiter = z.input<typeof StrictModeLimiter>;

const Scope = {
  /** The service whose limiters honour it (their `service` option). @default "default" */
  service: ServiceName.default('default'),
  /** The limiters' key prefix (their `prefix` option). @default "ratelimit" */
  prefix: RedisKeyPrefix.default('ratelimit'),
  /** Limiters whose limit before → after the plan lists; strict mode reaches every limiter of the service either way. @default [] */
  limiters: z.array(StrictModeLimiter).default([]),
};

/** Options of {@link enableStrictMode}. */
export const EnableStrictModeOptions = z
  .object({
    ...Scope,
    /** Ceiling on every key's limit and burst, per the limiter's period (the manual's `RATE_LIMIT_GLOBAL=10`). */
    limit: z.number().int().min(1).optional(),
    /** Multiplier in (0, 1] on every key's limit and burst. With `limit`, both apply. */
    factor: z.number().gt(0).max(1).optional(),
    /**
     * Strict mode ends by itself after this long (the key's TTL in Redis), from 1s to 7d. A strict mode in
     * force that would outlive it is not replaced (the plan refuses): it would end with this one. @default never
     */
    // The same bounds as a forced breaker state's expiry: one rule for every switch an incident flips.
    expiresAfter: ExpiresAfter.optional(),
    /** Why, for whoever reads the state later (no secrets: it is stored and shown). @default none */
    reason: z.string().max(500).optional(),
  })
  .refine((o) => o.limit !== undefined || o.factor !== undefined, {
    message: 'give a limit, a factor, or both',
    path: ['limit'],
  });
/** {@link EnableStrictModeOptions} as written by users. */
export type EnableStrictModeOptionsInput = z.input<typeof EnableStrictModeOptions>;

/** Options of {@link disableStrictMode}. */
export const DisableStrictModeOptions = z.object(Scope);
/** {@link DisableStrictModeOptions} as written by users. */
export type DisableStrictModeOptionsInput = z.input<typeof DisableStrictModeOptions>;

/** The strict-mode setting a plan shows and compares: what was asked for, not when. `null` is off. */
export type StrictModeSetting = {
  id: string;
  limit: number | null;
  factor: number | null;
  expiresAfter: number | null;
  reason: string | null;
} | null;

/** What an enable plan fixes. */
export interface EnableStrictModeParams {
  key: string;
  /** The stored value the plan saw (`null`: off); apply writes only over exactly this, revert puts it back. */
  previousRaw: string | null;
  /** When the value the plan saw ends (ms by Redis' clock), `null` for never or off. */
  previousExpiresAt: number | null;
  /** The setting to write. */
  next: NonNullable<StrictModeSetting>;
}

/** What a disable plan fixes. */
export interface DisableStrictModeParams {
  key: string;
  /** The stored value to remove, and to restore on revert. */
  previousRaw: string | null;
  previousExpiresAt: number | null;
  /** The off marker apply writes in its place (it names this step, so revert can tell nobody changed it since). */
  offMarker: string;
}

const enableScript = new LuaScript(ENABLE_STRICT_MODE_SCRIPT);
const disableScript = new LuaScript(DISABLE_STRICT_MODE_SCRIPT);
const restoreScript = new LuaScript(RESTORE_STRICT_MODE_SCRIPT);

/** Reads strict mode of `service` as every limiter of it sees it; `null` when off. */
export async function readStrictMode(
  redis: Redis,
  options: { service?: string; prefix?: string } = {},
): Promise<StrictModeState | null> {
  const o = parseOptions('strict mode', DisableStrictModeOptions, options);
  return parseStrictModeState(await redis.get(strictModeKey(o.prefix, o.service)));
}

/**
 * The manual's Runbook 12, "Enable rate limiting (strict mode)": every rate limiter of a service tightens at
 * once — each key's limit capped at `limit` and/or scaled by `factor` — until `expiresAfter` passes (Redis
 * removes the key) or it is disabled. Running limiters pick the change up within their poll interval (≤ 1 s).
 *
 * - **plan** reads the state: `strictMode: before → after`, and for each of `limiters`, its limit before →
 *   after. No change when this very step already enabled it. Refuses (`STRICT_MODE_OUTLIVES`) to replace a
 *   strict mode in force that would outlive this one (one until disabled, or ending later): it would be lost
 *   when this one expires.
 * - **apply** writes the state only if it is still what the plan saw (one Lua script, Redis' clock).
 * - **verify** reads it back.
 * - **revert** restores the previous state (with what was left of its lifetime) only while the state is still
 *   the one this step wrote; a state someone set since is refused, not undone; an expired one is left gone.
 *
 * Risk `medium` (legitimate traffic is throttled too), not destructive.
 */
export function enableStrictMode(
  redis: Redis,
  options: EnableStrictModeOptionsInput,
): Action<EnableStrictModeParams, { written: string }> {
  const o = parseOptions('resilience.enable-strict-mode', EnableStrictModeOptions, options);
  const key = strictModeKey(o.prefix, o.service);
  const target = strictModeRef(redis, o.prefix, o.service);
  const limiters = o.limiters.map(ownLimits);
  const expiresAfter = o.expiresAfter === undefined ? null : toMillis(o.expiresAfter);
  const wanted = [
    o.limit !== undefined && `limits capped at ${o.limit}`,
    o.factor !== undefined && `limits × ${o.factor}`,
  ]
    .filter(Boolean)
    .join(' and ');
  const lifetime = expiresAfter === null ? 'until disabled' : `for ${formatMillis(expiresAfter)}`;

  return defineAction<EnableStrictModeParams, { written: string }>({
    kind: 'resilience.enable-strict-mode',
    target,
    risk: 'medium',
    destructive: false,
    description: `Enable strict rate limiting for service ${o.service}: ${wanted}, ${lifetime}`,

    async plan(ctx) {
      const { raw, state, pttl } = await read(redis, key);
      const next: NonNullable<StrictModeSetting> = {
        id: stepId(ctx),
        limit: o.limit ?? null,
        factor: o.factor ?? null,
        expiresAfter,
        reason: o.reason ?? null,
      };
      const before = setting(state);
      const done = before !== null && before.id === next.id;
      const params = { key, previousRaw: raw, previousExpiresAt: state?.expiresAt ?? null, next };
      if (done) {
        return {
          summary: `Strict mode of service ${o.service} is already enabled by this step`,
          changes: [],
          params,
        };
      }
      if (state && outlives(pttl, expiresAfter)) throw outlivesError(o.service, state, pttl, lifetime);
      const nextState = asState(next);
      return {
        summary: `Enable strict mode for service ${o.service} (${wanted}, ${lifetime})${state ? ', replacing the one in place' : ''}; every limiter of the service applies it within 1s`,
        changes: [
          { target, field: 'strictMode', before, after: next },
          ...limiterChanges(redis, o.prefix, limiters, state, nextState),
        ],
        params,
      };
    },

    async apply(ctx, plan) {
      const { previousRaw, next } = plan.params;
      // The plan's state in force, if any, must not outlive this one: checked again with the TTL of now.
      const replaced = parseStrictModeState(previousRaw);
      const [ok, value, pttl] = (await enableScript.run(
        redis,
        [key],
        [
          previousRaw === null ? '0' : '1',
          previousRaw ?? '',
          JSON.stringify(next),
          next.expiresAfter ?? '',
          replaced ? '1' : '0',
        ],
      )) as [number, string, number?];
      if (ok === 2 && replaced) throw outlivesError(o.service, replaced, pttl ?? -1, lifetime);
      if (ok !== 1) throw changedSincePlan(o.service, value);
      ctx.log(`strict mode of service ${o.service} enabled (${wanted}, ${lifetime})`);
      return { written: value };
    },

    async verify(_ctx, applied) {
      const { state } = await read(redis, key);
      const want = applied.plan.params.next;
      const evidence = limiterEvidence(limiters, state);
      if (state && state.id === want.id && state.limit === want.limit && state.factor === want.factor) {
        return finding(
          'ok',
          `Strict mode of service ${o.service} is on (${describe(state)})`,
          { state: setting(state) },
          evidence,
        );
      }
      return finding(
        'fail',
        `Strict mode of service ${o.service} is ${state ? `set by ${state.id} (${describe(state)})` : 'off'}, not the one this step enabled`,
        { state: setting(state) },
        evidence,
      );
    },

    async revert(ctx, applied) {
      const { previousRaw, previousExpiresAt, next } = applied.plan.params;
      const [status, current] = (await restoreScript.run(
        redis,
        [key],
        ['id', next.id, previousRaw ?? '', previousExpiresAt ?? ''],
      )) as [number, string];
      if (status === 0) {
        if (current === '') {
          ctx.log(`strict mode of service ${o.service} had already ended; nothing to revert`);
          return;
        }
        const offBy = offMarkerId(current);
        if (offBy !== null) {
          ctx.log(`strict mode of service ${o.service} was turned off since, by ${offBy}; nothing to revert`);
          return;
        }
        throw changedSinceApply(o.service, current, 'restore the previous state');
      }
      ctx.log(
        status === 2
          ? `strict mode of service ${o.service} turned off: the one it replaced would have ended by now`
          : `strict mode of service ${o.service} restored to ${previousRaw === null ? 'off' : 'the previous state'}`,
      );
    },
  });
}

/**
 * Turns strict mode of a service off (the inverse of {@link enableStrictMode}, for when the incident is over
 * before its expiry).
 *
 * - **plan** reads the state: `strictMode: before → null`, and each of `limiters`' limit before → after.
 * - **apply** replaces the state, only if it is still exactly what the plan saw, by an off marker naming this
 *   step (`{"off":true,"id":…}`, no TTL; limiters read it as off).
 * - **verify** reads that it is off.
 * - **revert** puts the previous state back (with what is left of its lifetime) only while the key still holds
 *   this step's off marker: after anyone else's change, even an enable and disable since, it is refused.
 *
 * Risk `medium` (it lifts a containment measure), not destructive.
 */
export function disableStrictMode(
  redis: Redis,
  options: DisableStrictModeOptionsInput = {},
): Action<DisableStrictModeParams, { endedAt: number | null }> {
  const o = parseOptions('resilience.disable-strict-mode', DisableStrictModeOptions, options);
  const key = strictModeKey(o.prefix, o.service);
  const target = strictModeRef(redis, o.prefix, o.service);
  const limiters = o.limiters.map(ownLimits);

  return defineAction<DisableStrictModeParams, { endedAt: number | null }>({
    kind: 'resilience.disable-strict-mode',
    target,
    risk: 'medium',
    destructive: false,
    description: `Disable strict rate limiting for service ${o.service}`,

    async plan(ctx) {
      const { raw, state } = await read(redis, key);
      const offMarker = strictModeOffMarker(stepId(ctx));
      const params = { key, previousRaw: raw, previousExpiresAt: state?.expiresAt ?? null, offMarker };
      if (isStrictModeOff(raw)) {
        const by = raw === offMarker ? ' (by this step)' : '';
        return { summary: `Strict mode of service ${o.service} is already off${by}`, changes: [], params };
      }
      return {
        summary: `Disable strict mode for service ${o.service} (${state ? describe(state) : 'an unreadable value'}); every limiter of the service returns to its own limits within 1s`,
        changes: [
          { target, field: 'strictMode', before: setting(state), after: null },
          ...limiterChanges(redis, o.prefix, limiters, state, null),
        ],
        params,
      };
    },

    async apply(ctx, plan) {
      const { previousRaw, offMarker } = plan.params;
      const [ok, value] = (await disableScript.run(redis, [key], [previousRaw ?? '', offMarker])) as [
        number,
        string,
      ];
      if (ok !== 1) throw changedSincePlan(o.service, value);
      ctx.log(`strict mode of service ${o.service} disabled`);
      return { endedAt: value === '' ? null : Number(value) };
    },

    async verify() {
      const { raw, state } = await read(redis, key);
      return isStrictModeOff(raw)
        ? finding(
            'ok',
            `Strict mode of service ${o.service} is off`,
            { state: null },
            limiterEvidence(limiters, null),
          )
        : finding(
            'fail',
            `Strict mode of service ${o.service} is on again (${state ? describe(state) : 'unreadable'})`,
            {
              state: setting(state),
            },
          );
    },

    async revert(ctx, applied) {
      const { previousRaw, previousExpiresAt, offMarker } = applied.plan.params;
      const endsAt = applied.data?.endedAt ?? previousExpiresAt;
      const [status, current] = (await restoreScript.run(
        redis,
        [key],
        ['exact', offMarker, previousRaw ?? '', endsAt ?? ''],
      )) as [number, string];
      if (status === 0) throw changedSinceApply(o.service, current, 'turn it back on');
      ctx.log(
        status === 2
          ? `strict mode of service ${o.service} left off: it would have ended by now`
          : `strict mode of service ${o.service} turned back on`,
      );
    },
  });
}

/** The stored value, as limiters read it, and its TTL in ms (-1: none, -2: no key), read at one instant. */
async function read(
  redis: Redis,
  key: string,
): Promise<{ raw: string | null; state: StrictModeState | null; pttl: number }> {
  const replies = await redis.multi().get(key).pttl(key).exec();
  const [getReply, pttlReply] = replies ?? [];
  if (!getReply || !pttlReply) throw new Error(`Reading ${key} was aborted (the transaction did not run).`);
  if (getReply[0]) throw getReply[0];
  if (pttlReply[0]) throw pttlReply[0];
  const raw = getReply[1] as string | null;
  return { raw, state: parseStrictModeState(raw), pttl: pttlReply[1] as number };
}

/** Strict mode of `service` with `prefix`, in the Redis server `redis` talks to (what locks and budgets key on). */
function strictModeRef(redis: Redis, prefix: string, service: string): ResourceRef {
  return redisRef(redis, 'strict-mode', prefix, service);
}

/** Whether a strict mode with `pttl` left (-1: no end) would outlive one that lasts `expiresAfter` (null: no end). */
function outlives(pttl: number, expiresAfter: number | null): boolean {
  return expiresAfter !== null && (pttl === -1 || pttl > expiresAfter);
}

/** A step's identity in the stored state: stable across re-plans of one step, different for any other. */
function stepId(ctx: StepContext): string {
  return `${ctx.runId}/${ctx.step}`;
}

function setting(state: StrictModeState | null): StrictModeSetting {
  if (!state) return null;
  const { id, limit, factor, expiresAfter, reason } = state;
  return { id, limit, factor, expiresAfter, reason };
}

function asState(s: NonNullable<StrictModeSetting>): StrictModeState {
  return { ...s, enabledAt: null, expiresAt: null };
}

function describe(state: StrictModeState): string {
  const parts = [
    state.limit !== null && `limits capped at ${state.limit}`,
    state.factor !== null && `limits × ${state.factor}`,
    state.expiresAt !== null && `until ${new Date(state.expiresAt).toISOString()}`,
  ];
  return parts.filter(Boolean).join(', ');
}

function ownLimits(l: z.output<typeof StrictModeLimiter>): { name: string; limits: EffectiveLimits } {
  return {
    name: l.name,
    limits: { limit: l.limit, periodMs: toMillis(l.period), burst: l.burst ?? l.limit },
  };
}

function shown(limits: EffectiveLimits): Json {
  return { limit: limits.limit, period: formatMillis(limits.periodMs), burst: limits.burst };
}

function limiterChanges(
  redis: Redis,
  prefix: string,
  limiters: { name: string; limits: EffectiveLimits }[],
  before: StrictModeState | null,
  after: StrictModeState | null,
): Change[] {
  return limiters.flatMap(({ name, limits }) => {
    const from = strictLimits(limits, before);
    const to = strictLimits(limits, after);
    if (from.limit === to.limit && from.burst === to.burst) return [];
    const target = redisRef(redis, 'rate-limiter', prefix, name);
    return [{ target, field: 'limit', before: shown(from), after: shown(to) }];
  });
}

function limiterEvidence(
  limiters: { name: string; limits: EffectiveLimits }[],
  state: StrictModeState | null,
) {
  if (limiters.length === 0) return [];
  const rows: Cell[][] = limiters.map(({ name, limits }) => {
    const now = strictLimits(limits, state);
    return [
      name,
      `${limits.limit}/${formatMillis(limits.periodMs)}`,
      `${now.limit}/${formatMillis(now.periodMs)}`,
    ];
  });
  return [
    { kind: 'table' as const, title: 'Rate limiters', columns: ['limiter', 'own limit', 'limit now'], rows },
  ];
}

function changedSincePlan(service: string, current: string): NonRetriableError {
  const state = parseStrictModeState(current || null);
  return new NonRetriableError(
    `Strict mode of service ${service} changed since the plan (now ${currentText(current, false)}). Nothing was written; plan again.`,
    { code: 'STRICT_MODE_CHANGED', details: { current: setting(state) } },
  );
}

function changedSinceApply(service: string, current: string, what: string): NonRetriableError {
  const state = parseStrictModeState(current || null);
  return new NonRetriableError(
    `Strict mode of service ${service} was changed since this action applied (now ${currentText(current, true)}). Refusing to ${what} over that change; decide by hand which state it should have.`,
    { code: 'STRICT_MODE_CHANGED', details: { current: setting(state) } },
  );
}

/** What the key holds now, for a message: `current` is the raw value, '' for no key. */
function currentText(current: string, detailed: boolean): string {
  const state = parseStrictModeState(current || null);
  if (state) return detailed ? `set by ${state.id}: ${describe(state)}` : `set by ${state.id}`;
  if (current === '') return 'off';
  const offBy = offMarkerId(current);
  return offBy === null ? 'an unreadable value' : `off, turned off by ${offBy}`;
}

function outlivesError(
  service: string,
  state: StrictModeState,
  pttl: number,
  lifetime: string,
): NonRetriableError {
  const left = pttl === -1 ? 'until disabled' : `for another ${formatMillis(pttl)}`;
  return new NonRetriableError(
    `Strict mode of service ${service} is already on ${left} (set by ${state.id}: ${describe(state)}). A strict mode ${lifetime} over it would end it too when it expires. Enable one without expiresAfter (its revert gives the current one back), or one lasting at least as long, or disable the current one first.`,
    {
      code: 'STRICT_MODE_OUTLIVES',
      details: { current: setting(state), remainingMs: pttl === -1 ? null : pttl },
    },
  );
}
