import type { Redis } from 'ioredis';
import { z } from 'zod';
import { durationBetween, formatMillis, toMillis } from '../core/duration';
import { NonRetriableError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import type { Change, PlanDraft, RiskLevel } from '../core/plan';
import type { ResourceRef } from '../core/resource';
import { type Action, defineAction, type StepContext } from '../core/step';
import { waitForAcks } from './breaker-control-acks';
import { BreakerControlError } from './breaker-control-errors';
import {
  type BreakerKeys,
  breakerKeys,
  breakerRef,
  DEFAULT_BREAKER_PREFIX,
  KeyPrefix,
  ProviderName,
  ServiceName,
} from './breaker-control-keys';
import {
  ExpiresAfter,
  type ForcedChange,
  type ForcedRecord,
  type ForcedSnapshot,
  isInForce,
  type ReplicaStatus,
  readForced,
  readLastChange,
  readReplicas,
  writeForced,
} from './breaker-control-store';
import type { ForcedState } from './breaker-switch';

const Reason = z.string().trim().min(1).max(500);

const BreakerActionOptions = z.object({
  /** The service whose replicas share the breakers (as given to `startBreakerControl`). */
  service: ServiceName,
  /** Why: stored with the forced state and shown to whoever reads it. */
  reason: Reason,
  /** The key namespace the service's breaker control uses. @default "aiwebtest:breaker" */
  prefix: KeyPrefix.default(DEFAULT_BREAKER_PREFIX),
  /** How long verify waits for every live replica to acknowledge: 100 ms to 10 min. @default "5s" */
  verifyTimeout: durationBetween(100, 600_000, 'expected between 100ms and 10m').default('5s'),
});

/** Options of {@link openBreaker} and {@link closeBreaker}. */
export const ForceBreakerOptions = BreakerActionOptions.extend({
  /** The provider whose breaker is forced, as the chain registers it (`openrouter`). */
  provider: ProviderName,
  /**
   * Return to `auto` this long after the apply (1 s to 7 d), by the Redis clock (every replica agrees). A provider
   * already forced to the same state gets this expiry too. @default never
   */
  expiresAfter: ExpiresAfter.optional(),
});
export type ForceBreakerOptions = z.output<typeof ForceBreakerOptions>;
export type ForceBreakerOptionsInput = z.input<typeof ForceBreakerOptions>;

/** Options of {@link resetBreaker}. */
export const ResetBreakerOptions = BreakerActionOptions.extend({
  /** The provider whose breaker returns to automatic. */
  provider: ProviderName,
});
export type ResetBreakerOptions = z.output<typeof ResetBreakerOptions>;
export type ResetBreakerOptionsInput = z.input<typeof ResetBreakerOptions>;

/** Options of {@link switchToFallback}. */
export const SwitchToFallbackOptions = BreakerActionOptions.extend({
  /** The provider to serve from (`ollama`): every provider before it in the chain is forced open. */
  fallback: ProviderName,
  /** @default "switch to fallback <fallback>" */
  reason: Reason.optional(),
  /** Return to `auto` this long after the apply. @default never */
  expiresAfter: ExpiresAfter.optional(),
});
export type SwitchToFallbackOptions = z.output<typeof SwitchToFallbackOptions>;
export type SwitchToFallbackOptionsInput = z.input<typeof SwitchToFallbackOptions>;

/** One provider's planned change. */
export interface BreakerChange {
  provider: string;
  before: ForcedState;
  after: ForcedState;
  /** The record in force when planned (`null` for `auto`): what revert restores. */
  previous: ForcedRecord | null;
}

/** What a breaker plan fixes. */
export interface BreakerChangeParams {
  service: string;
  prefix: string;
  /** In chain order for {@link switchToFallback}. */
  changes: BreakerChange[];
  reason: string;
  expiresAfterMs: number | null;
  verifyTimeoutMs: number;
}

/** What a breaker apply returns. */
export interface BreakerApplied {
  /** The version of the change. */
  version: number;
  /** Replicas subscribed when it was published. */
  receivers: number;
}

/** The plan's fields: the forced state, and when it returns to `auto`. */
const FIELD = 'forced';
const EXPIRY_FIELD = 'expiresAt';

/**
 * Forces `provider`'s breaker open on every replica of `service` (the manual's Runbook 6 step 2, "update circuit
 * breaker to open state"): calls fail over to the next provider at once instead of waiting for the breaker to
 * trip. Risk `medium`: the provider gets no traffic until the state is reset or expires.
 *
 * - **plan** reads the persisted state: `forced: before → open`, and how many live replicas will receive it.
 * - **apply** writes it (only if it is still what was planned) and publishes it.
 * - **verify** waits (at most `verifyTimeout`) until every live replica holds it and reports that breaker open.
 * - **revert** restores the previous forced state, only while the current one is still the one this action set.
 */
export function openBreaker(
  redis: Redis,
  options: ForceBreakerOptionsInput,
): Action<BreakerChangeParams, BreakerApplied> {
  return forceOne(redis, 'resilience.open-breaker', options, 'open', 'medium');
}

/**
 * Forces `provider`'s breaker closed on every replica (Runbook 6 step 5, "switch back"): calls go to the
 * provider even if it keeps failing, its breaker no longer protects the service. Risk `high`; {@link resetBreaker}
 * hands the decision back to the breaker instead.
 */
export function closeBreaker(
  redis: Redis,
  options: ForceBreakerOptionsInput,
): Action<BreakerChangeParams, BreakerApplied> {
  return forceOne(redis, 'resilience.close-breaker', options, 'closed', 'high');
}

/**
 * Returns `provider`'s breaker to automatic on every replica (deletes the forced state): the breaker judges by
 * itself again. From forced open it passes through half-open, so a probe call decides whether it closes. Risk
 * `medium`: a provider that is still failing gets probe traffic.
 */
export function resetBreaker(
  redis: Redis,
  options: ResetBreakerOptionsInput,
): Action<BreakerChangeParams, BreakerApplied> {
  return forceOne(redis, 'resilience.reset-breaker', options, 'auto', 'medium');
}

/**
 * Switches a service to `fallback` (Runbook 6 steps 1 and 2): forces open every provider that precedes it in
 * the chain order the live replicas registered, so calls go straight to the fallback. Refuses (a
 * {@link NonRetriableError}) when no live replica registered `fallback`, when replicas disagree on what comes
 * before it, or when `fallback` itself is forced open. Risk `medium`.
 */
export function switchToFallback(
  redis: Redis,
  options: SwitchToFallbackOptionsInput,
): Action<BreakerChangeParams, BreakerApplied> {
  const kind = 'resilience.switch-to-fallback';
  const o = parseOptions(kind, SwitchToFallbackOptions, options);
  const keys = breakerKeys(o.prefix, o.service);
  const reason = o.reason ?? `switch to fallback ${o.fallback}`;
  const expiresAfterMs = o.expiresAfter === undefined ? null : toMillis(o.expiresAfter);
  return breakerAction(redis, keys, {
    kind,
    target: breakerRef(redis, o.service),
    risk: 'medium',
    description: `Switch ${o.service} to its fallback provider ${o.fallback} (force open every provider before it)`,
    async plan(ctx) {
      const [snap, replicas] = await Promise.all([readForced(redis, keys), readReplicas(redis, keys)]);
      const preceding = providersBefore(o.service, o.fallback, replicas);
      const fallbackRecord = inForce(snap, o.fallback);
      if (fallbackRecord?.state === 'open') {
        throw new NonRetriableError(
          `The fallback ${o.fallback} of ${o.service} is itself ${describe(fallbackRecord)}: switching to it would leave no provider. Reset or close its breaker first (resetBreaker / closeBreaker).`,
          { code: 'BREAKER_FALLBACK_OPEN', details: { service: o.service, fallback: o.fallback } },
        );
      }
      const changes = preceding
        .map((provider) => change(snap, provider, 'open'))
        .filter((c) => !holds(c.previous, 'open', expiresAfterMs, originOf(ctx)));
      const params: BreakerChangeParams = {
        service: o.service,
        prefix: o.prefix,
        changes,
        reason,
        expiresAfterMs,
        verifyTimeoutMs: toMillis(o.verifyTimeout),
      };
      const order = [...preceding, o.fallback].join(' → ');
      const summary =
        preceding.length === 0
          ? `${o.fallback} is already the first provider of ${o.service} (${order}); nothing to switch`
          : changes.length === 0
            ? `${o.service} already serves from ${o.fallback}: ${preceding.join(', ')} forced open (${order})`
            : `Switch ${o.service} to ${o.fallback}: force open ${changes.map((c) => `${c.provider} (now ${c.before}${c.previous?.expiresAt ? ` until ${c.previous.expiresAt}` : ''})`).join(', ')}${until(expiresAfterMs)}; chain ${order}; ${receivers(replicas)}`;
      return draft(redis, params, summary);
    },
  });
}

/** The providers before `fallback` in the chain every registering live replica reports; refuses when unclear. */
function providersBefore(service: string, fallback: string, replicas: ReplicaStatus[]): string[] {
  const registering = registeringReplicas(replicas);
  const chains = chainsOf(registering);
  if (!registering.some((r) => r.providers.includes(fallback))) {
    throw new NonRetriableError(
      `No live replica of ${service} registered the provider ${fallback}: ${chainsSeen(replicas)}. Check the service and provider names (as the chain registers them) and that the service runs with breaker control.`,
      { code: 'BREAKER_NO_FALLBACK', details: { service, fallback } },
    );
  }
  const before = registering.map((r) => {
    const at = r.providers.indexOf(fallback);
    return at < 0 ? null : r.providers.slice(0, at);
  });
  const distinct = new Set(before.map((b) => JSON.stringify(b)));
  const first = before[0];
  if (distinct.size > 1 || !first) {
    throw new NonRetriableError(
      `Live replicas of ${service} disagree on the providers before ${fallback}: ${chains}. A rollout in progress? Wait until every replica runs the same chain, or force providers one by one with openBreaker.`,
      { code: 'BREAKER_ORDER_DISAGREES', details: { service, fallback } },
    );
  }
  return first;
}

/** Live replicas whose heartbeat can be read and whose chain has registered its providers. */
function registeringReplicas(replicas: ReplicaStatus[]): ReplicaStatus[] {
  return replicas.filter((r) => !r.problem && r.providers.length > 0);
}

function chainsOf(replicas: ReplicaStatus[]): string {
  return replicas.map((r) => `${r.replicaId} [${r.providers.join(', ')}]`).join(', ');
}

/** What the live replicas registered, for a refusal's message. */
function chainsSeen(replicas: ReplicaStatus[]): string {
  const registering = registeringReplicas(replicas);
  if (registering.length > 0) return `their chains are ${chainsOf(registering)}`;
  if (replicas.length > 0) return `${replicas.length} live replica(s), none has registered a chain yet`;
  return 'no replica is live';
}

/**
 * Refuses `provider` when replicas are live and none registered it: a misspelt name would otherwise pass plan,
 * apply and verify (no replica has such a breaker, so none has one to report). With no replica live there is no
 * chain to check against (the plan says so). Removing a stored forced state is allowed whatever the chains say:
 * it cleans up after a provider the chains no longer have.
 */
function requireRegistered(service: string, provider: string, replicas: ReplicaStatus[], removing: boolean) {
  if (replicas.length === 0 || removing) return;
  if (registeringReplicas(replicas).some((r) => r.providers.includes(provider))) return;
  throw new NonRetriableError(
    `No live replica of ${service} registered the provider ${provider}: ${chainsSeen(replicas)}. Check the provider name (as the chain registers it: lower case) and that the service's chain runs with breaker control.`,
    { code: 'BREAKER_UNKNOWN_PROVIDER', details: { service, provider } },
  );
}

/**
 * Whether `current` already is what the action asks: the same state and the same expiry. A relative expiry
 * (`expiresAfter`) is met only by the record this very step wrote (a plan after its apply, or after an engine
 * crash: nothing left to do); any other record gets the new expiry, so `1h` over an open state that ends in a
 * minute extends it, and no `expiresAfter` over an expiring one makes it last.
 */
function holds(
  current: ForcedRecord | null,
  after: ForcedState,
  expiresAfterMs: number | null,
  origin: string,
): boolean {
  if (after === 'auto') return current === null;
  if (current?.state !== after) return false;
  if (expiresAfterMs === null) return current.expiresAt === null;
  return (
    current.origin === origin &&
    current.expiresAt !== null &&
    Date.parse(current.expiresAt) - Date.parse(current.forcedAt) === expiresAfterMs
  );
}

/** The `origin` of the records a step writes: also how its plan recognises them. */
function originOf(ctx: StepContext): string {
  return `runbook ${ctx.runbookId}, run ${ctx.runId}, step ${ctx.step}`;
}

function forceOne(
  redis: Redis,
  kind: string,
  options: ForceBreakerOptionsInput | ResetBreakerOptionsInput,
  after: ForcedState,
  risk: RiskLevel,
): Action<BreakerChangeParams, BreakerApplied> {
  const o: ForceBreakerOptions =
    after === 'auto'
      ? parseOptions(kind, ResetBreakerOptions, options)
      : parseOptions(kind, ForceBreakerOptions, options);
  const expiresAfterMs = o.expiresAfter === undefined ? null : toMillis(o.expiresAfter);
  const keys = breakerKeys(o.prefix, o.service);
  const what = `the ${o.provider} breaker of ${o.service}`;
  const verb = after === 'auto' ? 'Return' : 'Force';
  const to = after === 'auto' ? 'to automatic' : after;
  return breakerAction(redis, keys, {
    kind,
    target: breakerRef(redis, o.service, o.provider),
    risk,
    description: `${verb} ${what} ${to} on every replica`,
    async plan(ctx) {
      const [snap, replicas] = await Promise.all([readForced(redis, keys), readReplicas(redis, keys)]);
      const c = change(snap, o.provider, after);
      requireRegistered(o.service, o.provider, replicas, after === 'auto' && c.previous !== null);
      const expiry = after === 'auto' ? null : expiresAfterMs;
      const done = holds(c.previous, after, expiry, originOf(ctx));
      const params: BreakerChangeParams = {
        service: o.service,
        prefix: o.prefix,
        changes: done ? [] : [c],
        reason: o.reason,
        expiresAfterMs: expiry,
        verifyTimeoutMs: toMillis(o.verifyTimeout),
      };
      const summary = done
        ? `${capitalize(what)} is already ${after === 'auto' ? 'automatic' : describe(c.previous)}`
        : c.before === after
          ? `Keep ${what} ${after}, with a new expiry: ${expiry === null ? 'none' : `${formatMillis(expiry)} after the apply, then automatic`} (now ${describe(c.previous)}); ${receivers(replicas)}`
          : `${verb} ${what} ${to} (now ${describe(c.previous)})${until(expiry)}; ${receivers(replicas)}`;
      return draft(redis, params, summary);
    },
  });
}

/** apply / verify / revert, the same for every breaker action. */
function breakerAction(
  redis: Redis,
  keys: BreakerKeys,
  spec: {
    kind: string;
    target: ResourceRef;
    risk: RiskLevel;
    description: string;
    plan(ctx: StepContext): Promise<PlanDraft<BreakerChangeParams>>;
  },
): Action<BreakerChangeParams, BreakerApplied> {
  return defineAction<BreakerChangeParams, BreakerApplied>({
    kind: spec.kind,
    target: spec.target,
    risk: spec.risk,
    destructive: false,
    description: spec.description,
    plan: spec.plan,

    async apply(ctx, plan) {
      const p = plan.params;
      const writes: ForcedChange[] = p.changes.map((c) => ({
        provider: c.provider,
        state: c.after,
        reason: p.reason,
        actor: ctx.actor,
        origin: originOf(ctx),
        // The plan's hash marks the records as this action's, so revert can tell them from later changes.
        changeId: plan.hash,
        expiresAfterMs: p.expiresAfterMs,
        expect: c.previous ? { version: c.previous.version } : { auto: true },
      }));
      const result = await writeForced(redis, keys, writes);
      if (!result.ok) {
        throw new BreakerControlError(
          'BREAKER_CHANGED',
          `The forced state of ${result.provider} (service ${p.service}) changed after the plan: it is now ${describe(result.current)}. Nothing was written; plan again.`,
          { details: { service: p.service, provider: result.provider } },
        );
      }
      ctx.log(
        `${p.changes.map((c) => `${c.provider} ${c.before} → ${c.after}`).join(', ')} (version ${result.message.version}), published to ${result.receivers} subscriber(s)`,
      );
      return { version: result.message.version, receivers: result.receivers };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      // After an engine crash the apply's return value is lost: the version is in `…:last`, with our change id.
      const version =
        applied.data?.version ?? (await writtenVersion(redis, keys, p.changes, applied.plan.hash));
      return waitForAcks(
        redis,
        keys,
        p.service,
        p.changes.map((c) => ({ provider: c.provider, state: c.after })),
        {
          changeId: applied.plan.hash,
          version,
          timeoutMs: p.verifyTimeoutMs,
          signal: ctx.signal,
        },
      );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      const snap = await readForced(redis, keys);
      const restores: ForcedChange[] = [];
      const refused: string[] = [];
      for (const c of p.changes) {
        const now = inForce(snap, c.provider);
        // A reset leaves no record to recognise: its last change must still be this action's (someone who
        // forced the provider and reset it again since made a change revert must not undo).
        const last =
          c.after === 'auto' && now === null ? await readLastChange(redis, keys, c.provider) : null;
        const ours =
          c.after === 'auto'
            ? now === null && last?.changeId === applied.plan.hash
            : now?.changeId === applied.plan.hash;
        const previous = isInForce(c.previous, snap.serverTime) ? c.previous : null;
        if (!ours) {
          // Already back where it was (it expired back to auto, or the apply never happened): nothing to undo.
          if ((now?.state ?? 'auto') === (previous?.state ?? 'auto') && now?.version === previous?.version)
            continue;
          refused.push(
            now === null && last
              ? `${c.provider} is now automatic after a later change (version ${last.version})`
              : `${c.provider} is now ${describe(now)}`,
          );
          continue;
        }
        restores.push(
          previous
            ? {
                provider: c.provider,
                state: previous.state,
                reason: previous.reason,
                actor: previous.actor,
                origin: previous.origin,
                changeId: previous.changeId,
                forcedAtMs: Date.parse(previous.forcedAt),
                expiresAtMs: previous.expiresAt === null ? null : Date.parse(previous.expiresAt),
                expect: guardOf(c.after, applied.plan.hash),
              }
            : {
                provider: c.provider,
                state: 'auto',
                reason: `revert of ${p.reason}`,
                actor: ctx.actor,
                expect: guardOf(c.after, applied.plan.hash),
              },
        );
      }
      const refuse = (why: string[]) =>
        new NonRetriableError(
          `Not reverting the breakers of ${p.service}: ${why.join('; ')} — changed since this action set it. Restoring the earlier state would undo that change; decide by hand (openBreaker, closeBreaker, resetBreaker).`,
          { code: 'BREAKER_CHANGED_SINCE', details: { service: p.service, refused: why } },
        );
      if (refused.length > 0) throw refuse(refused);
      if (restores.length === 0) return;
      const result = await writeForced(redis, keys, restores);
      if (!result.ok) throw refuse([`${result.provider} is now ${describe(result.current)}`]);
      ctx.log(
        `restored ${p.changes.map((c) => `${c.provider} → ${c.before}`).join(', ')} (version ${result.message.version})`,
      );
    },
  });
}

/** The version of the change `changeId` made to `changes` (0 when a later change replaced it: verify fails then). */
async function writtenVersion(
  redis: Redis,
  keys: BreakerKeys,
  changes: readonly BreakerChange[],
  changeId: string,
): Promise<number> {
  let version = 0;
  for (const c of changes) {
    const last = await readLastChange(redis, keys, c.provider);
    if (last?.changeId === changeId) version = Math.max(version, last.version);
  }
  return version;
}

/** The guard of a revert's write: the provider still holds what this action wrote, and nobody changed it since. */
function guardOf(after: ForcedState, changeId: string): ForcedChange['expect'] {
  return after === 'auto' ? { lastChangeId: changeId } : { changeId };
}

function inForce(snap: ForcedSnapshot, provider: string): ForcedRecord | null {
  const record = snap.records.get(provider);
  return isInForce(record, snap.serverTime) ? record : null;
}

function change(snap: ForcedSnapshot, provider: string, after: ForcedState): BreakerChange {
  const previous = inForce(snap, provider);
  return { provider, before: previous?.state ?? 'auto', after, previous };
}

/**
 * The plan: per provider, `forced` (before → after) when the state changes and `expiresAt` (the current expiry →
 * `"1h after the apply"`, `null` for none) when the expiry does; deterministic for a given world.
 */
function draft(redis: Redis, params: BreakerChangeParams, summary: string): PlanDraft<BreakerChangeParams> {
  const changes: Change[] = [];
  for (const c of params.changes) {
    const target = breakerRef(redis, params.service, c.provider);
    if (c.before !== c.after) changes.push({ target, field: FIELD, before: c.before, after: c.after });
    if (c.after === 'auto') continue;
    const before = c.previous?.expiresAt ?? null;
    const after =
      params.expiresAfterMs === null ? null : `${formatMillis(params.expiresAfterMs)} after the apply`;
    if (before !== after) changes.push({ target, field: EXPIRY_FIELD, before, after });
  }
  return { summary, changes, params };
}

function describe(record: ForcedRecord | null): string {
  if (!record) return 'automatic';
  const expiry = record.expiresAt ? `, until ${record.expiresAt}` : '';
  return `forced ${record.state} by ${record.actor} since ${record.forcedAt} (${record.reason}${expiry})`;
}

function receivers(replicas: ReplicaStatus[]): string {
  if (replicas.length === 0)
    return 'no replica is live: it is persisted, and replicas that start begin in it (no chain to check the provider name against)';
  return `${replicas.length} live replica(s) will receive it: ${replicas.map((r) => r.replicaId).join(', ')}`;
}

function until(expiresAfterMs: number | null): string {
  return expiresAfterMs === null ? '' : ` for ${formatMillis(expiresAfterMs)}, then automatic`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
