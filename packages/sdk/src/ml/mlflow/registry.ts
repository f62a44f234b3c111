import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import { type ResourceRef, resourceRef } from '../../core/resource';
import { MlServiceError } from '../errors';
import { type JsonAnswer, sendJson, upstreamText } from '../http-json';

/** How to reach an MLflow tracking server's model registry. */
export const MlflowOptions = z.object({
  /** The tracking server, `http(s)://host:port` (the REST API is under `/api/2.0/mlflow`). */
  url: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, 'expected an http(s):// URL of the MLflow tracking server')
    .transform((u) => u.replace(/\/+$/, '')),
  /** A bearer token (`MLFLOW_TRACKING_TOKEN`). Sent as `Authorization: Bearer`; never logged. @default none */
  token: z.string().min(1).optional(),
  /**
   * The name in resource references (`mlflow:<name>/model/<model>`), which locks and budgets are keyed by.
   * @default the URL's host name
   */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"')
    .optional(),
  /** Bound on each request. @default "10s" */
  timeout: Duration.default('10s'),
});
export type MlflowOptions = z.output<typeof MlflowOptions>;
export type MlflowOptionsInput = z.input<typeof MlflowOptions>;

/** The status of a model version's registration; only `READY` versions can serve. */
export type ModelVersionStatus = 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';

const KeyValue = z.object({ key: z.string(), value: z.string().optional().default('') });

/** A model version as the registry answers it (the fields runbooks use; others are kept out). */
const ModelVersionWire = z.object({
  name: z.string(),
  version: z.string(),
  source: z.string().optional().default(''),
  run_id: z.string().optional().default(''),
  status: z.string().optional().default('READY'),
  current_stage: z.string().optional().default('None'),
  description: z.string().optional().default(''),
  creation_timestamp: z.union([z.number(), z.string()]).optional(),
  last_updated_timestamp: z.union([z.number(), z.string()]).optional(),
  aliases: z.array(z.string()).optional().default([]),
  tags: z.array(KeyValue).optional().default([]),
});

/** A registered model's version. */
export interface ModelVersion {
  model: string;
  /** The version number, as MLflow spells it: a string (`"3"`). */
  version: string;
  status: ModelVersionStatus | string;
  /** The legacy stage (`None`, `Staging`, `Production`, `Archived`). */
  stage: string;
  source: string;
  runId: string;
  description: string;
  aliases: string[];
  tags: Record<string, string>;
  /** Milliseconds since the epoch, when the server said. */
  createdAt: number | null;
}

const RegisteredModelWire = z.object({
  name: z.string(),
  description: z.string().optional().default(''),
  latest_versions: z.array(ModelVersionWire).optional().default([]),
  aliases: z
    .array(z.object({ alias: z.string(), version: z.string() }))
    .optional()
    .default([]),
  tags: z.array(KeyValue).optional().default([]),
});

/** A registered model: its aliases and the latest version per legacy stage. */
export interface RegisteredModel {
  name: string;
  description: string;
  /** alias → version, e.g. `{ champion: "3", previous: "2" }`. */
  aliases: Record<string, string>;
  latestVersions: ModelVersion[];
  tags: Record<string, string>;
}

/** The legacy stages of `transition-stage`. */
export const ModelStage = z.enum(['None', 'Staging', 'Production', 'Archived']);
export type ModelStage = z.infer<typeof ModelStage>;

/** Per call: the step's signal. */
export interface RegistryCallOptions {
  signal?: AbortSignal;
}

const API = '/api/2.0/mlflow';

/**
 * An MLflow model registry over its REST API (`/api/2.0/mlflow`). Aliases are the current way to point at
 * a version (`champion`, `challenger`, `previous`); the stage calls are kept for servers older than 2.3.
 * Create it once with {@link connectMlflow}; checks and actions take it as their first argument. Every
 * error is an {@link MlServiceError}; reads of something absent return `null`.
 */
export class MlflowRegistry {
  /** The name in resource references. */
  readonly name: string;
  /** The server's origin, for messages. */
  readonly display: string;
  readonly #url: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: MlflowOptions) {
    const url = new URL(options.url);
    this.name = options.name ?? url.hostname.replace(/[^a-z0-9_.-]/gi, '-');
    this.display = url.origin;
    this.#url = options.url;
    this.#token = options.token;
    this.#timeoutMs = toMillis(options.timeout);
  }

  /** A resource reference for a registered model: `mlflow:<name>/model/<model>`. */
  ref(model: string): ResourceRef {
    return resourceRef('mlflow', this.name, 'model', encodeURIComponent(model));
  }

  /** The version an alias points at, or `null` when the model has no such alias (MLflow answers 400 or 404). */
  async getAlias(
    model: string,
    alias: string,
    options: RegistryCallOptions = {},
  ): Promise<ModelVersion | null> {
    const answer = await this.#call('GET', '/registered-models/alias', { name: model, alias }, options);
    if (isAbsent(answer)) return null;
    return versionOf(
      this.#expect(answer, `read alias "${alias}" of model ${model}`, ModelVersionEnvelope).model_version,
    );
  }

  /** Points `alias` at `version` (creating or moving the alias). */
  async setAlias(
    model: string,
    alias: string,
    version: string,
    options: RegistryCallOptions = {},
  ): Promise<void> {
    const answer = await this.#call(
      'POST',
      '/registered-models/alias',
      { name: model, alias, version },
      options,
    );
    this.#expect(answer, `set alias "${alias}" of model ${model} to version ${version}`, z.unknown());
  }

  /** Removes `alias`; removing an absent alias is not an error. */
  async deleteAlias(model: string, alias: string, options: RegistryCallOptions = {}): Promise<void> {
    const answer = await this.#call('DELETE', '/registered-models/alias', { name: model, alias }, options);
    if (isAbsent(answer)) return;
    this.#expect(answer, `delete alias "${alias}" of model ${model}`, z.unknown());
  }

  /** One version of a model, or `null` when there is none. */
  async getModelVersion(
    model: string,
    version: string,
    options: RegistryCallOptions = {},
  ): Promise<ModelVersion | null> {
    const answer = await this.#call('GET', '/model-versions/get', { name: model, version }, options);
    if (isAbsent(answer)) return null;
    return versionOf(
      this.#expect(answer, `read version ${version} of model ${model}`, ModelVersionEnvelope).model_version,
    );
  }

  /** A registered model with its aliases, or `null` when there is none. */
  async getRegisteredModel(
    model: string,
    options: RegistryCallOptions = {},
  ): Promise<RegisteredModel | null> {
    const answer = await this.#call('GET', '/registered-models/get', { name: model }, options);
    if (isAbsent(answer)) return null;
    const wire = this.#expect(
      answer,
      `read model ${model}`,
      z.object({ registered_model: RegisteredModelWire }),
    ).registered_model;
    return {
      name: wire.name,
      description: wire.description,
      aliases: Object.fromEntries(wire.aliases.map((a) => [a.alias, a.version])),
      latestVersions: wire.latest_versions.map(versionOf),
      tags: Object.fromEntries(wire.tags.map((t) => [t.key, t.value])),
    };
  }

  /** Sets a tag on a model version (`model-versions/set-tag`), replacing its value if the key exists. */
  async setModelVersionTag(
    model: string,
    version: string,
    key: string,
    value: string,
    options: RegistryCallOptions = {},
  ): Promise<void> {
    const answer = await this.#call(
      'POST',
      '/model-versions/set-tag',
      { name: model, version, key, value },
      options,
    );
    this.#expect(answer, `set tag "${key}" on version ${version} of model ${model}`, z.unknown());
  }

  /** Removes a tag from a model version (`model-versions/delete-tag`); removing an absent tag is not an error. */
  async deleteModelVersionTag(
    model: string,
    version: string,
    key: string,
    options: RegistryCallOptions = {},
  ): Promise<void> {
    const answer = await this.#call(
      'DELETE',
      '/model-versions/delete-tag',
      { name: model, version, key },
      options,
    );
    if (isAbsent(answer)) return;
    this.#expect(answer, `delete tag "${key}" of version ${version} of model ${model}`, z.unknown());
  }

  /**
   * Every version of a model (`model-versions/search` with `filter=name='<model>'`, all pages): unlike a
   * registered model's `latest_versions`, which holds only the newest version per stage. Empty when the
   * model has none.
   */
  async searchModelVersions(model: string, options: RegistryCallOptions = {}): Promise<ModelVersion[]> {
    // MLflow's filter takes a quoted string literal; a name holding both quote kinds cannot be spelled in it.
    const quote = model.includes("'") ? '"' : "'";
    if (model.includes(quote)) {
      throw new MlServiceError(
        'mlflow',
        400,
        'INVALID_PARAMETER_VALUE',
        `model name ${JSON.stringify(model)} holds both ' and ", which an MLflow search filter cannot quote: rename the model.`,
      );
    }
    const versions: ModelVersion[] = [];
    let pageToken: string | undefined;
    do {
      const answer = await this.#call(
        'GET',
        '/model-versions/search',
        {
          filter: `name=${quote}${model}${quote}`,
          max_results: 1000,
          ...(pageToken ? { page_token: pageToken } : {}),
        },
        options,
      );
      const page = this.#expect(
        answer,
        `search the versions of model ${model}`,
        z.object({
          model_versions: z.array(ModelVersionWire).optional().default([]),
          next_page_token: z.string().optional(),
        }),
      );
      versions.push(...page.model_versions.map(versionOf));
      pageToken = page.next_page_token || undefined;
    } while (pageToken);
    return versions;
  }

  /**
   * The legacy stage transition (deprecated since MLflow 2.9, still what older servers have):
   * `archiveExisting` moves the stage's other versions to `Archived`.
   */
  async transitionStage(
    model: string,
    version: string,
    stage: ModelStage,
    archiveExisting: boolean,
    options: RegistryCallOptions = {},
  ): Promise<ModelVersion> {
    const answer = await this.#call(
      'POST',
      '/model-versions/transition-stage',
      { name: model, version, stage, archive_existing_versions: archiveExisting },
      options,
    );
    return versionOf(
      this.#expect(
        answer,
        `move version ${version} of model ${model} to stage ${stage}`,
        ModelVersionEnvelope,
      ).model_version,
    );
  }

  /** For `JSON.stringify` and `console.log`: never the token. */
  toJSON(): { name: string; url: string } {
    return { name: this.name, url: this.display };
  }

  async #call(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    payload: Record<string, unknown>,
    options: RegistryCallOptions,
  ): Promise<JsonAnswer> {
    // As MLflow's own client: GET parameters in the query string, others as a JSON body.
    const query =
      method === 'GET'
        ? `?${new URLSearchParams(Object.entries(payload).map(([k, v]): [string, string] => [k, String(v)])).toString()}`
        : '';
    return sendJson('mlflow', {
      method,
      url: `${this.#url}${API}${path}${query}`,
      ...(method === 'GET' ? {} : { body: payload }),
      headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
      ...(options.signal ? { signal: options.signal } : {}),
      timeoutMs: this.#timeoutMs,
    });
  }

  #expect<S extends z.ZodType>(answer: JsonAnswer, what: string, schema: S): z.output<S> {
    if (answer.status < 200 || answer.status >= 300) {
      const body = answer.body as { error_code?: unknown; message?: unknown } | null;
      const code = typeof body?.error_code === 'string' ? body.error_code : null;
      const message = typeof body?.message === 'string' ? body.message : `HTTP ${answer.status}`;
      const hint =
        answer.status === 401 || answer.status === 403
          ? ' Check the token the registry was given.'
          : answer.status >= 500 || answer.status === 429
            ? ' The server is in trouble; the step is retried.'
            : '';
      throw new MlServiceError(
        'mlflow',
        answer.status,
        code,
        `MLflow at ${this.display} refused to ${what}: ${answer.status}${code ? ` ${code}` : ''}: ${upstreamText(message, this.#token ? [this.#token] : [])}.${hint}`,
      );
    }
    const parsed = schema.safeParse(answer.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new MlServiceError(
        'mlflow',
        502,
        null,
        `MLflow at ${this.display} answered the request to ${what} with an unexpected body: ${issue?.path.join('.') || '(root)'}: ${issue?.message}. Is the URL an MLflow tracking server?`,
      );
    }
    return parsed.data;
  }
}

const ModelVersionEnvelope = z.object({ model_version: ModelVersionWire });

/** A missing alias answers 400 `INVALID_PARAMETER_VALUE` on some servers and 404 `RESOURCE_DOES_NOT_EXIST` on others. */
function isAbsent(answer: JsonAnswer): boolean {
  const code = (answer.body as { error_code?: unknown } | null)?.error_code;
  return (
    answer.status === 404 ||
    (answer.status === 400 && (code === 'INVALID_PARAMETER_VALUE' || code === 'RESOURCE_DOES_NOT_EXIST'))
  );
}

function versionOf(wire: z.output<typeof ModelVersionWire>): ModelVersion {
  const created = wire.creation_timestamp === undefined ? Number.NaN : Number(wire.creation_timestamp);
  return {
    model: wire.name,
    version: wire.version,
    status: wire.status,
    stage: wire.current_stage,
    source: wire.source,
    runId: wire.run_id,
    description: wire.description,
    aliases: wire.aliases,
    tags: Object.fromEntries(wire.tags.map((t) => [t.key, t.value])),
    createdAt: Number.isFinite(created) ? created : null,
  };
}

/** Validates the options (an `InputValidationError` names each bad field); makes no request. */
export function connectMlflow(options: MlflowOptionsInput): MlflowRegistry {
  return new MlflowRegistry(parseOptions('mlflow', MlflowOptions, options));
}
