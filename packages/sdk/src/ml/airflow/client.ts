import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import { type ResourceRef, resourceRef } from '../../core/resource';
import { MlServiceError } from '../errors';
import { type JsonAnswer, sendJson, upstreamText } from '../http-json';

/** How to reach Airflow's REST API. */
export const AirflowOptions = z
  .object({
    /** The API server / webserver, `http(s)://host:port`. */
    url: z
      .string()
      .regex(/^https?:\/\/[^\s]+$/, 'expected an http(s):// URL of the Airflow API server')
      .transform((u) => u.replace(/\/+$/, '')),
    /**
     * `v2`: Airflow 3 (`/api/v2`, a bearer JWT from `POST /auth/token`); `v1`: Airflow 2 (`/api/v1`, basic
     * auth). @default "v2"
     */
    apiVersion: z.enum(['v1', 'v2']).default('v2'),
    /** The user: exchanged for a token (v2) or sent as basic auth (v1). @default none */
    username: z.string().min(1).optional(),
    /** The user's password; never logged. @default none */
    password: z.string().optional(),
    /** A token already issued (v2), used instead of asking `/auth/token`. Never logged. @default none */
    token: z.string().min(1).optional(),
    /** The name in resource references (`airflow:<name>/dag/<dag>`). @default the URL's host name */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"')
      .optional(),
    /** Bound on each request. @default "10s" */
    timeout: Duration.default('10s'),
  })
  .superRefine((o, issue) => {
    if (o.apiVersion === 'v1' && o.username !== undefined && o.password === undefined) {
      issue.addIssue({
        code: 'custom',
        path: ['password'],
        message: 'basic auth (v1) needs the password with the username',
      });
    }
    if (
      o.apiVersion === 'v2' &&
      o.token === undefined &&
      o.username !== undefined &&
      o.password === undefined
    ) {
      issue.addIssue({
        code: 'custom',
        path: ['password'],
        message: 'asking /auth/token (v2) needs the password with the username',
      });
    }
  });
export type AirflowOptions = z.output<typeof AirflowOptions>;
export type AirflowOptionsInput = z.input<typeof AirflowOptions>;

/** The states of a DAG run. */
export type DagRunState = 'queued' | 'running' | 'success' | 'failed';

/** A DAG run, the same for both API versions. */
export interface DagRun {
  dagId: string;
  dagRunId: string;
  state: DagRunState | string;
  conf: Record<string, unknown>;
  note: string | null;
  /** RFC 3339, when the server said. */
  queuedAt: string | null;
  startDate: string | null;
  endDate: string | null;
}

const DagRunWire = z.object({
  dag_id: z.string(),
  dag_run_id: z.string(),
  state: z.string(),
  conf: z.record(z.string(), z.unknown()).nullable().optional(),
  note: z.string().nullable().optional(),
  queued_at: z.string().nullable().optional(),
  start_date: z.string().nullable().optional(),
  end_date: z.string().nullable().optional(),
});

/** What {@link AirflowClient.triggerDagRun} sends. */
export interface TriggerRequest {
  /** The run's id; Airflow refuses a second run with the same id (409), which makes a retried trigger safe. */
  dagRunId: string;
  conf: Record<string, unknown>;
  note?: string;
  signal?: AbortSignal;
}

/**
 * Airflow's REST API for triggering and following DAG runs: `v2` (Airflow 3: a bearer JWT from
 * `POST /auth/token`, renewed once on a 401) or `v1` (Airflow 2: basic auth). Create it once with
 * {@link connectAirflow}. Errors are {@link MlServiceError}s; a run that does not exist reads as `null`.
 */
export class AirflowClient {
  readonly name: string;
  readonly display: string;
  readonly apiVersion: 'v1' | 'v2';
  readonly #o: AirflowOptions;
  readonly #timeoutMs: number;
  #token: string | undefined;

  constructor(options: AirflowOptions) {
    const url = new URL(options.url);
    this.name = options.name ?? url.hostname.replace(/[^a-z0-9_.-]/gi, '-');
    this.display = url.origin;
    this.apiVersion = options.apiVersion;
    this.#o = options;
    this.#timeoutMs = toMillis(options.timeout);
    this.#token = options.token;
  }

  /** `airflow:<name>/dag/<dag>`. */
  ref(dag: string): ResourceRef {
    return resourceRef('airflow', this.name, 'dag', encodeURIComponent(dag));
  }

  /**
   * Triggers a run. v2 sends exactly `{logical_date: null, conf, dag_run_id, note?}` (the API refuses other
   * fields); v1 sends `{dag_run_id, conf, note?}`. A 409 (the id exists) is thrown as an `MlServiceError`
   * with status 409 for the caller to judge.
   */
  async triggerDagRun(dag: string, request: TriggerRequest): Promise<DagRun> {
    const body =
      this.apiVersion === 'v2'
        ? {
            logical_date: null,
            conf: request.conf,
            dag_run_id: request.dagRunId,
            ...(request.note === undefined ? {} : { note: request.note }),
          }
        : {
            dag_run_id: request.dagRunId,
            conf: request.conf,
            ...(request.note === undefined ? {} : { note: request.note }),
          };
    const answer = await this.#call('POST', `/dags/${encodeURIComponent(dag)}/dagRuns`, body, request.signal);
    return this.#dagRun(answer, `trigger DAG ${dag}`);
  }

  /** One run of a DAG, or `null` when there is none. */
  async getDagRun(
    dag: string,
    dagRunId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<DagRun | null> {
    const answer = await this.#call(
      'GET',
      `/dags/${encodeURIComponent(dag)}/dagRuns/${encodeURIComponent(dagRunId)}`,
      undefined,
      options.signal,
    );
    if (answer.status === 404) return null;
    return this.#dagRun(answer, `read run ${dagRunId} of DAG ${dag}`);
  }

  /** For `JSON.stringify` and `console.log`: never the password or token. */
  toJSON(): { name: string; url: string; apiVersion: string } {
    return { name: this.name, url: this.display, apiVersion: this.apiVersion };
  }

  async #call(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<JsonAnswer> {
    const send = async () =>
      sendJson('airflow', {
        method,
        url: `${this.#o.url}/api/${this.apiVersion}${path}`,
        ...(body === undefined ? {} : { body }),
        headers: await this.#authorization(signal),
        ...(signal ? { signal } : {}),
        timeoutMs: this.#timeoutMs,
      });
    let answer = await send();
    // A v2 token expires: ask for a new one once (when we can), then give the 401 to the caller.
    if (answer.status === 401 && this.apiVersion === 'v2' && this.#o.username !== undefined) {
      this.#token = undefined;
      answer = await send();
    }
    return answer;
  }

  async #authorization(signal: AbortSignal | undefined): Promise<Record<string, string>> {
    const { username, password } = this.#o;
    if (this.apiVersion === 'v1') {
      return username === undefined
        ? {}
        : { authorization: `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` };
    }
    if (this.#token === undefined && username !== undefined) {
      const answer = await sendJson('airflow', {
        method: 'POST',
        url: `${this.#o.url}/auth/token`,
        body: { username, password },
        ...(signal ? { signal } : {}),
        timeoutMs: this.#timeoutMs,
      });
      const token = (answer.body as { access_token?: unknown } | null)?.access_token;
      if (answer.status < 200 || answer.status >= 300 || typeof token !== 'string') {
        throw this.#error(answer, `issue a token for user ${username} (POST /auth/token)`);
      }
      this.#token = token;
    }
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` };
  }

  #dagRun(answer: JsonAnswer, what: string): DagRun {
    if (answer.status < 200 || answer.status >= 300) throw this.#error(answer, what);
    const parsed = DagRunWire.safeParse(answer.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new MlServiceError(
        'airflow',
        502,
        null,
        `Airflow at ${this.display} answered the request to ${what} with an unexpected body: ${issue?.path.join('.') || '(root)'}: ${issue?.message}. Is the URL an Airflow API server of version ${this.apiVersion}?`,
      );
    }
    const w = parsed.data;
    return {
      dagId: w.dag_id,
      dagRunId: w.dag_run_id,
      state: w.state,
      conf: w.conf ?? {},
      note: w.note ?? null,
      queuedAt: w.queued_at ?? null,
      startDate: w.start_date ?? null,
      endDate: w.end_date ?? null,
    };
  }

  #error(answer: JsonAnswer, what: string): MlServiceError {
    const body = answer.body as { detail?: unknown; title?: unknown } | null;
    const detail =
      typeof body?.detail === 'string'
        ? body.detail
        : body?.detail !== undefined
          ? JSON.stringify(body.detail)
          : `HTTP ${answer.status}`;
    const title = typeof body?.title === 'string' ? body.title : null;
    const secrets = [this.#o.password, this.#token].filter(
      (s): s is string => typeof s === 'string' && s.length > 0,
    );
    const hint =
      answer.status === 401 || answer.status === 403
        ? ' Check the user, password or token Airflow was given.'
        : answer.status === 404
          ? ' Check the DAG id (is the DAG deployed and not paused away?).'
          : '';
    return new MlServiceError(
      'airflow',
      answer.status,
      title,
      `Airflow at ${this.display} refused to ${what}: ${answer.status}: ${upstreamText(detail, secrets)}.${hint}`,
    );
  }
}

/** Validates the options (an `InputValidationError` names each bad field); makes no request. */
export function connectAirflow(options: AirflowOptionsInput): AirflowClient {
  return new AirflowClient(parseOptions('airflow', AirflowOptions, options));
}
