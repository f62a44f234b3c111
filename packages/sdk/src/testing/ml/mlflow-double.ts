import { z } from 'zod';
import { parseOptions } from '../../core/parse-options';
import {
  type MlDoubleFaults,
  type MlExchange,
  type MlLoggedRequest,
  NOT_JSON,
  startMlDoubleServer,
} from './ml-double-server';

const VersionStatus = z.enum(['PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY']);
const Stage = z.enum(['None', 'Staging', 'Production', 'Archived']);

/** A version as a test seeds it. */
export const MlflowDoubleVersion = z.strictObject({
  /** @default "READY" */
  status: VersionStatus.default('READY'),
  /** @default "None" */
  stage: Stage.default('None'),
  /** @default `models:/<name>/<version>` style artifact path */
  source: z.string().optional(),
  /** @default a fixed run id per version */
  runId: z.string().optional(),
  /** @default {} */
  tags: z.record(z.string(), z.string()).default({}),
  /** @default "" */
  description: z.string().default(''),
});
export type MlflowDoubleVersion = z.input<typeof MlflowDoubleVersion>;

/** Options of {@link startMlflowDouble}. */
export const MlflowDoubleOptions = z.strictObject({
  /** Registered models with their versions (numbered 1, 2, … in order) and aliases. @default [] */
  models: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        /** @default [] */
        versions: z.array(MlflowDoubleVersion).default([]),
        /** alias → version. @default {} */
        aliases: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).default({}),
        /** @default "" */
        description: z.string().default(''),
      }),
    )
    .default([]),
  /** Require `Authorization: Bearer <token>` (401 otherwise). @default no authentication */
  token: z.string().min(1).optional(),
  /**
   * How a missing alias is answered: `400` `INVALID_PARAMETER_VALUE` (MLflow 2.x) or `404`
   * `RESOURCE_DOES_NOT_EXIST`. @default 400
   */
  missingAlias: z.union([z.literal(400), z.literal(404)]).default(400),
  /** @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
});
export type MlflowDoubleOptions = z.input<typeof MlflowDoubleOptions>;

/** A model version as the double stores it (MLflow's wire shape). */
export interface MlflowDoubleModelVersion {
  name: string;
  version: string;
  creation_timestamp: number;
  last_updated_timestamp: number;
  current_stage: string;
  description: string;
  source: string;
  run_id: string;
  status: string;
  tags: { key: string; value: string }[];
  aliases: string[];
}

/** A running MLflow double. */
export interface MlflowDouble {
  /** `http://127.0.0.1:<port>`: the tracking server URL (`MLFLOW_TRACKING_URI`). */
  readonly url: string;
  /** Every request received, oldest first. */
  readonly requests: readonly MlLoggedRequest[];
  /** 5xx faults (answered `{error_code: "TEMPORARILY_UNAVAILABLE" | "INTERNAL_ERROR", message}`). */
  readonly faults: MlDoubleFaults;
  clearRequests(): void;
  /** alias → version of a model (empty when there is no such model). */
  aliases(model: string): Record<string, string>;
  /** A version as the API would answer it, or `undefined`. */
  version(model: string, version: string): MlflowDoubleModelVersion | undefined;
  /** Registers a new version (creating the model if needed), as `model-versions/create` does; returns its number. */
  registerVersion(model: string, version?: MlflowDoubleVersion): string;
  /** Changes a version's registration status (to rehearse a failed registration). */
  setStatus(model: string, version: string, status: z.infer<typeof VersionStatus>): void;
  close(): Promise<void>;
}

interface StoredModel {
  name: string;
  description: string;
  created: number;
  updated: number;
  versions: Map<string, MlflowDoubleModelVersion>;
  aliases: Map<string, string>;
}

const API = '/api/2.0/mlflow';
const ALIAS = /^[A-Za-z0-9_-]{1,255}$/;

/**
 * Starts an MLflow tracking server double on 127.0.0.1 speaking the model registry's REST API
 * (`/api/2.0/mlflow`): registered models and versions (`get`, `create`), aliases (`GET`/`POST`/`DELETE
 * registered-models/alias`), `model-versions/search` by name, version tags (`set-tag`, `delete-tag`), the legacy `model-versions/transition-stage`. Errors have MLflow's shape
 * `{error_code, message}` with its statuses (404 `RESOURCE_DOES_NOT_EXIST`, 400 `INVALID_PARAMETER_VALUE`);
 * field types are checked as MLflow's protobuf parser does (a version is a string). `GET /health` answers `OK`.
 */
export async function startMlflowDouble(options: MlflowDoubleOptions = {}): Promise<MlflowDouble> {
  const o = parseOptions('startMlflowDouble', MlflowDoubleOptions, options);
  const models = new Map<string, StoredModel>();
  let clock = Date.UTC(2026, 10, 1);
  const tick = () => ++clock;

  const createModel = (name: string, description = ''): StoredModel => {
    const t = tick();
    const model: StoredModel = {
      name,
      description,
      created: t,
      updated: t,
      versions: new Map(),
      aliases: new Map(),
    };
    models.set(name, model);
    return model;
  };
  const addVersion = (model: StoredModel, seed: z.output<typeof MlflowDoubleVersion>): string => {
    const version = String(model.versions.size + 1);
    const t = tick();
    model.versions.set(version, {
      name: model.name,
      version,
      creation_timestamp: t,
      last_updated_timestamp: t,
      current_stage: seed.stage,
      description: seed.description,
      source: seed.source ?? `mlflow-artifacts:/1/${runIdOf(model.name, version)}/artifacts/model`,
      run_id: seed.runId ?? runIdOf(model.name, version),
      status: seed.status,
      tags: Object.entries(seed.tags).map(([key, value]) => ({ key, value })),
      aliases: [],
    });
    model.updated = t;
    return version;
  };
  for (const seed of o.models) {
    const model = createModel(seed.name, seed.description);
    for (const v of seed.versions) addVersion(model, v);
    for (const [alias, version] of Object.entries(seed.aliases)) {
      if (!model.versions.has(version)) {
        throw new RangeError(
          `startMlflowDouble: alias "${alias}" of ${seed.name} names version ${version}, which it does not have`,
        );
      }
      model.aliases.set(alias, version);
    }
  }

  const versionView = (model: StoredModel, v: MlflowDoubleModelVersion): MlflowDoubleModelVersion => ({
    ...v,
    tags: v.tags.map((t) => ({ ...t })),
    aliases: [...model.aliases].filter(([, version]) => version === v.version).map(([alias]) => alias),
  });

  const server = await startMlDoubleServer(
    o.host,
    o.port,
    (status) => ({
      error_code: status === 503 ? 'TEMPORARILY_UNAVAILABLE' : 'INTERNAL_ERROR',
      message: status === 503 ? 'The service is temporarily unavailable.' : 'An internal error occurred.',
    }),
    (x) => route(x),
  );

  function route(x: MlExchange): undefined {
    if (x.path === '/health' && x.method === 'GET') {
      x.entry.status = 200;
      x.res.writeHead(200, { 'content-type': 'text/plain' });
      x.res.end('OK');
      return;
    }
    if (!x.path.startsWith(`${API}/`))
      return fail(x, 404, 'ENDPOINT_NOT_FOUND', `No API endpoint for ${x.path}`);
    if (o.token !== undefined && x.req.headers.authorization !== `Bearer ${o.token}`) {
      return fail(x, 401, 'UNAUTHENTICATED', 'You are not authenticated. Please provide a valid token.');
    }
    if (x.body === NOT_JSON)
      return fail(x, 400, 'MALFORMED_REQUEST', 'Malformed request body: it is not JSON');
    const endpoint = `${x.method} ${x.path.slice(API.length)}`;
    // GET parameters come in the query string, others as a JSON body (DELETE: either, as MLflow's server allows).
    const params: Record<string, unknown> =
      x.method === 'GET'
        ? x.query
        : { ...(x.method === 'DELETE' ? x.query : {}), ...((x.body as object) ?? {}) };
    switch (endpoint) {
      case 'GET /registered-models/get':
        return getModel(x, params);
      case 'POST /registered-models/create':
        return createModelRoute(x, params);
      case 'GET /registered-models/alias':
        return getAlias(x, params);
      case 'POST /registered-models/alias':
        return setAlias(x, params);
      case 'DELETE /registered-models/alias':
        return deleteAlias(x, params);
      case 'GET /model-versions/get':
        return getVersion(x, params);
      case 'GET /model-versions/search':
        return searchVersions(x, params);
      case 'POST /model-versions/set-tag':
        return setVersionTag(x, params);
      case 'DELETE /model-versions/delete-tag':
        return deleteVersionTag(x, params);
      case 'POST /model-versions/create':
        return createVersion(x, params);
      case 'POST /model-versions/transition-stage':
        return transition(x, params);
      default:
        return fail(x, 404, 'ENDPOINT_NOT_FOUND', `No API endpoint for ${x.method} ${x.path}`);
    }
  }

  /** A required string field, as MLflow's request validation answers a missing or mistyped one. */
  function field(x: MlExchange, params: Record<string, unknown>, name: string): string | undefined {
    const value = params[name];
    if (value === undefined || value === '') {
      fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Missing value for required parameter '${name}'. See the API docs for more information about request parameters.`,
      );
      return undefined;
    }
    if (typeof value !== 'string') {
      fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Invalid value ${JSON.stringify(value)} for parameter '${name}' supplied: expected a string.`,
      );
      return undefined;
    }
    return value;
  }

  function modelOr404(x: MlExchange, name: string): StoredModel | undefined {
    const model = models.get(name);
    if (!model) fail(x, 404, 'RESOURCE_DOES_NOT_EXIST', `Registered Model with name=${name} not found`);
    return model;
  }

  function versionOr404(
    x: MlExchange,
    model: StoredModel,
    version: string,
  ): MlflowDoubleModelVersion | undefined {
    const v = model.versions.get(version);
    if (!v)
      fail(
        x,
        404,
        'RESOURCE_DOES_NOT_EXIST',
        `Model Version (name=${model.name}, version=${version}) not found`,
      );
    return v;
  }

  function getModel(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    if (name === undefined) return;
    const model = modelOr404(x, name);
    if (!model) return;
    x.send(200, { registered_model: modelView(model) });
  }

  function modelView(model: StoredModel) {
    const latest = new Map<string, MlflowDoubleModelVersion>();
    for (const v of model.versions.values()) latest.set(v.current_stage, v);
    return {
      name: model.name,
      creation_timestamp: model.created,
      last_updated_timestamp: model.updated,
      description: model.description,
      latest_versions: [...latest.values()].map((v) => versionView(model, v)),
      aliases: [...model.aliases].map(([alias, version]) => ({ alias, version })),
      tags: [],
    };
  }

  function createModelRoute(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    if (name === undefined) return;
    if (models.has(name))
      return fail(x, 400, 'RESOURCE_ALREADY_EXISTS', `Registered Model (name=${name}) already exists.`);
    const description = typeof params.description === 'string' ? params.description : '';
    x.send(200, { registered_model: modelView(createModel(name, description)) });
  }

  function getAlias(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const alias = name === undefined ? undefined : field(x, params, 'alias');
    if (name === undefined || alias === undefined) return;
    const model = modelOr404(x, name);
    if (!model) return;
    const version = model.aliases.get(alias);
    const v = version === undefined ? undefined : model.versions.get(version);
    if (!v) {
      return o.missingAlias === 400
        ? fail(x, 400, 'INVALID_PARAMETER_VALUE', `Registered model alias ${alias} not found.`)
        : fail(x, 404, 'RESOURCE_DOES_NOT_EXIST', `Registered model alias ${alias} not found.`);
    }
    x.send(200, { model_version: versionView(model, v) });
  }

  function setAlias(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const alias = name === undefined ? undefined : field(x, params, 'alias');
    const version = alias === undefined ? undefined : field(x, params, 'version');
    if (name === undefined || alias === undefined || version === undefined) return;
    if (!ALIAS.test(alias) || alias.toLowerCase() === 'latest' || /^v\d+$/i.test(alias)) {
      return fail(x, 400, 'INVALID_PARAMETER_VALUE', `Invalid alias name: '${alias}'.`);
    }
    const model = modelOr404(x, name);
    if (!model || !versionOr404(x, model, version)) return;
    model.aliases.set(alias, version);
    model.updated = tick();
    x.send(200, {});
  }

  function deleteAlias(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const alias = name === undefined ? undefined : field(x, params, 'alias');
    if (name === undefined || alias === undefined) return;
    const model = modelOr404(x, name);
    if (!model) return;
    model.aliases.delete(alias);
    x.send(200, {});
  }

  function getVersion(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const version = name === undefined ? undefined : field(x, params, 'version');
    if (name === undefined || version === undefined) return;
    const model = modelOr404(x, name);
    const v = model && versionOr404(x, model, version);
    if (!model || !v) return;
    x.send(200, { model_version: versionView(model, v) });
  }

  function setVersionTag(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const version = name === undefined ? undefined : field(x, params, 'version');
    const key = version === undefined ? undefined : field(x, params, 'key');
    if (name === undefined || version === undefined || key === undefined) return;
    const value = params.value ?? '';
    if (typeof value !== 'string') {
      return fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Invalid value ${JSON.stringify(value)} for parameter 'value' supplied: expected a string.`,
      );
    }
    const model = modelOr404(x, name);
    const v = model && versionOr404(x, model, version);
    if (!model || !v) return;
    v.tags = [...v.tags.filter((t) => t.key !== key), { key, value }];
    v.last_updated_timestamp = tick();
    x.send(200, {});
  }

  function deleteVersionTag(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const version = name === undefined ? undefined : field(x, params, 'version');
    const key = version === undefined ? undefined : field(x, params, 'key');
    if (name === undefined || version === undefined || key === undefined) return;
    const model = modelOr404(x, name);
    const v = model && versionOr404(x, model, version);
    if (!model || !v) return;
    if (!v.tags.some((t) => t.key === key)) {
      return fail(
        x,
        404,
        'RESOURCE_DOES_NOT_EXIST',
        `No tag with name: ${key} in model version ${name} ${version}.`,
      );
    }
    v.tags = v.tags.filter((t) => t.key !== key);
    x.send(200, {});
  }

  /**
   * `model-versions/search`: the double understands the filter the client sends, `name='<model>'` (or
   * `"<model>"`), and answers every matching version in one page (MLflow omits `model_versions` when empty).
   */
  function searchVersions(x: MlExchange, params: Record<string, unknown>): undefined {
    const filter = typeof params.filter === 'string' ? params.filter : '';
    const match = /^\s*name\s*=\s*(?:'([^']*)'|"([^"]*)")\s*$/.exec(filter);
    if (filter !== '' && !match) {
      return fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Invalid filter '${filter}'. The double supports name='<model>'.`,
      );
    }
    const name = match ? (match[1] ?? match[2]) : undefined;
    const found = [...models.values()]
      .filter((m) => name === undefined || m.name === name)
      .flatMap((m) => [...m.versions.values()].map((v) => versionView(m, v)));
    x.send(200, found.length ? { model_versions: found } : {});
  }

  function createVersion(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const source = name === undefined ? undefined : field(x, params, 'source');
    if (name === undefined || source === undefined) return;
    const model = modelOr404(x, name);
    if (!model) return;
    const tags = Array.isArray(params.tags)
      ? Object.fromEntries(
          (params.tags as { key?: unknown; value?: unknown }[]).map((t) => [
            String(t.key),
            String(t.value ?? ''),
          ]),
        )
      : {};
    const version = addVersion(
      model,
      MlflowDoubleVersion.parse({
        source,
        ...(typeof params.run_id === 'string' ? { runId: params.run_id } : {}),
        ...(typeof params.description === 'string' ? { description: params.description } : {}),
        tags,
      }),
    );
    x.send(200, {
      model_version: versionView(model, model.versions.get(version) as MlflowDoubleModelVersion),
    });
  }

  function transition(x: MlExchange, params: Record<string, unknown>): undefined {
    const name = field(x, params, 'name');
    const version = name === undefined ? undefined : field(x, params, 'version');
    const stageText = version === undefined ? undefined : field(x, params, 'stage');
    if (name === undefined || version === undefined || stageText === undefined) return;
    const archive = params.archive_existing_versions;
    if (typeof archive !== 'boolean') {
      return fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Missing value for required parameter 'archive_existing_versions'.`,
      );
    }
    const stage = Stage.options.find((s) => s.toLowerCase() === stageText.toLowerCase());
    if (!stage) {
      return fail(
        x,
        400,
        'INVALID_PARAMETER_VALUE',
        `Invalid Model Version stage: ${stageText}. Value must be one of ${Stage.options.join(', ')}.`,
      );
    }
    const model = modelOr404(x, name);
    const v = model && versionOr404(x, model, version);
    if (!model || !v) return;
    const t = tick();
    if (archive && (stage === 'Staging' || stage === 'Production')) {
      for (const other of model.versions.values()) {
        if (other !== v && other.current_stage === stage) {
          other.current_stage = 'Archived';
          other.last_updated_timestamp = t;
        }
      }
    }
    v.current_stage = stage;
    v.last_updated_timestamp = t;
    x.send(200, { model_version: versionView(model, v) });
  }

  function fail(x: MlExchange, status: number, code: string, message: string): undefined {
    x.send(status, { error_code: code, message });
  }

  return {
    url: server.url,
    requests: server.requests,
    faults: server.faults,
    clearRequests: () => server.clearRequests(),
    aliases: (model) => Object.fromEntries(models.get(model)?.aliases ?? []),
    version(model, version) {
      const m = models.get(model);
      const v = m?.versions.get(version);
      return m && v ? versionView(m, v) : undefined;
    },
    registerVersion(model, version = {}) {
      const m = models.get(model) ?? createModel(model);
      return addVersion(m, parseOptions('registerVersion', MlflowDoubleVersion, version));
    },
    setStatus(model, version, status) {
      const v = models.get(model)?.versions.get(version);
      if (!v) throw new RangeError(`The MLflow double has no version ${version} of ${model}`);
      v.status = status;
    },
    close: () => server.close(),
  };
}

/** A stable, run-id-looking hex string per model version. */
function runIdOf(model: string, version: string): string {
  let h = 2166136261;
  for (const c of `${model}/${version}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return `${h.toString(16).padStart(8, '0')}${'0'.repeat(24)}`;
}
