/**
 * The component tests' world: a REAL runbook service (`runbook serve` from the built SDK, in a child
 * process, with the test runbooks of `runbooks.mjs` and an embedded store in a temporary directory),
 * the Grafana double of `grafana-proxy.ts` in front of it, and a BackendSrv installed with
 * `setBackendSrv` that does real HTTP to the double. Nothing is mocked between a component and the
 * service: what a page shows is what the service answered through the proxy routes of plugin.json.
 *
 * One harness per test file (start it in `beforeAll`, `stop()` in `afterAll`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BackendSrv,
  type BackendSrvRequest,
  type FetchError,
  type FetchResponse,
  setBackendSrv,
} from '@grafana/runtime';
import { lastValueFrom, Observable } from 'rxjs';
import type { RunDetailView, RunView } from '../api/types';
import { type GrafanaProxy, type GrafanaUser, startGrafanaProxy } from './grafana-proxy';

export type { GrafanaUser, OrgRole } from './grafana-proxy';

// Paths from strings: under jsdom, `URL` is jsdom's, which Node's fileURLToPath does not take.
const HERE = dirname(fileURLToPath(import.meta.url));
const SDK_CLI = resolve(HERE, '../../../sdk/dist/cli/main.js');
const RUNBOOKS_MODULE = resolve(HERE, 'runbooks.mjs');

/** The world of the test runbooks (see runbooks.mjs), as the service last wrote it. */
export interface TestWorld {
  agents: Record<string, { replicas: number; debug: boolean }>;
  database: { primary: string; standby: string };
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  /** The signed-in Grafana user. @default { login: 'gina', role: 'Admin' } */
  user?: GrafanaUser;
  /**
   * Whether the app is configured (jsonData.serviceUrl and secureJsonData.serviceToken set to the real
   * service and its Grafana token). `false` leaves both empty, as after installing the plugin.
   * @default true
   */
  configured?: boolean;
  /** The service role granted to the Grafana app's token (the user's org role can only lower it). @default 'admin' */
  appTokenRole?: 'viewer' | 'editor' | 'admin';
  /** Install the harness's BackendSrv with `setBackendSrv`. @default true */
  installBackendSrv?: boolean;
}

/** A JSON answer of the service, called directly (not through the proxy). */
export interface ServiceReply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read JSON bodies loosely
  body: any;
}

/** A running harness. */
export interface Harness {
  /** Base URL of the Grafana double: the app's requests go to `${proxyUrl}/api/plugin-proxy/<id>/…`. */
  proxyUrl: string;
  /** Base URL of the runbook service itself. */
  serviceUrl: string;
  /** The Grafana app's token (`"grafana": true`), the value to put in secureJsonData.serviceToken. */
  appToken: string;
  /** Personal tokens: `root` (admin) and `erin` (editor), for acting outside Grafana. */
  tokens: { root: string; erin: string };
  /** The Grafana double (settings, forwarded requests). */
  proxy: GrafanaProxy;
  /** The BackendSrv the harness installed (or would have). */
  backendSrv: BackendSrv;
  /** The signed-in Grafana user from now on. */
  setUser(user: GrafanaUser): void;
  /** All runs in the store, newest first (read through the service API with an admin token). */
  runs(): Promise<RunSummary[]>;
  /** One run's detail from the service (admin token). */
  run(runId: string): Promise<RunDetailView>;
  /** Polls {@link Harness.run} until the run has one of `statuses` (default: a final one), or throws after `timeoutMs`. */
  waitForRun(
    runId: string,
    statuses?: readonly RunView['status'][],
    timeoutMs?: number,
  ): Promise<RunDetailView>;
  /**
   * Starts a run with `POST /runs` as `token` (default root) and waits until it has one of `until` (default: a
   * final status); throws when the service does not accept it. Resolves to the run's id.
   */
  startRun(
    request: { runbookId: string; mode: RunView['mode']; input: unknown },
    options?: { token?: string; until?: readonly RunView['status'][] },
  ): Promise<string>;
  /** A direct call to the service with a personal token (default root, an admin). */
  service(method: 'GET' | 'POST', path: string, body?: unknown, token?: string): Promise<ServiceReply>;
  /** The test runbooks' world as it is now. */
  world(): TestWorld;
  /** What the service process printed (for failure messages). */
  serviceOutput(): string;
  /** Stops the service and the double, and removes the temporary directory. */
  stop(): Promise<void>;
}

/**
 * A failover-database run (a high-risk test runbook) started by erin outside Grafana, once it waits for an
 * admin's approval. Resolves to its id.
 */
export function startWaitingFailover(h: Harness): Promise<string> {
  return h.startRun(
    { runbookId: 'failover-database', mode: 'execute', input: { reason: 'primary disk full' } },
    { token: h.tokens.erin, until: ['waiting_approval'] },
  );
}

/** A run as `GET /api/v1/runs` lists it. */
export type RunSummary = RunView;

const FINAL: readonly RunView['status'][] = ['succeeded', 'failed', 'escalated', 'cancelled'];

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Starts the service, the Grafana double and (by default) installs the BackendSrv. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'runbooks-app-'));
  const worldFile = join(dir, 'world.json');
  const appToken = `grafana-app-${randomBytes(12).toString('hex')}`;
  const tokens = {
    root: `root-${randomBytes(12).toString('hex')}`,
    erin: `erin-${randomBytes(12).toString('hex')}`,
  };
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(
    tokensFile,
    JSON.stringify({
      tokens: [
        {
          name: 'grafana-app',
          role: options.appTokenRole ?? 'admin',
          grafana: true,
          sha256: sha256(appToken),
        },
        { name: 'root', role: 'admin', sha256: sha256(tokens.root) },
        { name: 'erin', role: 'editor', sha256: sha256(tokens.erin) },
      ],
    }),
  );

  const child = spawn(
    process.execPath,
    [
      SDK_CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--tokens-file',
      tokensFile,
      '--runbooks',
      RUNBOOKS_MODULE,
      '--data-dir',
      join(dir, 'store'),
      '--poll-interval',
      '100ms',
      '--shutdown-grace',
      '1s',
    ],
    {
      cwd: dir,
      env: { ...process.env, RUNBOOK_TEST_WORLD: worldFile, RUNBOOK_ACTOR: 'harness', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  let exited = false;
  child.on('exit', () => (exited = true));

  let serviceUrl: string;
  try {
    serviceUrl = await listeningUrl(
      child,
      () => output,
      () => exited,
    );
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const configured = options.configured ?? true;
  const proxy = await startGrafanaProxy({
    user: options.user ?? { login: 'gina', role: 'Admin' },
    settings: configured
      ? { jsonData: { serviceUrl }, secureJsonData: { serviceToken: appToken } }
      : { jsonData: {}, secureJsonData: {} },
  });
  const backendSrv = createBackendSrv(proxy.url);
  if (options.installBackendSrv ?? true) setBackendSrv(backendSrv);

  const service = async (method: 'GET' | 'POST', path: string, body?: unknown, token = tokens.root) => {
    const response = await fetch(`${serviceUrl}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };

  const readRun = async (runId: string): Promise<RunDetailView> => {
    const reply = await service('GET', `/runs/${encodeURIComponent(runId)}`);
    if (reply.status !== 200)
      throw new Error(`GET /runs/${runId} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
    return reply.body as RunDetailView;
  };

  const waitForRun: Harness['waitForRun'] = async (runId, statuses = FINAL, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const detail = await readRun(runId);
      if (statuses.includes(detail.run.status)) return detail;
      if (Date.now() > deadline) {
        throw new Error(
          `run ${runId} is ${detail.run.status}, not ${statuses.join(' or ')}, after ${timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  return {
    proxyUrl: proxy.url,
    serviceUrl,
    appToken,
    tokens,
    proxy,
    backendSrv,
    setUser: (user) => proxy.setUser(user),
    runs: async () => {
      const all: RunSummary[] = [];
      let cursor: string | null = null;
      do {
        const page: ServiceReply = await service(
          'GET',
          `/runs?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        if (page.status !== 200)
          throw new Error(`GET /runs answered ${page.status}: ${JSON.stringify(page.body)}`);
        all.push(...page.body.runs);
        cursor = page.body.nextCursor;
      } while (cursor);
      return all;
    },
    run: readRun,
    waitForRun,
    startRun: async (request, { token = tokens.root, until = FINAL } = {}) => {
      const reply = await service('POST', '/runs', request, token);
      if (reply.status !== 202)
        throw new Error(`POST /runs answered ${reply.status}: ${JSON.stringify(reply.body)}`);
      const runId = reply.body.runId as string;
      await waitForRun(runId, until);
      return runId;
    },
    service,
    world: () => {
      try {
        return JSON.parse(readFileSync(worldFile, 'utf8')) as TestWorld;
      } catch {
        return initialWorld();
      }
    },
    serviceOutput: () => output,
    stop: async () => {
      await proxy.close();
      if (!exited) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The world before any runbook changed it (the same as runbooks.mjs's `initialWorld`). */
function initialWorld(): TestWorld {
  return {
    agents: {
      'generation-agent': { replicas: 0, debug: false },
      'requirements-agent': { replicas: 2, debug: false },
    },
    database: { primary: 'db-a', standby: 'db-b' },
  };
}

async function listeningUrl(
  child: ChildProcess,
  output: () => string,
  exited: () => boolean,
): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const match = /runbook service listening on (http:\/\/\S+)/.exec(output());
    if (match?.[1]) return match[1];
    if (exited()) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the runbook service did not start (is packages/sdk built? pnpm build):\n${output()}`);
}

/**
 * A BackendSrv like Grafana's, minus its UI side effects: `fetch` does real HTTP to `baseUrl` (Node's
 * fetch), sends `data` as JSON, appends `params`, parses a JSON answer, and emits a FetchResponse or
 * errors with a FetchError (`status`, `statusText`, `data`, `config`), as Grafana's does.
 */
export function createBackendSrv(baseUrl: string): BackendSrv {
  const fetchObservable = <T>(options: BackendSrvRequest): Observable<FetchResponse<T>> =>
    new Observable<FetchResponse<T>>((subscriber) => {
      const controller = new AbortController();
      const url = new URL(options.url, `${baseUrl}/`);
      if (options.params && typeof options.params === 'object') {
        for (const [key, value] of Object.entries(options.params as Record<string, unknown>)) {
          if (value === undefined || value === null) continue;
          for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
        }
      }
      const method = (options.method ?? 'GET').toUpperCase();
      const headers: Record<string, string> = { 'X-Grafana-Org-Id': '1', ...(options.headers ?? {}) };
      let body: string | undefined;
      if (options.data !== undefined && method !== 'GET') {
        body = typeof options.data === 'string' ? options.data : JSON.stringify(options.data);
        headers['Content-Type'] ??= 'application/json';
      }
      fetch(url, { method, headers, signal: controller.signal, ...(body !== undefined ? { body } : {}) })
        .then(async (response) => {
          const text = await response.text();
          let data: unknown = text;
          if (options.responseType === undefined || options.responseType === 'json') {
            try {
              data = text === '' ? undefined : JSON.parse(text);
            } catch {
              data = text;
            }
          }
          if (response.ok) {
            subscriber.next({
              data: data as T,
              status: response.status,
              statusText: response.statusText,
              ok: true,
              headers: response.headers,
              redirected: response.redirected,
              type: response.type,
              url: response.url,
              config: options,
            });
            subscriber.complete();
          } else {
            const error: FetchError = {
              status: response.status,
              statusText: response.statusText,
              data: data ?? {},
              config: options,
              ...(typeof (data as { message?: unknown })?.message === 'string'
                ? { message: (data as { message: string }).message }
                : {}),
            };
            subscriber.error(error);
          }
        })
        .catch((e: unknown) => {
          if (controller.signal.aborted) return;
          // Grafana's own server always answers; a transport failure here means the double is gone.
          const error: FetchError = {
            status: 0,
            statusText: (e as Error)?.message ?? 'network error',
            data: {},
            config: options,
          };
          subscriber.error(error);
        });
      return () => controller.abort();
    });

  const dataOf = <T>(options: BackendSrvRequest) =>
    lastValueFrom(fetchObservable<T>(options)).then((r) => r.data);

  return {
    fetch: fetchObservable,
    get: (url, params, _requestId, options) => dataOf({ ...options, url, method: 'GET', params }),
    delete: (url, data, options) => dataOf({ ...options, url, method: 'DELETE', data }),
    post: (url, data, options) => dataOf({ ...options, url, method: 'POST', data }),
    patch: (url, data, options) => dataOf({ ...options, url, method: 'PATCH', data }),
    put: (url, data, options) => dataOf({ ...options, url, method: 'PUT', data }),
    request: (options) => dataOf(options),
    datasourceRequest: (options) => lastValueFrom(fetchObservable(options)),
    chunked: () => {
      throw new Error('chunked is not used by this app');
    },
  } as BackendSrv;
}
