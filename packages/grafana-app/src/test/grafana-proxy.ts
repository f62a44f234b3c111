/**
 * A double of the parts of Grafana's HTTP server the app relies on, for tests: the plugin proxy of THIS
 * plugin.json and the plugin settings API. It is a real HTTP server, so the app's requests travel as they
 * would in Grafana: browser → Grafana (`/api/plugin-proxy/<id>/<path>`) → the runbook service.
 *
 * What it reproduces of Grafana (pkg/api/plugin_proxy.go, pkg/api/pluginproxy/pluginproxy.go
 * `HandleRequest` and `director`, pkg/web/tree.go, pkg/api/plugins.go `UpdatePluginSetting`):
 * - Route choice (Grafana ≥ 9.1): routes are tried in plugin.json order; the first whose `method` equals
 *   the request's (empty or `*` = any) and whose `path` matches the proxied path as a one-route
 *   `web.NewTree().Add(path)` / `Match(proxyPath)` wins. That is NOT prefix matching: static segments
 *   must equal the request's (URL-decoded) segments one for one, so `api/v1` matches only `api/v1`; a
 *   last `*` segment matches one or more further segments. None → 404 `plugin route match not found`.
 * - `reqRole`: Viewer ⊂ Editor ⊂ Admin, checked once the route is chosen → 403 `plugin proxy route access denied`.
 * - The target: the route's `url` templated from jsonData/secureJsonData (a missing key renders as Go's
 *   `<no value>`); its path joined (`util.JoinURLFragments`) with what `*` captured, URL-decoded, or with
 *   nothing for a route without `*`; the request's own query string (the route url's query is dropped).
 *   A trailing `/` of the request is dropped (Grafana keeps it only behind the
 *   `pluginProxyPreserveTrailingSlash` feature toggle, which the double does not emulate).
 * - Headers: cookies removed, `X-Grafana-Context` set to the signed-in user's JSON (whatever the browser
 *   sent), the route's `headers` templated and set; `Set-Cookie` removed from the answer.
 * - An unreachable target → 502 with an empty body (Go's reverse proxy).
 * - `GET/POST /api/plugins/<id>/settings`: Admin only. POST as Grafana's settings service stores it
 *   (pluginsettings/service/service.go through its xorm fork): `enabled` and `pinned` are plain bools, so
 *   one left out is stored false; a non-empty `jsonData` replaces the stored one as a whole, while a
 *   missing or empty one leaves it as it was (xorm skips empty maps in an UPDATE); `secureJsonData` is
 *   merged key by key. GET never returns secrets, only `secureJsonFields`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { relay } from './relay.ts';

/** A Grafana org role. `None` is a user with no role in the org. */
export type OrgRole = 'Viewer' | 'Editor' | 'Admin' | 'None';

/** The signed-in Grafana user the double acts for. */
export interface GrafanaUser {
  login: string;
  role: OrgRole;
  /** @default a number derived from the login */
  userId?: number;
  /** @default 1 */
  orgId?: number;
  /** @default false */
  isServiceAccount?: boolean;
}

/** The plugin's settings as Grafana stores them (secureJsonData decrypted). */
export interface PluginSettings {
  enabled: boolean;
  pinned: boolean;
  jsonData: Record<string, unknown>;
  secureJsonData: Record<string, string>;
}

/** One `routes` entry of plugin.json, as far as the proxy reads it. */
export const ProxyRoute = z.object({
  path: z.string(),
  method: z.string().optional(),
  reqRole: z.enum(['Viewer', 'Editor', 'Admin']).optional(),
  url: z.string(),
  headers: z.array(z.object({ name: z.string(), content: z.string() })).default([]),
});
export type ProxyRoute = z.infer<typeof ProxyRoute>;

const PluginJson = z.object({ id: z.string(), routes: z.array(ProxyRoute).default([]) });

/** The plugin.json the app ships (src/plugin.json). */
export function readPluginJson(): z.infer<typeof PluginJson> {
  // A path from strings: under jsdom, `URL` is jsdom's, which Node's fs does not take.
  const file = resolve(dirname(fileURLToPath(import.meta.url)), '../plugin.json');
  return PluginJson.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/**
 * Go's `url.PathUnescape`: every `%` must start a two-digit hex escape (else undefined, which Grafana
 * treats as no match); `+` stays `+`.
 */
function pathUnescape(value: string): string | undefined {
  if (!/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(value)) return undefined;
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; ) {
    if (value[i] === '%') {
      bytes.push(Number.parseInt(value.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const char = String.fromCodePoint(value.codePointAt(i) ?? 0);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go's `url.URL.EscapedPath` of a decoded path: what Go sends after the director sets `req.URL.Path`. */
function escapePath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~$&+,/:;=@]/.test(char)
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A route path the double can match as Grafana's tree does: static segments, at most a `*` as the last one. */
const SUPPORTED_PATH = /^\/?[^/:*?()]+(?:\/[^/:*?()]+)*(?:\/\*)?\/?$|^\/?\*\/?$/;

/**
 * Grafana's `web.MatchTest`-style match of one route path against the proxied path (the part after
 * `/api/plugin-proxy/<id>/`, still URL-encoded): undefined when it does not match, else what the route
 * appends to its `url`, i.e. the URL-decoded capture of a last `*` segment, or `''` without one.
 *
 * Reimplemented from pkg/web/tree.go for the patterns plugin.json uses here; `:param`, regexp and `*.*`
 * segments are refused so that a route using them cannot pass the tests on a guess.
 */
export function matchRoutePath(pattern: string, proxyPath: string): string | undefined {
  if (!SUPPORTED_PATH.test(pattern)) {
    throw new Error(`grafana double: route path ${JSON.stringify(pattern)} is not supported`);
  }
  // Tree.Add trims one trailing `/`, each level one leading `/`; Tree.Match trims one of each.
  const segments = pattern.replace(/\/$/, '').replace(/^\//, '').split('/');
  let rest = proxyPath.replace(/^\//, '').replace(/\/$/, '');
  for (let level = 0; ; level++) {
    const segment = segments[level] ?? '';
    const last = level === segments.length - 1;
    const slash = rest.indexOf('/');
    if (slash === -1) {
      // matchLeaf: only the last level of a one-route tree has a leaf.
      if (!last) return undefined;
      const value = pathUnescape(rest);
      if (value === undefined) return undefined;
      if (segment === '*') return value;
      return value === segment ? '' : undefined;
    }
    if (last) {
      // matchSubtree at the leaf level: no subtree; a `*` leaf takes all that is left, decoded.
      return segment === '*' ? pathUnescape(rest) : undefined;
    }
    // matchSubtree: the one static subtree of this level, compared with the decoded segment.
    if (pathUnescape(rest.slice(0, slash)) !== segment) return undefined;
    rest = rest.slice(slash + 1);
  }
}

/**
 * Grafana's route choice (`PluginProxy.HandleRequest`): the FIRST route, in plugin.json order, whose
 * method equals the request's (an empty or `*` method matches any) and whose path matches
 * ({@link matchRoutePath}); with what the route appends to its `url`.
 */
export function matchRoute<R extends { path: string; method?: string | undefined }>(
  routes: readonly R[],
  method: string,
  proxyPath: string,
): { route: R; rest: string } | undefined {
  for (const route of routes) {
    if (route.method !== undefined && route.method !== '' && route.method !== '*' && route.method !== method)
      continue;
    const rest = matchRoutePath(route.path, proxyPath);
    if (rest !== undefined) return { route, rest };
  }
  return undefined;
}

/**
 * The URL Grafana's `director` sends a matched route to: the templated route `url`'s scheme, host and
 * path, the path joined with `rest` (`util.JoinURLFragments`), and the request's query string as sent.
 */
export function proxyTarget(routeUrl: string, rest: string, requestSearch: string): URL {
  const target = new URL(routeUrl);
  const basePath = pathUnescape(target.pathname) ?? target.pathname;
  target.pathname = escapePath(joinUrlFragments(basePath, rest));
  target.search = requestSearch;
  target.hash = '';
  return target;
}

const RANK: Record<OrgRole, number> = { None: 0, Viewer: 1, Editor: 2, Admin: 3 };

/** Grafana's `HasUserRole`: Viewer ⊂ Editor ⊂ Admin. */
export function hasRole(user: GrafanaUser, needed: Exclude<OrgRole, 'None'>): boolean {
  return RANK[user.role] >= RANK[needed];
}

/**
 * Go's text/template over `{ JsonData, SecureJsonData }`, for the only form plugin.json uses here:
 * `{{ .JsonData.key }}` and `{{ .SecureJsonData.key }}`. A missing key renders as `<no value>`, as in Go.
 */
export function interpolate(template: string, settings: Pick<PluginSettings, 'jsonData' | 'secureJsonData'>) {
  return template.replace(
    /\{\{\s*\.(JsonData|SecureJsonData)\.(\w+)\s*\}\}/g,
    (_all, where: string, key: string) => {
      const source: Record<string, unknown> =
        where === 'JsonData' ? settings.jsonData : settings.secureJsonData;
      const value = source[key];
      return value === undefined || value === null ? '<no value>' : String(value);
    },
  );
}

/** Grafana's `util.JoinURLFragments`. */
function joinUrlFragments(a: string, b: string): string {
  if (b === '') return a;
  const aSlash = a.endsWith('/');
  const bSlash = b.startsWith('/');
  if (aSlash && bSlash) return a + b.slice(1);
  if (!aSlash && !bSlash) return `${a}/${b}`;
  return a + b;
}

/** A stable small number per login, like the user ids of a Grafana instance. */
function userIdOf(login: string): number {
  let h = 7;
  for (const c of login) h = (h * 31 + c.charCodeAt(0)) % 100_000;
  return h + 2;
}

/** The JSON Grafana marshals its `SignedInUser` to (the keys the service reads, and some it ignores). */
export function grafanaContext(user: GrafanaUser) {
  return {
    UserID: user.userId ?? userIdOf(user.login),
    UserUID: `u-${user.login}`,
    OrgID: user.orgId ?? 1,
    OrgName: 'Main Org.',
    OrgRole: user.role === 'None' ? 'None' : user.role,
    Login: user.login,
    Name: user.login,
    Email: `${user.login}@example.com`,
    IsServiceAccount: user.isServiceAccount ?? false,
    IsGrafanaAdmin: false,
    IsAnonymous: false,
    Teams: [],
  };
}

/** Options of {@link startGrafanaProxy}. */
export interface GrafanaProxyOptions {
  /** The signed-in user. */
  user: GrafanaUser;
  /** The plugin's stored settings. @default { enabled: true, pinned: true, jsonData: {}, secureJsonData: {} } */
  settings?: Partial<PluginSettings>;
  /** The plugin.json whose routes are served. @default {@link readPluginJson}() */
  pluginJson?: { id: string; routes: ProxyRoute[] };
}

/** A running {@link startGrafanaProxy}. */
export interface GrafanaProxy {
  /** Base URL of the double ("Grafana"), e.g. `http://127.0.0.1:41234`. */
  url: string;
  pluginId: string;
  /** The signed-in user from now on. */
  setUser(user: GrafanaUser): void;
  user(): GrafanaUser;
  /** The stored settings (a copy). */
  settings(): PluginSettings;
  /** Replaces parts of the stored settings, as an admin saving the config page would. */
  setSettings(settings: Partial<PluginSettings>): void;
  /** Every request the double proxied, with the headers it sent on (for tests of the proxy itself). */
  forwarded: Array<{
    method: string;
    target: string;
    headers: Record<string, string | string[] | undefined>;
  }>;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const SettingsBody = z.object({
  enabled: z.boolean().optional(),
  pinned: z.boolean().optional(),
  jsonData: z.record(z.string(), z.unknown()).nullish(),
  secureJsonData: z.record(z.string(), z.string()).nullish(),
});

/** Starts the Grafana double on 127.0.0.1 (a free port). */
export async function startGrafanaProxy(options: GrafanaProxyOptions): Promise<GrafanaProxy> {
  const plugin = options.pluginJson ?? readPluginJson();
  let user = { ...options.user };
  let settings: PluginSettings = {
    enabled: true,
    pinned: true,
    jsonData: {},
    secureJsonData: {},
    ...structuredClone(options.settings ?? {}),
  };
  const forwarded: GrafanaProxy['forwarded'] = [];
  const proxyPrefix = `/api/plugin-proxy/${plugin.id}/`;
  const settingsPath = `/api/plugins/${plugin.id}/settings`;

  const settingsDto = () => ({
    id: plugin.id,
    type: 'app',
    enabled: settings.enabled,
    pinned: settings.pinned,
    jsonData: structuredClone(settings.jsonData),
    // Grafana never sends a secret back: only which keys have one.
    secureJsonFields: Object.fromEntries(
      Object.entries(settings.secureJsonData)
        .filter(([, v]) => v !== '')
        .map(([k]) => [k, true]),
    ),
  });

  async function handleSettings(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET') return sendJson(res, 200, settingsDto());
    if (req.method !== 'POST') return sendJson(res, 405, { message: 'Method not allowed' });
    if (!hasRole(user, 'Admin')) {
      return sendJson(res, 403, {
        message:
          "You'll need additional permissions to perform this action. Permissions needed: plugins:write",
        title: 'Access denied',
      });
    }
    let body: z.infer<typeof SettingsBody>;
    try {
      body = SettingsBody.parse(JSON.parse((await readBody(req)).toString('utf8') || '{}'));
    } catch {
      return sendJson(res, 400, { message: 'bad request data' });
    }
    const jsonData = body.jsonData ?? {};
    settings = {
      // Go bools: a field left out is false.
      enabled: body.enabled ?? false,
      pinned: body.pinned ?? false,
      // Replaced as a whole when non-empty; xorm's UPDATE skips a nil or empty map, so the old one stays.
      jsonData: Object.keys(jsonData).length > 0 ? jsonData : settings.jsonData,
      // maps.Copy into the stored map: a key not sent keeps its secret.
      secureJsonData: { ...settings.secureJsonData, ...(body.secureJsonData ?? {}) },
    };
    return sendJson(res, 200, { message: 'Plugin settings updated' });
  }

  async function handleProxy(req: IncomingMessage, res: ServerResponse, requestUrl: URL): Promise<void> {
    // Still URL-encoded, as Grafana takes it from `Req.URL.EscapedPath()`.
    const proxyPath = requestUrl.pathname.slice(proxyPrefix.length);
    const matched = matchRoute(plugin.routes, req.method ?? 'GET', proxyPath);
    if (!matched) return sendJson(res, 404, { message: 'plugin route match not found' });
    const { route, rest } = matched;
    if (route.reqRole && !hasRole(user, route.reqRole)) {
      return sendJson(res, 403, { message: 'plugin proxy route access denied' });
    }
    let target: URL;
    try {
      target = proxyTarget(interpolate(route.url, settings), rest, requestUrl.search);
    } catch {
      return sendJson(res, 500, { message: 'Could not parse url' });
    }

    const headers: Record<string, string | string[] | undefined> = { ...req.headers };
    delete headers.cookie;
    delete headers['set-cookie'];
    delete headers.host;
    headers['x-grafana-context'] = JSON.stringify(grafanaContext(user));
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '127.0.0.1';
    for (const header of route.headers)
      headers[header.name.toLowerCase()] = interpolate(header.content, settings);
    forwarded.push({ method: req.method ?? 'GET', target: target.href, headers: { ...headers } });

    const body = await readBody(req);
    if (target.protocol !== 'http:') {
      res.writeHead(502).end();
      return;
    }
    await relay(res, {
      url: target,
      options: { method: req.method, headers: { ...headers, 'content-length': String(body.length) } },
      body,
      dropAnswerHeaders: ['set-cookie'],
    });
  }

  const server = createServer((req, res) => {
    const requestUrl = new URL(req.url ?? '/', 'http://grafana.invalid');
    const handle =
      requestUrl.pathname === settingsPath
        ? handleSettings(req, res)
        : requestUrl.pathname.startsWith(proxyPrefix)
          ? handleProxy(req, res, requestUrl)
          : Promise.resolve(sendJson(res, 404, { message: 'Not found' }));
    handle.catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: `grafana double: ${(e as Error).message}` });
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    pluginId: plugin.id,
    setUser: (next) => {
      user = { ...next };
    },
    user: () => ({ ...user }),
    settings: () => structuredClone(settings),
    setSettings: (next) => {
      settings = { ...settings, ...structuredClone(next) };
    },
    forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
