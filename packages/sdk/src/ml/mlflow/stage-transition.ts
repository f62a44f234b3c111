import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import { type Action, defineAction } from '../../core/step';
import { ModelName, VersionNumber } from './names';
import { type MlflowRegistry, ModelStage } from './registry';

/** Options of {@link modelStageTransition}. */
export const ModelStageTransitionOptions = z.object({
  /** The registered model. */
  model: ModelName,
  /** The version to move. */
  version: VersionNumber,
  /** The stage to move it to. */
  stage: ModelStage,
  /** Move the versions now in `stage` to `Archived` (as the manual's "Transition to Production" does). @default true */
  archiveExisting: z.boolean().default(true),
});
export type ModelStageTransitionOptions = z.output<typeof ModelStageTransitionOptions>;
export type ModelStageTransitionOptionsInput = z.input<typeof ModelStageTransitionOptions>;

/** What a stage transition fixes at plan time: the version's stage and the versions it archives. */
export type StageTransitionParams = {
  model: string;
  version: string;
  stage: ModelStage;
  /** The version's stage before. */
  before: string;
  archiveExisting: boolean;
  /** Every other version in `stage` when planned (archived by the apply, one by one), for revert. */
  archived: string[];
};

const KIND = 'mlflow.stage-transition';

/**
 * The legacy `transition-stage` call (MLflow before aliases; deprecated since 2.9): the manual's
 * "Transition to Production" of version 3.
 *
 * - **plan**: `versions[3].stage: "Archived" → "Production"` plus, with `archiveExisting`, each other version
 *   now in that stage `→ "Archived"`. Refuses a version that does not exist or is not `READY`.
 * - **apply** moves the version, then archives exactly the planned versions (`archive_existing_versions: false`:
 *   what the plan shows is what changes).
 * - **verify** reads the version back; **revert** moves it back to its old stage and the archived versions
 *   back to `stage`.
 *
 * Risk `medium`, not destructive.
 */
export function modelStageTransition(
  registry: MlflowRegistry,
  options: ModelStageTransitionOptionsInput,
): Action<StageTransitionParams, { stage: string }> {
  const o = parseOptions(KIND, ModelStageTransitionOptions, options);
  const target = registry.ref(o.model);
  return defineAction<StageTransitionParams, { stage: string }>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Move version ${o.version} of model ${o.model} to stage ${o.stage} (legacy stages)`,

    async plan(ctx) {
      const version = await registry.getModelVersion(o.model, o.version, { signal: ctx.signal });
      if (!version) {
        throw new NonRetriableError(
          `Model ${o.model} has no version ${o.version} in MLflow at ${registry.display}: pick an existing version.`,
          { code: 'MLFLOW_NO_SUCH_VERSION' },
        );
      }
      if (version.status !== 'READY') {
        throw new NonRetriableError(
          `Version ${o.version} of model ${o.model} is ${version.status}, not READY: it cannot be moved to ${o.stage}.`,
          { code: 'MLFLOW_VERSION_NOT_READY' },
        );
      }
      // Every version in the stage, not `latest_versions` (only the newest per stage): the plan must name
      // each version the apply archives, so that revert can bring them all back.
      const archived =
        o.archiveExisting && o.stage !== 'Archived' && o.stage !== 'None'
          ? (await registry.searchModelVersions(o.model, { signal: ctx.signal }))
              .filter((v) => v.stage === o.stage && v.version !== o.version)
              .map((v) => v.version)
              .sort((a, b) => Number(a) - Number(b))
          : [];
      const params: StageTransitionParams = {
        model: o.model,
        version: o.version,
        stage: o.stage,
        before: version.stage,
        archiveExisting: o.archiveExisting,
        archived,
      };
      if (version.stage === o.stage && archived.length === 0) {
        return {
          summary: `Version ${o.version} of model ${o.model} already is in ${o.stage}`,
          changes: [],
          params,
        };
      }
      const changes: Change[] = [];
      if (version.stage !== o.stage) {
        changes.push({
          target,
          field: `versions[${o.version}].stage`,
          before: version.stage,
          after: o.stage,
        });
      }
      for (const v of archived)
        changes.push({ target, field: `versions[${v}].stage`, before: o.stage, after: 'Archived' });
      return {
        summary: `Model ${o.model} version ${o.version}: stage ${version.stage} → ${o.stage}${archived.length ? `, archiving ${archived.join(', ')}` : ''}`,
        changes,
        params,
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      // `archive_existing_versions: false`, and the planned versions archived one by one: the server's own
      // archiving would also take versions that entered the stage after the plan, which revert knows nothing of.
      // The new version first: for a moment two versions are in the stage rather than none.
      const moved = await registry.transitionStage(p.model, p.version, p.stage, false, {
        signal: ctx.signal,
      });
      for (const v of p.archived)
        await registry.transitionStage(p.model, v, 'Archived', false, { signal: ctx.signal });
      return { stage: moved.stage };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const now = await registry.getModelVersion(p.model, p.version, { signal: ctx.signal });
      const data = { version: p.version, stage: now?.stage ?? null };
      return now?.stage === p.stage
        ? finding('ok', `Model ${p.model} version ${p.version} is in ${p.stage}`, data)
        : finding(
            'fail',
            `Model ${p.model} version ${p.version} is in ${now?.stage ?? '(gone)'}, not ${p.stage}`,
            data,
          );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      for (const v of p.archived)
        await registry.transitionStage(p.model, v, p.stage, false, { signal: ctx.signal });
      await registry.transitionStage(p.model, p.version, p.before as ModelStage, false, {
        signal: ctx.signal,
      });
      ctx.log(`model ${p.model} version ${p.version} moved back to ${p.before}`);
    },
  });
}
