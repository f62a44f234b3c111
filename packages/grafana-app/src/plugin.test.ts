import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const srcDir = new URL('./', import.meta.url);
const readJson = (url: URL): unknown => JSON.parse(readFileSync(url, 'utf8'));

const packageName = z.object({ name: z.string() }).parse(readJson(new URL('../package.json', srcDir))).name;
const pluginJson = readJson(new URL('plugin.json', srcDir));

const Role = z.enum(['Viewer', 'Editor', 'Admin']);
const SAFE_METHODS: readonly string[] = ['GET', 'HEAD'];

/** Grafana interpolates `{{ .JsonData.x }}` and `{{ .SecureJsonData.x }}` when it proxies a route. */
const SERVICE_URL = /^\{\{\s*\.JsonData\.serviceUrl\s*\}\}(\/[\w\-./]*)?$/;
const BEARER_SERVICE_TOKEN = /^Bearer \{\{\s*\.SecureJsonData\.serviceToken\s*\}\}$/;

const Route = z
  .strictObject({
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
  })
  .refine((route) => SAFE_METHODS.includes(route.method) || route.reqRole !== 'Viewer', {
    message: 'a route that changes state must require Editor or Admin',
    path: ['reqRole'],
  });

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
      .refine((routes) => new Set(routes.map((r) => `${r.method} ${r.path}`)).size === routes.length, {
        message: 'one route per method and path',
      }),
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
      expect(existsSync(new URL(logo, srcDir)), `${logo} exists`).toBe(true);
    }
  });

  it('lets Viewers read and only Editors and above change', () => {
    const { routes } = PluginJson(packageName).parse(pluginJson);
    expect(routes.map(({ method, reqRole }) => `${method} ${reqRole}`)).toEqual([
      'GET Viewer',
      'POST Editor',
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
    ['POST open to Viewers', (d) => at(d, 1, { reqRole: 'Viewer' }), 'routes.1.reqRole'],
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
    ['two routes for one method', (d) => at(d, 1, { method: 'GET' }), 'routes'],
  ])('rejects %s', (_name, change, path) => {
    const problems = pluginJsonProblems(broken(change));
    expect(
      problems.some((p) => p.startsWith(`${path}:`)),
      problems.join('\n'),
    ).toBe(true);
  });
});
