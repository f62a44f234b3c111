import { z } from 'zod';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { AliasName, ModelName, VersionNumber } from './names';
import type { MlflowRegistry, ModelVersion } from './registry';

/** Options of {@link modelChampion}. */
export const ModelChampionOptions = z.object({
  /** The registered model, e.g. `generation_model`. */
  model: ModelName,
  /** The alias that serves. @default "champion" */
  alias: AliasName.default('champion'),
  /** The version that should serve (the one the backend is configured with): another one is a `warn`. @default any */
  expectedVersion: VersionNumber.optional(),
});
export type ModelChampionOptions = z.output<typeof ModelChampionOptions>;
export type ModelChampionOptionsInput = z.input<typeof ModelChampionOptions>;

/** What {@link modelChampion} found. */
export type ModelChampionData = {
  model: string;
  alias: string;
  /** `null` when the alias is not set. */
  version: string | null;
  status: string | null;
  stage: string | null;
  source: string | null;
  runId: string | null;
  tags: Record<string, string>;
  /** Every alias of the model, alias → version (`previous`, `challenger`, …). */
  aliases: Record<string, string>;
};

/**
 * What {@link modelChampion} read: whether the model is registered, its aliases, and the version the alias
 * points at. Replaying it with another `expectedVersion` judges the same version again.
 */
export type ModelChampionObservation = {
  registered: boolean;
  /** alias → version. */
  aliases: Record<string, string>;
  /** The alias's version; `null` when the alias is not set. */
  version: Pick<ModelVersion, 'version' | 'status' | 'stage' | 'source' | 'runId' | 'tags'> | null;
};

const KIND = 'mlflow.model-champion';

/**
 * Which version serves: reads the alias (`champion`) and the model's other aliases.
 *
 * - `fail` when the alias is not set or its version is not `READY` (a failed or pending registration);
 * - `warn` when `expectedVersion` is given and the alias points elsewhere;
 * - `ok` otherwise. The data has the version, status, stage, source, run id, tags and all aliases.
 *
 * Replayable: `read` asks the registry ({@link ModelChampionObservation}), `judge` applies `expectedVersion`.
 */
export function modelChampion(
  registry: MlflowRegistry,
  options: ModelChampionOptionsInput,
): ReplayableCheck<ModelChampionData, ModelChampionObservation> {
  const o = parseOptions(KIND, ModelChampionOptions, options);
  return defineCheck({
    kind: KIND,
    description: `The "${o.alias}" version of model ${o.model} in MLflow`,
    async read(ctx): Promise<ModelChampionObservation> {
      const version = await registry.getAlias(o.model, o.alias, { signal: ctx.signal });
      const model = await registry.getRegisteredModel(o.model, { signal: ctx.signal });
      return {
        registered: model !== null,
        aliases: model?.aliases ?? {},
        version: version && {
          version: version.version,
          status: version.status,
          stage: version.stage,
          source: version.source,
          runId: version.runId,
          tags: version.tags,
        },
      };
    },
    judge({ registered, aliases, version }) {
      const data = dataOf(o, version, aliases);
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Aliases of ${o.model}`,
          columns: ['alias', 'version'],
          rows: Object.entries(aliases).sort(([a], [b]) => a.localeCompare(b)),
        },
      ];
      if (!registered) {
        return finding(
          'fail',
          `Model ${o.model} is not registered in MLflow at ${registry.display}`,
          data,
          evidence,
        );
      }
      if (!version) {
        return finding(
          'fail',
          `Model ${o.model} has no "${o.alias}" alias: nothing is marked to serve`,
          data,
          evidence,
        );
      }
      evidence.unshift({
        kind: 'table',
        title: `${o.model} "${o.alias}"`,
        columns: ['version', 'status', 'stage', 'run_id', 'source', 'tags'],
        rows: [
          [
            version.version,
            version.status,
            version.stage,
            version.runId,
            version.source,
            tagText(version.tags),
          ],
        ],
      });
      const what = `Model ${o.model} "${o.alias}" is version ${version.version} (${version.status})`;
      if (version.status !== 'READY') {
        return finding('fail', `${what}: it cannot serve until its registration is READY`, data, evidence);
      }
      if (o.expectedVersion !== undefined && o.expectedVersion !== version.version) {
        return finding('warn', `${what}, but version ${o.expectedVersion} was expected`, data, evidence);
      }
      return finding('ok', what, data, evidence);
    },
  });
}

function dataOf(
  o: ModelChampionOptions,
  version: ModelChampionObservation['version'],
  aliases: Record<string, string>,
): ModelChampionData {
  return {
    model: o.model,
    alias: o.alias,
    version: version?.version ?? null,
    status: version?.status ?? null,
    stage: version?.stage ?? null,
    source: version?.source ?? null,
    runId: version?.runId ?? null,
    tags: version?.tags ?? {},
    aliases,
  };
}

function tagText(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
