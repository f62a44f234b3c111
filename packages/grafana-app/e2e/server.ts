/**
 * The page server of the browser test, standing in for Grafana's HTTP server: the host page at `/a/*`
 * (with `grafanaBootData` for the signed-in user), SystemJS and the host bundle under `/host/`, the built
 * plugin (dist/) at `/public/plugins/<id>/` as Grafana serves it, and everything under `/api/` passed to
 * the component tests' Grafana double (src/test/grafana-proxy.ts: the plugin proxy of dist/plugin.json and
 * the plugin settings API) in front of a real runbook service. One proxy double serves both kinds of test.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GrafanaUser, ProxyRoute, startGrafanaProxy } from '../src/test/grafana-proxy.ts';
import { relay } from '../src/test/relay.ts';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = join(here, '..');
const systemjsDir = dirname(createRequire(join(packageDir, 'package.json')).resolve('systemjs/package.json'));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.md': 'text/markdown',
  '.html': 'text/html',
};

/** What the page server needs. */
export interface HostServerOptions {
  distDir: string;
  hostBuildDir: string;
  serviceUrl: string;
  /** The app's token, as saved in secureJsonData.serviceToken. */
  serviceToken: string;
  user: GrafanaUser;
}

/** Serves `file` if it lies inside `root`; false when it does not exist or escapes `root`. */
async function serveFile(res: ServerResponse, root: string, relative: string): Promise<boolean> {
  const file = normalize(join(root, decodeURIComponent(relative)));
  if (!file.startsWith(root + sep)) return false;
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(body);
    return true;
  } catch {
    return false;
  }
}

/** The themes the page may ask for with `?theme=` (as Grafana's own `?theme=light` does); dark otherwise. */
const THEMES = new Set(['dark', 'light']);

function bootData(user: GrafanaUser, theme: string) {
  return {
    user: {
      id: user.userId ?? 1,
      login: user.login,
      name: user.login,
      orgId: user.orgId ?? 1,
      orgRole: user.role,
      isSignedIn: true,
      isGrafanaAdmin: false,
      // @grafana/runtime's config builds config.theme2 from this id when it is first evaluated.
      theme,
      timezone: 'browser',
      locale: 'en-US',
      language: 'en-US',
    },
    settings: {
      featureToggles: {},
      appSubUrl: '',
      buildInfo: { version: '12.4.10', edition: 'Open Source' },
    },
    navTree: [],
  };
}

/** Starts the page server on 127.0.0.1 port 0. */
export async function startHostServer(options: HostServerOptions) {
  const distDir = normalize(options.distDir);
  const shipped = JSON.parse(readFileSync(join(distDir, 'plugin.json'), 'utf8')) as {
    id: string;
    routes?: unknown;
  };
  // The routes Grafana would read: the ones in the built plugin.json, not in src/.
  const pluginJson = { id: shipped.id, routes: ProxyRoute.array().parse(shipped.routes ?? []) };
  const grafana = await startGrafanaProxy({
    user: options.user,
    pluginJson,
    settings: {
      jsonData: { serviceUrl: options.serviceUrl },
      secureJsonData: { serviceToken: options.serviceToken },
    },
  });
  const grafanaUrl = new URL(grafana.url);
  const template = readFileSync(join(here, 'host', 'index.html'), 'utf8');
  const pluginPrefix = `/public/plugins/${pluginJson.id}/`;
  /** Every path the page asked for that was not found (fonts and icons Grafana itself would serve). */
  const notFound: string[] = [];

  /** Passes an API request on to the Grafana double as it came. */
  function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return relay(res, {
      options: {
        host: grafanaUrl.hostname,
        port: grafanaUrl.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      body: req,
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://host.invalid');
    const path = url.pathname;
    if (path.startsWith('/api/')) return forward(req, res);
    if (req.method === 'GET') {
      if (path === '/host/system.js' && (await serveFile(res, systemjsDir, 'dist/system.js'))) return;
      if (path === '/host/amd.js' && (await serveFile(res, systemjsDir, 'dist/extras/amd.js'))) return;
      if (path.startsWith('/host/') && (await serveFile(res, options.hostBuildDir, path.slice(6)))) return;
      if (path.startsWith(pluginPrefix) && (await serveFile(res, distDir, path.slice(pluginPrefix.length))))
        return;
      // `/a/<id>/…` is the app; `/d/<uid>` a dashboard, where the host renders panels and panel menus.
      if (path === '/' || path.startsWith('/a/') || path.startsWith('/d/')) {
        const asked = url.searchParams.get('theme') ?? 'dark';
        const theme = THEMES.has(asked) ? asked : 'dark';
        // `<` escaped so the JSON cannot close the script element.
        const data = JSON.stringify(bootData(grafana.user(), theme)).replace(/</g, '\\u003c');
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(template.replace('__BOOT_DATA__', data));
        return;
      }
    }
    notFound.push(path);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    /** The Grafana double: `forwarded` lists what it proxied, `setUser` signs in someone else. */
    grafana,
    notFound,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await grafana.close();
    },
  };
}
