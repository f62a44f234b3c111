import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import type { ResourceRef } from '../../core/resource';
import { type Action, defineAction, type StepContext } from '../../core/step';
import { AliasName, ModelName, VersionNumber } from './names';
import type { MlflowRegistry } from './registry';

/** What an alias move (rollback or promotion) fixes at plan time. */
export type AliasMoveParams = {
  model: string;
  /** The alias that moves, e.g. `champion`. */
  alias: string;
  /** The alias that keeps the version moved away from (`previous`); `null` to keep none. */
  previousAlias: string | null;
  /** The version `alias` pointed at when planned; `null` when it was not set. */
  from: string | null;
  /** The version `alias` will point at. */
  to: string;
  /** The version `previousAlias` pointed at when planned, for revert. */
  previousBefore: string | null;
};

/** What the apply of an alias move read back. */
export type AliasMoveResult = { alias: string; version: string; previous: string | null };

/** Options of {@link modelRollback}. */
export const ModelRollbackOptions = z.object({
  /** The registered model, e.g. `generation_model`. */
  model: ModelName,
  /** The version to serve again, e.g. `3` (must exist and be `READY`). */
  version: VersionNumber,
  /** The alias that serves. @default "champion" */
  alias: AliasName.default('champion'),
  /** The alias that keeps the version rolled back from, so it can be found (and restored) later; `null` for none. @default "previous" */
  previousAlias: AliasName.nullable().default('previous'),
});
export type ModelRollbackOptions = z.output<typeof ModelRollbackOptions>;
export type ModelRollbackOptionsInput = z.input<typeof ModelRollbackOptions>;

/** Options of {@link modelPromote}. */
export const ModelPromoteOptions = z.object({
  /** The registered model. */
  model: ModelName,
  /** The alias whose version is promoted. @default "challenger" */
  from: AliasName.default('challenger'),
  /** The alias it is promoted to. @default "champion" */
  to: AliasName.default('champion'),
  /** The alias that keeps the version `to` pointed at before; `null` for none. @default "previous" */
  previousAlias: AliasName.nullable().default('previous'),
  /**
   * The version `from` must point at: the one that was tested and approved. The plan refuses
   * (`MLFLOW_ALIAS_MOVED`) when `from` points elsewhere, so an untested version is never promoted.
   * @default whatever `from` points at
   */
  version: VersionNumber.optional(),
});
export type ModelPromoteOptions = z.output<typeof ModelPromoteOptions>;
export type ModelPromoteOptionsInput = z.input<typeof ModelPromoteOptions>;

/**
 * The manual's "roll back to the previous model version" with aliases: the serving alias (`champion`) moves to
 * `version`, and `previous` is set to the version it moved away from, so the move can be found and undone.
 *
 * - **plan**: `aliases.champion: "4" → "3"`, `aliases.previous: "2" → "4"`; refuses (non-retriable) a version
 *   that does not exist or is not `READY`. No changes when the alias already points at `version`.
 * - **apply**: refuses (`STALE_PLAN`) when the alias or `previous` moved since the plan (someone else acted),
 *   sets `previous` first (so a crash in between loses nothing), then the alias, then reads it back.
 * - **verify**: reads the alias back: `ok` when it points at `version` and that version is `READY`.
 * - **revert**: points the alias at the old version again (or removes it, if it was unset) and restores `previous`;
 *   refuses (`STALE_REVERT`) when either alias no longer points where the apply set it (a later move is kept).
 *
 * Risk `medium`, not destructive. Tell the serving side too (the backend's `MLFLOW_MODEL_VERSION`).
 */
export function modelRollback(
  registry: MlflowRegistry,
  options: ModelRollbackOptionsInput,
): Action<AliasMoveParams, AliasMoveResult> {
  const o = parseOptions(KIND_ROLLBACK, ModelRollbackOptions, options);
  return aliasMove(registry, {
    kind: KIND_ROLLBACK,
    model: o.model,
    alias: o.alias,
    previousAlias: o.previousAlias,
    description: `Roll model ${o.model} "${o.alias}" back to version ${o.version}`,
    target: async () => o.version,
  });
}

/**
 * Promotes a version from one alias to another (`challenger` → `champion`), keeping the old `champion` as
 * `previous`: the same plan, apply, verify and revert as {@link modelRollback}, with the version read from
 * the `from` alias at plan time. Refuses when `from` is not set or its version is not `READY`, and — with
 * `version` — when `from` no longer points at that version (it moved after the version was tested).
 */
export function modelPromote(
  registry: MlflowRegistry,
  options: ModelPromoteOptionsInput,
): Action<AliasMoveParams, AliasMoveResult> {
  const o = parseOptions(KIND_PROMOTE, ModelPromoteOptions, options);
  if (o.from === o.to) {
    throw new NonRetriableError(
      `modelPromote: "from" and "to" are both "${o.from}"; name two different aliases.`,
      {
        code: 'INVALID_INPUT',
      },
    );
  }
  return aliasMove(registry, {
    kind: KIND_PROMOTE,
    model: o.model,
    alias: o.to,
    previousAlias: o.previousAlias,
    description: `Promote model ${o.model} "${o.from}" to "${o.to}"`,
    target: async (ctx) => {
      const source = await registry.getAlias(o.model, o.from, { signal: ctx.signal });
      if (!source) {
        throw new NonRetriableError(
          `Model ${o.model} has no "${o.from}" alias in MLflow at ${registry.display}: there is nothing to promote. Register the new version and set the alias first.`,
          { code: 'MLFLOW_NO_SUCH_ALIAS' },
        );
      }
      if (o.version !== undefined && source.version !== o.version) {
        throw new NonRetriableError(
          `Model ${o.model} "${o.from}" is version ${source.version} now, not ${o.version} as expected: it moved after version ${o.version} was tested. Not promoting an untested version; test version ${source.version} or point "${o.from}" back.`,
          { code: 'MLFLOW_ALIAS_MOVED' },
        );
      }
      return source.version;
    },
  });
}

const KIND_ROLLBACK = 'mlflow.model-rollback';
const KIND_PROMOTE = 'mlflow.model-promote';

function aliasMove(
  registry: MlflowRegistry,
  spec: {
    kind: string;
    model: string;
    alias: string;
    previousAlias: string | null;
    description: string;
    target: (ctx: StepContext) => Promise<string>;
  },
): Action<AliasMoveParams, AliasMoveResult> {
  const { model, alias, previousAlias } = spec;
  if (previousAlias === alias) {
    throw new NonRetriableError(
      `${spec.kind}: the alias and previousAlias are both "${alias}"; name two different aliases.`,
      {
        code: 'INVALID_INPUT',
      },
    );
  }
  const target: ResourceRef = registry.ref(model);
  const call = (ctx: StepContext) => ({ signal: ctx.signal });
  return defineAction<AliasMoveParams, AliasMoveResult>({
    kind: spec.kind,
    target,
    risk: 'medium',
    destructive: false,
    description: spec.description,

    async plan(ctx) {
      const to = await spec.target(ctx);
      const version = await registry.getModelVersion(model, to, call(ctx));
      if (!version) {
        throw new NonRetriableError(
          `Model ${model} has no version ${to} in MLflow at ${registry.display}: pick an existing version (see the model's versions in the registry).`,
          { code: 'MLFLOW_NO_SUCH_VERSION' },
        );
      }
      if (version.status !== 'READY') {
        throw new NonRetriableError(
          `Version ${to} of model ${model} is ${version.status}, not READY: it cannot serve. Pick a READY version or wait for its registration.`,
          { code: 'MLFLOW_VERSION_NOT_READY' },
        );
      }
      const from = (await registry.getAlias(model, alias, call(ctx)))?.version ?? null;
      const previousBefore = previousAlias
        ? ((await registry.getAlias(model, previousAlias, call(ctx)))?.version ?? null)
        : null;
      const params: AliasMoveParams = { model, alias, previousAlias, from, to, previousBefore };
      if (from === to) {
        return { summary: `Model ${model} "${alias}" already is version ${to}`, changes: [], params };
      }
      const changes: Change[] = [{ target, field: `aliases.${alias}`, before: from, after: to }];
      if (previousAlias && from !== null && previousBefore !== from) {
        changes.push({ target, field: `aliases.${previousAlias}`, before: previousBefore, after: from });
      }
      const kept = previousAlias && from !== null ? `, keeping ${from} as "${previousAlias}"` : '';
      return {
        summary: `Model ${model} "${alias}": version ${from ?? '(none)'} → ${to}${kept}`,
        changes,
        params,
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const now = (await registry.getAlias(p.model, p.alias, call(ctx)))?.version ?? null;
      if (now !== p.from && now !== p.to) {
        throw new NonRetriableError(
          `Model ${p.model} "${p.alias}" is version ${now ?? '(none)'} now, not ${p.from ?? '(none)'} as planned: someone else moved it. Plan again.`,
          { code: 'STALE_PLAN' },
        );
      }
      if (p.previousAlias && p.from !== null) {
        // Overwriting a "previous" someone else set since the plan would lose the version they kept there.
        // After a crash between our two writes it already holds `from`, which is ours.
        const previousNow = (await registry.getAlias(p.model, p.previousAlias, call(ctx)))?.version ?? null;
        if (previousNow !== p.previousBefore && previousNow !== p.from) {
          throw new NonRetriableError(
            `Model ${p.model} "${p.previousAlias}" is version ${previousNow ?? '(none)'} now, not ${p.previousBefore ?? '(none)'} as planned: someone else moved it. Plan again.`,
            { code: 'STALE_PLAN' },
          );
        }
      }
      // `previous` first: after a crash between the two calls the old version is still findable.
      if (p.previousAlias && p.from !== null)
        await registry.setAlias(p.model, p.previousAlias, p.from, call(ctx));
      await registry.setAlias(p.model, p.alias, p.to, call(ctx));
      const readBack = await registry.getAlias(p.model, p.alias, call(ctx));
      ctx.log(`model ${p.model} "${p.alias}" now points at version ${readBack?.version ?? '(none)'}`);
      return { alias: p.alias, version: readBack?.version ?? '', previous: p.previousAlias ? p.from : null };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const now = await registry.getAlias(p.model, p.alias, call(ctx));
      const data = { alias: p.alias, version: now?.version ?? null, status: now?.status ?? null };
      if (now?.version !== p.to) {
        return finding(
          'fail',
          `Model ${p.model} "${p.alias}" reads back as ${now?.version ?? '(none)'}, not ${p.to}`,
          data,
        );
      }
      if (now.status !== 'READY') {
        return finding(
          'fail',
          `Model ${p.model} "${p.alias}" is version ${p.to} but it is ${now.status}`,
          data,
        );
      }
      return finding('ok', `Model ${p.model} "${p.alias}" reads back as version ${p.to} (READY)`, data);
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      if (p.from === p.to) return; // nothing was moved
      // Restore only what is still ours: a promotion or rollback made since must not be undone.
      const now = (await registry.getAlias(p.model, p.alias, call(ctx)))?.version ?? null;
      const changed: string[] = [];
      if (now !== p.to) changed.push(`"${p.alias}" is ${now ?? '(none)'}, not ${p.to}`);
      if (p.previousAlias && p.from !== null) {
        const previousNow = (await registry.getAlias(p.model, p.previousAlias, call(ctx)))?.version ?? null;
        if (previousNow !== p.from)
          changed.push(`"${p.previousAlias}" is ${previousNow ?? '(none)'}, not ${p.from}`);
      }
      if (changed.length) {
        throw new NonRetriableError(
          `Model ${p.model} changed since this move: ${changed.join('; ')}. Someone else moved the aliases; not reverting over their change — look at the registry and restore by hand.`,
          { code: 'STALE_REVERT' },
        );
      }
      if (p.from === null) await registry.deleteAlias(p.model, p.alias, call(ctx));
      else await registry.setAlias(p.model, p.alias, p.from, call(ctx));
      if (p.previousAlias && p.from !== null) {
        if (p.previousBefore === null) await registry.deleteAlias(p.model, p.previousAlias, call(ctx));
        else await registry.setAlias(p.model, p.previousAlias, p.previousBefore, call(ctx));
      }
      ctx.log(`model ${p.model} "${p.alias}" restored to version ${p.from ?? '(none)'}`);
    },
  });
}
