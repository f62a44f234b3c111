// The service route table is read from a real SDK server (embedded store in memory), under jsdom:
// @grafana/runtime, which the client imports, needs `window`.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, openStore } from '@aiwebtest/runbooks';
import { createServer } from '@aiwebtest/runbooks/server';
import { type BackendSrv, setBackendSrv } from '@grafana/runtime';
import { Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { API_BASE, api, PLUGIN_ID } from './api/client';
import { matchRoute } from './test/grafana-proxy';

// Paths from strings: under jsdom, `URL` is jsdom's, which Node's fs does not take.
const srcDir = dirname(fileURLToPath(import.meta.url));
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

const packageName = z.object({ name: z.string() }).parse(readJson(join(srcDir, '../package.json'))).name;
const pluginJson = readJson(join(srcDir, 'plugin.json'));

const Role = z.enum(['Viewer', 'Editor', 'Admin']);
type Role = z.infer<typeof Role>;

/** Grafana interpolates `{{ .JsonData.x }}` and `{{ .SecureJsonData.x }}` when it proxies a route. */
const SERVICE_URL = /^\{\{\s*\.JsonData\.serviceUrl\s*\}\}(\/[\w\-./]*)?$/;
const BEARER_SERVICE_TOKEN = /^Bearer \{\{\s*\.SecureJsonData\.serviceToken\s*\}\}$/;

const Route = z.strictObject({
  path: z.string().regex(/^[\w-]+(\/[\w-]+)*(\/\*)?$/, 'a relative path such as "api/*"'),
  // Grafana compares the request method to this string as a whole: "GET,POST" would match nothing.
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
  reqRole: Role,
  url: z.string().regex(SERVICE_URL, 'the route URL must come from jsonData.serviceUrl'),
  // Exactly the one header that carries the token, and only as a template: never a literal secret.
  headers: z
    .array(
      z.strictObject({
        name: z.literal('Authorization'),
        content: z
          .string()
          .regex(BEARER_SERVICE_TOKEN, 'the token must come from secureJsonData.serviceToken'),
      }),
    )
    .length(1),
});
type Route = z.infer<typeof Route>;

const Info = z.object({
  keywords: z.array(z.string()).min(1),
  description: z.string().min(1),
  author: z.object({ name: z.string().min(1) }),
  logos: z.object({ small: z.string().endsWith('.svg'), large: z.string().endsWith('.svg') }),
  version: z.string().regex(/^(%VERSION%|\d+\.\d+\.\d+)$/),
  updated: z.string().regex(/^(%TODAY%|\d{4}-\d{2}-\d{2})$/),
});

const PluginJson = (id: string) =>
  z.object({
    $schema: z.string().optional(),
    type: z.literal('app'),
    id: z.literal(id),
    name: z.string().min(1),
    info: Info,
    includes: z
      .array(z.object({ type: z.enum(['page', 'dashboard', 'panel']), name: z.string().min(1) }))
      .optional(),
    routes: z
      .array(Route)
      .min(1)
      // Grafana takes the first route whose method matches and whose path is a prefix: a later route of the
      // same method under an earlier one's path would never be used.
      .refine(
        (routes) =>
          !routes.some((later, j) =>
            routes
              .slice(0, j)
              .some((earlier) => earlier.method === later.method && later.path.startsWith(earlier.path)),
          ),
        { message: 'a route under an earlier route of its method (same path or a longer one) never matches' },
      ),
    dependencies: z.object({
      grafanaDependency: z.string().regex(/^>=\d+\.\d+\.\d+$/),
      plugins: z.array(z.unknown()),
    }),
  });

/** Human-readable problems with a plugin.json, or an empty list. */
function pluginJsonProblems(json: unknown, id = packageName): string[] {
  const result = PluginJson(id).safeParse(json);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

/** Just enough of plugin.json's shape to break it on purpose. */
type Draft = {
  id: unknown;
  info: Record<string, unknown>;
  routes: Array<Record<string, unknown> & { headers: Array<Record<string, unknown>> }>;
};
const at = (draft: Draft, index: number, fields: Record<string, unknown>) =>
  Object.assign(draft.routes[index] ?? {}, fields);
const token = (draft: Draft, content: string) =>
  Object.assign(draft.routes[0]?.headers[0] ?? {}, { content });
const broken = (change: (draft: Draft) => void): unknown => {
  const draft = structuredClone(pluginJson) as Draft;
  change(draft);
  return draft;
};

/** A route of the runbook service as Fastify registered it: `/api/v1/runs/:id`, and its least role. */
interface ServiceRoute {
  method: string;
  url: string;
  role: 'viewer' | 'editor' | 'admin';
  tokenKind: 'personal' | 'alertmanager';
}

/** The service's routes under /api/v1, read from a real server of the SDK through an onRoute hook. */
async function readServiceRoutes(): Promise<ServiceRoute[]> {
  const store = await openStore({ dataDir: ':memory:' });
  try {
    const app = createServer({ engine: new Engine({ store, runbooks: [] }), logger: false });
    const routes: ServiceRoute[] = [];
    app.addHook('onRoute', (route) => {
      const config = (route.config ?? {}) as Partial<Pick<ServiceRoute, 'role' | 'tokenKind'>>;
      for (const method of [route.method].flat()) {
        // The service's auth hook defaults a route without a role to viewer.
        routes.push({
          method,
          url: route.url,
          role: config.role ?? 'viewer',
          tokenKind: config.tokenKind ?? 'personal',
        });
      }
    });
    await app.ready();
    await app.close();
    // Fastify adds a HEAD route to every GET; the app never sends HEAD.
    return routes.filter((r) => r.url.startsWith('/api/v1/') && r.method !== 'HEAD');
  } finally {
    await store.close();
  }
}

/** A request the app's client makes: which function, and the method and URL it sends to Grafana. */
interface ClientCall {
  name: string;
  method: string;
  url: string;
}

/** One call of every function of the client; `Record<keyof typeof api, …>` makes a new function fail to compile here. */
const CLIENT_CALLS: Record<keyof typeof api, () => Promise<unknown>> = {
  listRunbooks: () => api.listRunbooks(),
  getRunbook: () => api.getRunbook('scale-agent'),
  diagnose: () => api.diagnose('scale-agent', { agent: 'generation-agent' }),
  startRun: () => api.startRun({ runbookId: 'scale-agent', input: {}, mode: 'execute' }),
  listRuns: () => api.listRuns({ status: 'queued', limit: 10 }),
  getRun: () => api.getRun('run_1'),
  runEvents: () => api.runEvents('run_1', 3),
  approve: () => api.approve('run_1', { reason: 'ok' }),
  reject: () => api.reject('run_1', { reason: 'no' }),
  cancel: () => api.cancel('run_1'),
  listAudit: () => api.listAudit({ runId: 'run_1' }),
  verifyAudit: () => api.verifyAudit(),
  listAlerts: () => api.listAlerts({ status: 'firing' }),
};

/** The requests the client sends, recorded by a BackendSrv that answers every request with `{}` (no HTTP). */
async function recordClientCalls(): Promise<ClientCall[]> {
  const calls: ClientCall[] = [];
  let current = '';
  setBackendSrv({
    fetch: (options: { url: string; method?: string }) => {
      calls.push({ name: current, method: options.method ?? 'GET', url: options.url });
      return new Observable((subscriber) => {
        subscriber.next({ data: {}, status: 200, ok: true, config: options });
        subscriber.complete();
      });
    },
  } as unknown as BackendSrv);
  for (const [name, call] of Object.entries(CLIENT_CALLS)) {
    current = name;
    await call();
  }
  return calls;
}

/**
 * Service routes the app does not call, each with the reason. A new service route must be called by the
 * client or listed here, so nobody adds one without deciding how Grafana's proxy treats it.
 */
const NOT_CALLED: Record<string, string> = {
  'GET /api/v1/openapi.json': 'the catalog takes each input JSON Schema from GET /runbooks',
  'POST /api/v1/runs/:id/approve':
    'under /runs the proxy can only give it the Editor role of cancel: the app approves through /approvals',
  'POST /api/v1/runs/:id/reject':
    'under /runs the proxy can only give it the Editor role of cancel: the app rejects through /approvals',
  'POST /api/v1/alerts/alertmanager': "Alertmanager's webhook: it takes only Alertmanager's token",
};

const ROLE_RANK: Record<Role | ServiceRoute['role'], number> = {
  Viewer: 1,
  viewer: 1,
  Editor: 2,
  editor: 2,
  Admin: 3,
  admin: 3,
};

/** `/api/v1/runs/:id/cancel` as a pattern; find-my-way prefers static segments, so fewer params win. */
function serviceRouteOf(
  routes: readonly ServiceRoute[],
  method: string,
  path: string,
): ServiceRoute | undefined {
  const params = (url: string) => url.split('/').filter((s) => s.startsWith(':')).length;
  const pattern = (url: string) =>
    new RegExp(
      `^${url
        .split('/')
        .map((s) => (s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')}$`,
    );
  return routes
    .filter((r) => r.method === method && pattern(r.url).test(path))
    .sort((a, b) => params(a.url) - params(b.url))[0];
}

const PROXY_PREFIX = `/api/plugin-proxy/${PLUGIN_ID}/`;

/**
 * What is wrong with a route table against the service: a client call the service does not serve or no
 * proxy route reaches, a proxy route that lets a lower role through than the service needs (the first
 * matching route decides, as in Grafana), a service route neither called nor listed in {@link NOT_CALLED},
 * or an Alertmanager-only route reachable through the proxy.
 */
function coverageProblems(
  routes: readonly Pick<Route, 'path' | 'method' | 'reqRole'>[],
  service: readonly ServiceRoute[],
  calls: readonly ClientCall[],
): string[] {
  const problems: string[] = [];
  const called = new Set<string>();
  for (const call of calls) {
    const path = call.url.split('?')[0] ?? '';
    if (!path.startsWith(PROXY_PREFIX)) {
      problems.push(`${call.name}: ${call.method} ${call.url} does not go through the plugin proxy`);
      continue;
    }
    const proxyPath = path.slice(PROXY_PREFIX.length);
    const target = serviceRouteOf(service, call.method, `/${proxyPath}`);
    if (!target) {
      problems.push(`${call.name}: ${call.method} /${proxyPath} is not a route of the service`);
      continue;
    }
    called.add(`${target.method} ${target.url}`);
    const route = matchRoute(routes, call.method, proxyPath);
    if (!route) {
      problems.push(`${call.name}: no proxy route for ${call.method} ${proxyPath}`);
    } else if (ROLE_RANK[route.reqRole] < ROLE_RANK[target.role]) {
      problems.push(
        `${call.name}: ${target.method} ${target.url} needs ${target.role}, but the proxy route ${route.method} ${route.path} lets ${route.reqRole}s through`,
      );
    }
  }
  for (const r of service) {
    const key = `${r.method} ${r.url}`;
    if (!called.has(key) && !(key in NOT_CALLED)) {
      problems.push(`${key} is a service route the app neither calls nor lists in NOT_CALLED`);
    }
    if (r.tokenKind === 'alertmanager' && matchRoute(routes, r.method, r.url.slice(1))) {
      problems.push(`${key} takes only Alertmanager's token but a proxy route reaches it`);
    }
  }
  for (const key of Object.keys(NOT_CALLED)) {
    if (!service.some((r) => `${r.method} ${r.url}` === key))
      problems.push(`${key} in NOT_CALLED is no route of the service`);
  }
  return problems;
}

/** The route table: one route per method and prefix, each with the service's role for what it reaches. */
const EXPECTED_ROUTES = [
  { method: 'GET', path: 'api/v1', reqRole: 'Viewer' },
  { method: 'POST', path: 'api/v1/runbooks', reqRole: 'Viewer' }, // diagnose
  { method: 'POST', path: 'api/v1/runs', reqRole: 'Editor' }, // plan, execute, cancel
  { method: 'POST', path: 'api/v1/approvals', reqRole: 'Admin' }, // approve, reject
].map((r) => ({
  ...r,
  url: `{{ .JsonData.serviceUrl }}/${r.path}`,
  headers: [{ name: 'Authorization', content: 'Bearer {{ .SecureJsonData.serviceToken }}' }],
}));

let serviceRoutes: ServiceRoute[] = [];
let clientCalls: ClientCall[] = [];
beforeAll(async () => {
  serviceRoutes = await readServiceRoutes();
  clientCalls = await recordClientCalls();
}, 60_000);
afterAll(() => {
  // Leave no recording BackendSrv behind for another file in the same worker.
  setBackendSrv(undefined as unknown as BackendSrv);
});

describe('src/plugin.json', () => {
  it('is a valid app plugin.json', () => {
    expect(pluginJsonProblems(pluginJson)).toEqual([]);
  });

  it('has the id of the package', () => {
    expect(z.object({ id: z.string() }).parse(pluginJson).id).toBe(packageName);
  });

  it('ships the logos it names', () => {
    const { info } = z.object({ info: Info }).parse(pluginJson);
    for (const logo of [info.logos.small, info.logos.large]) {
      expect(existsSync(join(srcDir, logo)), `${logo} exists`).toBe(true);
    }
  });

  it('has exactly the expected route table', () => {
    expect(PluginJson(packageName).parse(pluginJson).routes).toEqual(EXPECTED_ROUTES);
  });

  it("reaches every service route the client calls through a route at least as strict as the service's role", () => {
    expect(Object.keys(CLIENT_CALLS).sort()).toEqual(Object.keys(api).sort());
    expect(new Set(clientCalls.map((c) => c.name)).size).toBe(Object.keys(api).length);
    // The service's table was really read: these are its roles, not the test's.
    expect(serviceRoutes).toContainEqual({
      method: 'POST',
      url: '/api/v1/approvals/:runId/approve',
      role: 'admin',
      tokenKind: 'personal',
    });
    expect(serviceRoutes).toContainEqual({
      method: 'POST',
      url: '/api/v1/runs/:id/cancel',
      role: 'editor',
      tokenKind: 'personal',
    });
    const { routes } = PluginJson(packageName).parse(pluginJson);
    expect(coverageProblems(routes, serviceRoutes, clientCalls)).toEqual([]);
  });

  // The coverage rule is only worth something if it fails on a broken table, service or client.
  it.each<[string, (draft: Draft) => void, string]>([
    ['approvals open to Editors', (d) => at(d, 3, { reqRole: 'Editor' }), 'approve: POST /api/v1/approvals'],
    ['no route for approvals', (d) => d.routes.splice(3, 1), 'approve: no proxy route'],
    [
      'runs open to Viewers',
      (d) => at(d, 2, { reqRole: 'Viewer' }),
      'cancel: POST /api/v1/runs/:id/cancel needs editor',
    ],
    [
      'an Editor catch-all for POST before the others (the first match wins)',
      (d) => d.routes.unshift({ ...structuredClone(d.routes[2] ?? {}), path: 'api/v1', headers: [] }),
      'reject: POST /api/v1/approvals/:runId/reject needs admin',
    ],
    [
      "a route that reaches Alertmanager's webhook",
      (d) => d.routes.push({ ...structuredClone(d.routes[2] ?? {}), path: 'api/v1/alerts', headers: [] }),
      'POST /api/v1/alerts/alertmanager takes only',
    ],
  ])('the coverage rule rejects %s', (_name, change, problem) => {
    const draft = broken(change) as Draft;
    const problems = coverageProblems(draft.routes as unknown as Route[], serviceRoutes, clientCalls);
    expect(
      problems.some((p) => p.startsWith(problem) || p.includes(problem)),
      problems.join('\n'),
    ).toBe(true);
  });

  it('the coverage rule rejects a service route nobody decided about, and a client call the service lacks', () => {
    const { routes } = PluginJson(packageName).parse(pluginJson);
    const newRoute: ServiceRoute = {
      method: 'POST',
      url: '/api/v1/runs/:id/retry',
      role: 'editor',
      tokenKind: 'personal',
    };
    expect(coverageProblems(routes, [...serviceRoutes, newRoute], clientCalls)).toEqual([
      'POST /api/v1/runs/:id/retry is a service route the app neither calls nor lists in NOT_CALLED',
    ]);
    const typo: ClientCall = { name: 'retry', method: 'POST', url: `${API_BASE}/run/run_1/retry` };
    expect(coverageProblems(routes, serviceRoutes, [...clientCalls, typo])).toEqual([
      'retry: POST /api/v1/run/run_1/retry is not a route of the service',
    ]);
  });

  // The checks above are only worth something if they fail on a broken file.
  it.each<[string, (draft: Draft) => void, string]>([
    ['a foreign id', (d) => (d.id = 'someone-else-app'), 'id'],
    ['no version', (d) => delete d.info.version, 'info.version'],
    ['no routes', (d) => (d.routes = []), 'routes'],
    ['a route without reqRole', (d) => delete d.routes[0]?.reqRole, 'routes.0.reqRole'],
    ['a route without method', (d) => delete d.routes[0]?.method, 'routes.0.method'],
    ['several methods in one route', (d) => at(d, 0, { method: 'GET,POST' }), 'routes.0.method'],
    ['an unknown role', (d) => at(d, 1, { reqRole: 'Operator' }), 'routes.1.reqRole'],
    ['a hard-coded service URL', (d) => at(d, 0, { url: 'http://runbooks:8080/api' }), 'routes.0.url'],
    [
      'the token in the URL',
      (d) => at(d, 0, { url: '{{ .JsonData.serviceUrl }}/api?token={{ .SecureJsonData.serviceToken }}' }),
      'routes.0.url',
    ],
    ['a hard-coded token', (d) => token(d, 'Bearer s3cr3t'), 'routes.0.headers.0.content'],
    [
      'the token from jsonData',
      (d) => token(d, 'Bearer {{ .JsonData.serviceToken }}'),
      'routes.0.headers.0.content',
    ],
    ['no token header', (d) => at(d, 0, { headers: [] }), 'routes.0.headers'],
    ['two routes for one method and path', (d) => at(d, 1, { method: 'GET', path: 'api/v1' }), 'routes'],
    ['a route shadowed by an earlier, shorter one', (d) => at(d, 1, { method: 'GET' }), 'routes'],
  ])('rejects %s', (_name, change, path) => {
    const problems = pluginJsonProblems(broken(change));
    expect(
      problems.some((p) => p.startsWith(`${path}:`)),
      problems.join('\n'),
    ).toBe(true);
  });
});
