import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction } from '../../core/step';
import { ModelName, VersionNumber } from './names';
import type { MlflowRegistry } from './registry';

/** Options of {@link modelVersionTag}. */
export const ModelVersionTagOptions = z.object({
  /** The registered model. */
  model: ModelName,
  /** The version to tag. */
  version: VersionNumber,
  /** The tag's key, e.g. `rolled_back`. */
  key: z
    .string()
    .regex(/^[A-Za-z0-9_.\-/ ]{1,250}$/, 'expected a tag key of letters, digits, "_", ".", "-", "/" or " "'),
  /** The tag's value. */
  value: z.string().max(5000, 'expected a tag value of at most 5000 characters'),
});
export type ModelVersionTagOptions = z.output<typeof ModelVersionTagOptions>;
export type ModelVersionTagOptionsInput = z.input<typeof ModelVersionTagOptions>;

/** What a tag change fixes at plan time. */
export type ModelVersionTagParams = {
  model: string;
  version: string;
  key: string;
  value: string;
  /** The tag's value when planned; `null` when the version did not have it. */
  before: string | null;
};

const KIND = 'mlflow.model-version-tag';

/**
 * Sets a tag on a model version: a mark the registry keeps with the version, such as `rolled_back` on a
 * version that was rolled back from, so that a later rollback does not pick it again.
 *
 * - **plan**: `versions[4].tags.rolled_back: null → "…"`; refuses a version that does not exist. No changes when
 *   the tag already has the value.
 * - **apply** sets it; **verify** reads it back; **revert** restores the old value (or removes the tag).
 *
 * Risk `low`, not destructive.
 */
export function modelVersionTag(
  registry: MlflowRegistry,
  options: ModelVersionTagOptionsInput,
): Action<ModelVersionTagParams, { value: string }> {
  const o = parseOptions(KIND, ModelVersionTagOptions, options);
  const target = registry.ref(o.model);
  const field = `versions[${o.version}].tags.${o.key}`;
  return defineAction<ModelVersionTagParams, { value: string }>({
    kind: KIND,
    target,
    risk: 'low',
    destructive: false,
    description: `Tag version ${o.version} of model ${o.model} with ${o.key}`,

    async plan(ctx) {
      const version = await registry.getModelVersion(o.model, o.version, { signal: ctx.signal });
      if (!version) {
        throw new NonRetriableError(
          `Model ${o.model} has no version ${o.version} in MLflow at ${registry.display}: pick an existing version.`,
          { code: 'MLFLOW_NO_SUCH_VERSION' },
        );
      }
      const before = version.tags[o.key] ?? null;
      const params = { model: o.model, version: o.version, key: o.key, value: o.value, before };
      return before === o.value
        ? { summary: `Version ${o.version} of ${o.model} already has ${o.key}`, changes: [], params }
        : {
            summary: `Tag version ${o.version} of ${o.model}: ${o.key} = ${JSON.stringify(o.value)}`,
            changes: [{ target, field, before, after: o.value }],
            params,
          };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      await registry.setModelVersionTag(p.model, p.version, p.key, p.value, { signal: ctx.signal });
      return { value: p.value };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const now = (await registry.getModelVersion(p.model, p.version, { signal: ctx.signal }))?.tags[p.key];
      const data = { version: p.version, key: p.key, value: now ?? null };
      return now === p.value
        ? finding('ok', `Version ${p.version} of ${p.model} has ${p.key} = ${JSON.stringify(p.value)}`, data)
        : finding(
            'fail',
            `Version ${p.version} of ${p.model} has ${p.key} = ${JSON.stringify(now ?? null)}`,
            data,
          );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      if (p.before === null)
        await registry.deleteModelVersionTag(p.model, p.version, p.key, { signal: ctx.signal });
      else await registry.setModelVersionTag(p.model, p.version, p.key, p.before, { signal: ctx.signal });
    },
  });
}
