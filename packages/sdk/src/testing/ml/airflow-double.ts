import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import {
  type MlDoubleFaults,
  type MlExchange,
  type MlLoggedRequest,
  NOT_JSON,
  startMlDoubleServer,
} from './ml-double-server';

/** A DAG run as the double keeps it (the v2 wire shape). */
export interface AirflowDoubleRun {
  dag_id: string;
  dag_run_id: string;
  state: 'queued' | 'running' | 'success' | 'failed';
  conf: Record<string, unknown>;
  note: string | null;
  logical_date: string | null;
  queued_at: string;
  start_date: string | null;
  end_date: string | null;
  run_type: 'manual';
  /** Which API version triggered it. */
  api: 'v1' | 'v2';
}

/** Options of {@link startAirflowDouble}. */
export const AirflowDoubleOptions = z.strictObject({
  /** The DAGs it has; others are 404. @default ["model_retraining"] */
  dags: z.array(z.string().min(1)).min(1).default(['model_retraining']),
  /** Users and their passwords, for v2 tokens and v1 basic auth. @default { admin: "admin" } */
  users: z.record(z.string(), z.string()).default({ admin: 'admin' }),
  /** How long a run stays `queued`. @default "100ms" */
  queuedFor: Duration.default('100ms'),
  /** How long a run stays `running` before it ends. @default "1s" */
  runFor: Duration.default('1s'),
  /** How a run ends. @default always "success" */
  outcome: z
    .custom<(run: Readonly<AirflowDoubleRun>) => 'success' | 'failed'>(
      (v) => typeof v === 'function',
      'outcome must be a function',
    )
    .optional(),
  /**
   * Called as a run's last task, before it reads `success` (a lab registers the retrained model version here).
   * Errors are ignored. @default none
   */
  onRunSuccess: z
    .custom<(run: Readonly<AirflowDoubleRun>) => void | Promise<void>>(
      (v) => typeof v === 'function',
      'onRunSuccess must be a function',
    )
    .optional(),
  /** @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
});
export type AirflowDoubleOptions = z.input<typeof AirflowDoubleOptions>;

/** A running Airflow double. */
export interface AirflowDouble {
  /** `http://127.0.0.1:<port>`: the API server (`AIRFLOW_URL`). */
  readonly url: string;
  readonly requests: readonly MlLoggedRequest[];
  /** 5xx faults (answered `{detail}`). */
  readonly faults: MlDoubleFaults;
  clearRequests(): void;
  /** The runs of a DAG, oldest first. */
  runs(dag: string): AirflowDoubleRun[];
  /** Ends a run now (tests that do not want to wait). */
  finish(dag: string, dagRunId: string, state: 'success' | 'failed'): Promise<void>;
  close(): Promise<void>;
}

// Airflow 3's TriggerDAGRunPostBody: extra fields are forbidden, logical_date is required (nullable).
const V2_FIELDS = new Set([
  'dag_run_id',
  'data_interval_start',
  'data_interval_end',
  'logical_date',
  'run_after',
  'conf',
  'note',
]);
// Airflow 2's DAGRun schema, writable fields.
const V1_FIELDS = new Set([
  'dag_run_id',
  'logical_date',
  'execution_date',
  'conf',
  'note',
  'data_interval_start',
  'data_interval_end',
]);

/**
 * Starts an Airflow API double on 127.0.0.1 with both APIs: v2 (Airflow 3: `POST /auth/token` issues a bearer
 * token; `POST /api/v2/dags/{dag}/dagRuns` validates its body strictly, answering FastAPI's 422
 * `{detail: [{type, loc, msg}]}`) and v1 (Airflow 2: basic auth, problem JSON errors). `GET …/dagRuns/{id}`
 * on both. Runs go `queued` → `running` → `success` (or what `outcome` says) on timers; a duplicate
 * `dag_run_id` is 409.
 */
export async function startAirflowDouble(options: AirflowDoubleOptions = {}): Promise<AirflowDouble> {
  const o = parseOptions('startAirflowDouble', AirflowDoubleOptions, options);
  const dags = new Map<string, Map<string, AirflowDoubleRun>>(o.dags.map((d) => [d, new Map()]));
  const tokens = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  const queuedMs = toMillis(o.queuedFor);
  const runMs = toMillis(o.runFor);

  const later = (ms: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      work();
    }, ms);
    timer.unref();
    timers.add(timer);
  };

  // A function, not an inline test: the hook awaited in between may have ended the run (`finish`).
  const ended = (run: AirflowDoubleRun) => run.state === 'success' || run.state === 'failed';
  const end = async (run: AirflowDoubleRun, state: 'success' | 'failed') => {
    if (ended(run)) return;
    // The hook is the run's last task (registering the model): the run reads `success` only once it returned.
    if (state === 'success' && o.onRunSuccess) {
      await Promise.resolve(o.onRunSuccess({ ...run, state: 'success' })).catch(() => {});
    }
    if (ended(run)) return;
    const now = new Date().toISOString();
    run.start_date ??= now;
    run.state = state;
    run.end_date = now;
  };

  const schedule = (run: AirflowDoubleRun) => {
    later(queuedMs, () => {
      if (run.state !== 'queued') return;
      run.state = 'running';
      run.start_date = new Date().toISOString();
      later(runMs, () => void end(run, o.outcome?.({ ...run }) ?? 'success'));
    });
  };

  const server = await startMlDoubleServer(
    o.host,
    o.port,
    (status) => ({ detail: `Internal Server Error (${status})` }),
    route,
  );

  function route(x: MlExchange): undefined {
    if (x.path === '/auth/token' && x.method === 'POST') return issueToken(x);
    const match = /^\/api\/(v1|v2)\/dags\/([^/]+)\/dagRuns(?:\/([^/]+))?$/.exec(x.path);
    if (!match) return problem(x, 'v2', 404, 'Not Found', 'Not Found');
    const api = match[1] as 'v1' | 'v2';
    if (!authorized(x, api)) {
      return api === 'v2'
        ? x.send(401, { detail: 'Not authenticated' })
        : problem(x, 'v1', 401, 'Unauthorized', 'No credentials');
    }
    const dag = decodeURIComponent(match[2] as string);
    const runs = dags.get(dag);
    if (!runs) return problem(x, api, 404, 'DAG not found', `The Dag with ID: \`${dag}\` was not found`);
    const runId = match[3] === undefined ? undefined : decodeURIComponent(match[3]);
    if (runId !== undefined) {
      if (x.method !== 'GET') return problem(x, api, 405, 'Method Not Allowed', 'Method Not Allowed');
      const run = runs.get(runId);
      if (!run) {
        return problem(
          x,
          api,
          404,
          'DAGRun not found',
          `The DagRun with dag_id: \`${dag}\` and run_id: \`${runId}\` was not found`,
        );
      }
      return x.send(200, view(run));
    }
    if (x.method !== 'POST') return problem(x, api, 405, 'Method Not Allowed', 'Method Not Allowed');
    return trigger(x, api, dag, runs);
  }

  function issueToken(x: MlExchange): undefined {
    const body = x.body as { username?: unknown; password?: unknown } | undefined;
    if (
      !body ||
      body === (NOT_JSON as unknown) ||
      typeof body.username !== 'string' ||
      typeof body.password !== 'string'
    ) {
      return x.send(422, { detail: [{ type: 'missing', loc: ['body', 'username'], msg: 'Field required' }] });
    }
    if (o.users[body.username] !== body.password) return x.send(401, { detail: 'Invalid credentials' });
    // A JWT-shaped opaque token (header.payload.signature).
    const token = [
      'eyJhbGciOiJIUzI1NiJ9',
      Buffer.from(JSON.stringify({ sub: body.username })).toString('base64url'),
      randomBytes(24).toString('base64url'),
    ].join('.');
    tokens.add(token);
    x.send(201, { access_token: token });
  }

  function authorized(x: MlExchange, api: 'v1' | 'v2'): boolean {
    const header = x.req.headers.authorization ?? '';
    if (api === 'v2') return header.startsWith('Bearer ') && tokens.has(header.slice(7));
    if (!header.startsWith('Basic ')) return false;
    const [user, ...rest] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
    return user !== undefined && o.users[user] === rest.join(':');
  }

  function trigger(
    x: MlExchange,
    api: 'v1' | 'v2',
    dag: string,
    runs: Map<string, AirflowDoubleRun>,
  ): undefined {
    const body = x.body;
    if (
      body === NOT_JSON ||
      body === undefined ||
      typeof body !== 'object' ||
      body === null ||
      Array.isArray(body)
    ) {
      return api === 'v2'
        ? x.send(422, {
            detail: [
              {
                type: 'model_attributes_type',
                loc: ['body'],
                msg: 'Input should be a valid dictionary or object to extract fields from',
                input: null,
              },
            ],
          })
        : problem(x, 'v1', 400, 'Bad Request', 'Request body must be a JSON object');
    }
    const fields = body as Record<string, unknown>;
    if (api === 'v2') {
      const issues: { type: string; loc: string[]; msg: string; input?: unknown }[] = [];
      for (const key of Object.keys(fields)) {
        if (!V2_FIELDS.has(key))
          issues.push({
            type: 'extra_forbidden',
            loc: ['body', key],
            msg: 'Extra inputs are not permitted',
            input: fields[key],
          });
      }
      if (!('logical_date' in fields))
        issues.push({ type: 'missing', loc: ['body', 'logical_date'], msg: 'Field required' });
      else if (fields.logical_date !== null && typeof fields.logical_date !== 'string') {
        issues.push({
          type: 'datetime_type',
          loc: ['body', 'logical_date'],
          msg: 'Input should be a valid datetime',
          input: fields.logical_date,
        });
      }
      issues.push(...typeIssues(fields));
      if (issues.length > 0) return x.send(422, { detail: issues });
    } else {
      const extra = Object.keys(fields).find((k) => !V1_FIELDS.has(k));
      if (extra) return problem(x, 'v1', 400, 'Bad Request', `{'${extra}': ['Unknown field.']}`);
      const bad = typeIssues(fields)[0];
      if (bad) return problem(x, 'v1', 400, 'Bad Request', `{'${bad.loc[1]}': ['${bad.msg}']}`);
    }
    const now = new Date().toISOString();
    const dagRunId = typeof fields.dag_run_id === 'string' ? fields.dag_run_id : `manual__${now}`;
    if (runs.has(dagRunId)) {
      return problem(
        x,
        api,
        409,
        'Conflict',
        `DAGRun with DAG ID: '${dag}' and DAGRun ID: '${dagRunId}' already exists`,
      );
    }
    const logical =
      api === 'v1' ? (fields.logical_date ?? fields.execution_date ?? now) : fields.logical_date;
    const run: AirflowDoubleRun = {
      dag_id: dag,
      dag_run_id: dagRunId,
      state: 'queued',
      conf: (fields.conf as Record<string, unknown> | undefined) ?? {},
      note: typeof fields.note === 'string' ? fields.note : null,
      logical_date: typeof logical === 'string' ? logical : null,
      queued_at: now,
      start_date: null,
      end_date: null,
      run_type: 'manual',
      api,
    };
    runs.set(dagRunId, run);
    schedule(run);
    x.send(200, view(run));
  }

  function typeIssues(fields: Record<string, unknown>) {
    const issues: { type: string; loc: string[]; msg: string; input?: unknown }[] = [];
    if (
      'conf' in fields &&
      (typeof fields.conf !== 'object' || fields.conf === null || Array.isArray(fields.conf))
    ) {
      issues.push({
        type: 'dict_type',
        loc: ['body', 'conf'],
        msg: 'Input should be a valid dictionary',
        input: fields.conf,
      });
    }
    for (const key of ['dag_run_id', 'note']) {
      if (key in fields && fields[key] !== null && typeof fields[key] !== 'string') {
        issues.push({
          type: 'string_type',
          loc: ['body', key],
          msg: 'Input should be a valid string',
          input: fields[key],
        });
      }
    }
    return issues;
  }

  function view(run: AirflowDoubleRun) {
    const { api: _api, ...wire } = run;
    return { ...wire, conf: { ...run.conf }, triggered_by: 'rest_api', dag_versions: [] };
  }

  /** v2 errors are FastAPI's `{detail}`; v1 errors are Connexion's problem JSON. */
  function problem(
    x: MlExchange,
    api: 'v1' | 'v2',
    status: number,
    title: string,
    detail: string,
  ): undefined {
    if (api === 'v2') return x.send(status, { detail });
    x.send(status, {
      detail,
      status,
      title,
      type: `https://airflow.apache.org/docs/apache-airflow/2.10.5/stable-rest-api-ref.html#section/Errors/${title.replace(/\s/g, '')}`,
    });
  }

  return {
    url: server.url,
    requests: server.requests,
    faults: server.faults,
    clearRequests: () => server.clearRequests(),
    runs: (dag) => [...(dags.get(dag)?.values() ?? [])].map((r) => ({ ...r, conf: { ...r.conf } })),
    async finish(dag, dagRunId, state) {
      const run = dags.get(dag)?.get(dagRunId);
      if (!run) throw new RangeError(`The Airflow double has no run ${dagRunId} of DAG ${dag}`);
      await end(run, state);
    },
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return server.close();
    },
  };
}
