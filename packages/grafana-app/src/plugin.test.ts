// The service route table is read from a real SDK server (embedded store in memory), under jsdom:
// @grafana/runtime, which the client imports, needs `window`.
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, openStore } from '@aiwebtest/runbooks';
import { createServer } from '@aiwebtest/runbooks/server';
import { type BackendSrv, setBackendSrv } from '@grafana/runtime';
import { Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { API_BASE, api, PLUGIN_ID } from './api/client';
import {
  interpolate,
  matchRoute,
  matchRoutePath,
  proxyTarget,
  startGrafanaProxy,
} from './test/grafana-proxy';

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
      // Grafana takes the first route, in this order, whose method matches and whose path matches as its
      // route tree does (pkg/web/tree.go): a later route of the same method whose every path an earlier one
      // already matches (the same path, or one under an earlier `…/*`) would never be used.
      .refine((routes) => !routes.some((later, j) => routes.slice(0, j).some((e) => shadows(e, later))), {
        message: 'a route whose every path an earlier route of its method matches never matches',
      }),
    dependencies: z.object({
      grafanaDependency: z.string().regex(/^>=\d+\.\d+\.\d+$/),
      plugins: z.array(z.unknown()),
    }),
  });

/**
 * Whether every path `later` matches is matched by `earlier` of the same method first: the same pattern, or
 * a pattern under an earlier `x/*` (which takes `x/y` and `x/y/*`, but not `x` itself).
 */
function shadows(earlier: { method: string; path: string }, later: { method: string; path: string }) {
  if (earlier.method !== later.method) return false;
  if (earlier.path === later.path) return true;
  return earlier.path.endsWith('/*') && later.path.startsWith(earlier.path.slice(0, -1));
}

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
  execute: () => api.execute({ runbookId: 'scale-agent', input: {}, idempotencyKey: 'k-1' }),
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
  'GET /api/v1/runs/:id/fixture':
    'a replay fixture is for `runbook replay` on a workstation or in CI; the Viewer GET route of /runs reaches it, as the service allows viewers',
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

/** What route URLs are templated with here: only the path of the target matters. */
const SERVICE_SETTINGS = { jsonData: { serviceUrl: 'http://service.invalid' }, secureJsonData: {} };

/**
 * What is wrong with a route table against the service, with routes matched as Grafana's plugin proxy
 * matches them ({@link matchRoute}: the first route in order whose method equals and whose path matches
 * as Grafana's route tree does): a client call the service does not serve, or that no proxy route reaches,
 * or that its route sends elsewhere (the route's `url` joined with what `*` captured); a proxy route that
 * lets a lower role through than the service needs; a service route neither called nor listed in
 * {@link NOT_CALLED}; or an Alertmanager-only route reachable through the proxy.
 */
function coverageProblems(
  routes: readonly Pick<Route, 'path' | 'method' | 'reqRole' | 'url'>[],
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
    const matched = matchRoute(routes, call.method, proxyPath);
    if (!matched) {
      problems.push(`${call.name}: no proxy route for ${call.method} ${proxyPath}`);
      continue;
    }
    const { route, rest } = matched;
    const sentTo = proxyTarget(interpolate(route.url, SERVICE_SETTINGS), rest, '').pathname;
    if (sentTo !== `/${proxyPath}`) {
      problems.push(
        `${call.name}: the proxy route ${route.method} ${route.path} sends ${call.method} /${proxyPath} to ${sentTo}`,
      );
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

/**
 * The route table: one route per method and path pattern, each with the service's role for what it
 * reaches. A `*` segment is what lets a route reach the paths below it (it matches one or more segments,
 * not none), and only what it captures is appended to the route's `url`, so the url repeats the path
 * before the `*`.
 */
const EXPECTED_ROUTES = [
  { method: 'GET', path: 'api/v1/*', reqRole: 'Viewer' }, // everything the app reads
  { method: 'POST', path: 'api/v1/runbooks/*', reqRole: 'Viewer' }, // diagnose
  { method: 'POST', path: 'api/v1/runs', reqRole: 'Editor' }, // plan, execute: `runs/*` does not match `runs`
  { method: 'POST', path: 'api/v1/runs/*', reqRole: 'Editor' }, // cancel
  { method: 'POST', path: 'api/v1/approvals/*', reqRole: 'Admin' }, // approve, reject
].map((r) => ({
  ...r,
  url: `{{ .JsonData.serviceUrl }}/${r.path.replace(/\/\*$/, '')}`,
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
    ['approvals open to Editors', (d) => at(d, 4, { reqRole: 'Editor' }), 'approve: POST /api/v1/approvals'],
    ['no route for approvals', (d) => d.routes.splice(4, 1), 'approve: no proxy route'],
    [
      'cancel open to Viewers',
      (d) => at(d, 3, { reqRole: 'Viewer' }),
      'cancel: POST /api/v1/runs/:id/cancel needs editor',
    ],
    [
      'an Editor catch-all for POST before the others (the first match wins)',
      (d) =>
        d.routes.unshift({
          ...structuredClone(d.routes[3] ?? {}),
          path: 'api/v1/*',
          url: '{{ .JsonData.serviceUrl }}/api/v1',
          headers: [],
        }),
      'reject: POST /api/v1/approvals/:runId/reject needs admin',
    ],
    [
      "a route that reaches Alertmanager's webhook",
      (d) => d.routes.push({ ...structuredClone(d.routes[3] ?? {}), path: 'api/v1/alerts/*', headers: [] }),
      'POST /api/v1/alerts/alertmanager takes only',
    ],
    // Grafana ≥ 9.1 matches a route's path segment by segment: without `*`, it matches only itself.
    [
      'a plain `api/v1` GET route (prefix style)',
      (d) => at(d, 0, { path: 'api/v1' }),
      'listRunbooks: no proxy route for GET api/v1/runbooks',
    ],
    [
      'only `runs/*` for POST /runs',
      (d) => d.routes.splice(2, 1),
      'startRun: no proxy route for POST api/v1/runs',
    ],
    [
      'a `*` route whose url drops the path before the `*`',
      (d) => at(d, 3, { url: '{{ .JsonData.serviceUrl }}/api/v1' }),
      'cancel: the proxy route POST api/v1/runs/* sends POST /api/v1/runs/run_1/cancel to /api/v1/run_1/cancel',
    ],
    [
      'the prefix-style table of before',
      (d) => {
        d.routes = d.routes.filter((r) => r.path !== 'api/v1/runs/*');
        for (const r of d.routes) Object.assign(r, { path: String(r.path).replace(/\/\*$/, '') });
      },
      'getRun: no proxy route for GET api/v1/runs/run_1',
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
    ['two routes for one method and path', (d) => at(d, 1, { method: 'GET', path: 'api/v1/*' }), 'routes'],
    ['a route under an earlier `*` of its method', (d) => at(d, 1, { method: 'GET' }), 'routes'],
    ['a `:param` segment', (d) => at(d, 3, { path: 'api/v1/runs/:id/cancel' }), 'routes.3.path'],
    ['a `*` before the end', (d) => at(d, 3, { path: 'api/v1/*/cancel' }), 'routes.3.path'],
  ])('rejects %s', (_name, change, path) => {
    const problems = pluginJsonProblems(broken(change));
    expect(
      problems.some((p) => p.startsWith(`${path}:`)),
      problems.join('\n'),
    ).toBe(true);
  });
});

// The double's matcher is what the coverage rule above trusts: these cases are Grafana's own rules
// (pkg/web/tree.go, pkg/api/pluginproxy/pluginproxy.go), so a double drifting back to prefix matching fails.
describe("the Grafana double's route matching", () => {
  it.each<[string, string, string | undefined]>([
    // [route path, proxied path (as sent, still URL-encoded), what is appended to the route url or no match]
    ['api/v1', 'api/v1', ''],
    ['api/v1', 'api/v1/', ''], // one trailing slash is trimmed
    ['api/v1', 'api/v1/runbooks', undefined], // no prefix matching
    ['api/v1', 'api', undefined],
    ['api/v1/*', 'api/v1/runbooks', 'runbooks'],
    ['api/v1/*', 'api/v1/runs/run_1/events', 'runs/run_1/events'],
    ['api/v1/*', 'api/v1', undefined], // `*` needs a segment
    ['api/v1/*', 'api/v2/runs', undefined],
    ['api/v1/runs/*', 'api/v1/runs', undefined],
    ['api/v1/runs/*', 'api/v1/runs/run_1/cancel', 'run_1/cancel'],
    ['api/v1/runs', 'api/v1/runs', ''],
    ['api/v1/runs', 'api/v1/runs/run_1/cancel', undefined],
    ['api/v1/*', 'api/v1/runs/a%2Fb/events', 'runs/a/b/events'], // captured path URL-decoded
    ['api/v1/*', 'api/v1/runs/a%20b', 'runs/a b'],
    ['api/%761/*', 'api/v1/x', undefined], // the pattern is not decoded
    ['api/v1/*', 'api/%761/runs', 'runs'], // the request's static segments are compared decoded
    ['api/v1/*', 'api/v1/runs/%zz', undefined], // a bad escape matches nothing
  ])('%s against %s → %j', (pattern, path, appended) => {
    expect(matchRoutePath(pattern, path)).toBe(appended);
  });

  it('refuses route paths it cannot match like Grafana', () => {
    expect(() => matchRoutePath('api/v1/runs/:id', 'api/v1/runs/x')).toThrow(/not supported/);
    expect(() => matchRoutePath('api/*/runs', 'api/v1/runs')).toThrow(/not supported/);
  });

  it('takes the first route in order whose method and path match', () => {
    const routes = [
      { method: 'POST', path: 'api/v1/runs', name: 'start' },
      { method: 'GET', path: 'api/v1/*', name: 'read' },
      { method: 'POST', path: 'api/v1/*', name: 'catch-all' },
      { method: 'POST', path: 'api/v1/runs/*', name: 'never' },
    ];
    expect(matchRoute(routes, 'POST', 'api/v1/runs')).toEqual({ route: routes[0], rest: '' });
    expect(matchRoute(routes, 'POST', 'api/v1/runs/x/cancel')).toEqual({
      route: routes[2],
      rest: 'runs/x/cancel',
    });
    expect(matchRoute(routes, 'GET', 'api/v1/runs')).toEqual({ route: routes[1], rest: 'runs' });
    expect(matchRoute(routes, 'DELETE', 'api/v1/runs')).toBeUndefined();
    expect(matchRoute([{ path: 'api/v1/*' }], 'DELETE', 'api/v1/runs')?.rest).toBe('runs');
  });

  it('joins the route url with the capture (util.JoinURLFragments) and keeps only the request query', () => {
    expect(proxyTarget('http://svc:8080/api/v1', 'runs/x/events', '?after=3&format=json').href).toBe(
      'http://svc:8080/api/v1/runs/x/events?after=3&format=json',
    );
    expect(proxyTarget('http://svc:8080/api/v1/', 'runs', '').href).toBe('http://svc:8080/api/v1/runs');
    expect(proxyTarget('http://svc:8080/api/v1/runs', '', '').href).toBe('http://svc:8080/api/v1/runs');
    expect(proxyTarget('http://svc:8080/base?x=1', 'a', '?y=2').href).toBe('http://svc:8080/base/a?y=2');
    // Decoded, then escaped again as Go sends a path: `%2F` has become a separator.
    expect(proxyTarget('http://svc:8080/api/v1', 'runs/a/b c', '').pathname).toBe('/api/v1/runs/a/b%20c');
  });

  it('forwards GET api/v1/runs/x/events?after=3 over HTTP to the route url, the capture and the query', async () => {
    const seen: string[] = [];
    const upstream = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const serviceUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const grafana = await startGrafanaProxy({
      user: { login: 'vic', role: 'Viewer' },
      settings: { jsonData: { serviceUrl }, secureJsonData: { serviceToken: 't' } },
    });
    try {
      const base = `${grafana.url}/api/plugin-proxy/${PLUGIN_ID}`;
      const events = await fetch(`${base}/api/v1/runs/x/events?after=3&format=json`);
      expect(events.status).toBe(200);
      const start = await fetch(`${base}/api/v1/runs`, { method: 'POST', body: '{}' });
      expect(start.status).toBe(403); // POST api/v1/runs is for Editors
      const bare = await fetch(`${base}/api/v1`);
      expect(bare.status).toBe(404);
      expect(await bare.json()).toEqual({ message: 'plugin route match not found' });
      grafana.setUser({ login: 'eve', role: 'Editor' });
      const cancel = await fetch(`${base}/api/v1/runs/run%2Fa/cancel?why=1`, { method: 'POST', body: '{}' });
      expect(cancel.status).toBe(200);
      expect(seen).toEqual([
        'GET /api/v1/runs/x/events?after=3&format=json',
        'POST /api/v1/runs/run/a/cancel?why=1',
      ]);
    } finally {
      await grafana.close();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});

describe("the Grafana double's plugin settings API", () => {
  it('stores a POST as Grafana does: bools default to false, empty jsonData keeps the old, secrets merge', async () => {
    const grafana = await startGrafanaProxy({
      user: { login: 'ada', role: 'Admin' },
      settings: { jsonData: { serviceUrl: 'http://a' }, secureJsonData: { serviceToken: 't' } },
    });
    const post = (body: unknown) =>
      fetch(`${grafana.url}/api/plugins/${PLUGIN_ID}/settings`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
    try {
      expect((await post({ enabled: true })).status).toBe(200);
      expect(grafana.settings()).toEqual({
        enabled: true,
        pinned: false,
        jsonData: { serviceUrl: 'http://a' },
        secureJsonData: { serviceToken: 't' },
      });
      await post({ enabled: true, pinned: true, jsonData: {}, secureJsonData: { other: 'o' } });
      expect(grafana.settings()).toMatchObject({
        pinned: true,
        jsonData: { serviceUrl: 'http://a' },
        secureJsonData: { serviceToken: 't', other: 'o' },
      });
      await post({ jsonData: { serviceUrl: 'http://b' } });
      expect(grafana.settings()).toMatchObject({ enabled: false, jsonData: { serviceUrl: 'http://b' } });
      const read = (await (await fetch(`${grafana.url}/api/plugins/${PLUGIN_ID}/settings`)).json()) as object;
      expect(read).toMatchObject({ secureJsonFields: { serviceToken: true, other: true } });
      expect(JSON.stringify(read)).not.toContain('"t"');
    } finally {
      await grafana.close();
    }
  });
});
