/**
 * The host page's script: what Grafana's own frontend does before and while it loads an app plugin, with
 * the real packages. It registers React, the @grafana packages, rxjs, emotion and react-router as SystemJS
 * modules under their bare names (Grafana's shared dependencies), sets a BackendSrv whose `fetch` goes to
 * this page's origin (the server forwards `/api/plugin-proxy/...` like Grafana), imports the plugin's
 * built `module.js` from `/public/plugins/<id>/`, calls `init(meta)` and renders its root page inside the
 * theme and a router at `/a/<id>/*`, as Grafana's AppRootPage does. At `/d/<uid>` it plays a dashboard
 * instead (dashboard.tsx): the nested panel plugin and the app's panel-menu links, driven by the test.
 *
 * The outcome is published on `window.__host` for the browser test to read.
 */
import * as emotionCss from '@emotion/css';
import * as grafanaData from '@grafana/data';
import { type AppPlugin, type AppPluginMeta, PluginContextProvider, PluginType } from '@grafana/data';
import * as grafanaRuntime from '@grafana/runtime';
import { type BackendSrv, type BackendSrvRequest, type FetchResponse, setBackendSrv } from '@grafana/runtime';
import * as grafanaUi from '@grafana/ui';
import * as React from 'react';
import * as jsxRuntime from 'react/jsx-runtime';
import * as reactDom from 'react-dom';
import { createRoot } from 'react-dom/client';
import * as reactRouter from 'react-router';
import { BrowserRouter, Route, Routes } from 'react-router-dom';
import * as rxjs from 'rxjs';
import { lastValueFrom, Observable } from 'rxjs';

import { startDashboard } from './dashboard.tsx';
import type { HostState } from './state.ts';
import { Themed } from './themed.tsx';

declare global {
  interface Window {
    System: {
      set(id: string, module: unknown): void;
      addImportMap(map: { imports: Record<string, string> }): void;
      import(id: string): Promise<Record<string, unknown>>;
    };
  }
}

const host: HostState = { phase: 'loading' };
window.__host = host;

const PLUGIN_ID = 'aiwebtest-runbooks-app';

// Grafana's shared dependencies, under the names its externals list (.config/bundler/externals.ts) gives them.
const shared: Record<string, unknown> = {
  react: React,
  'react/jsx-runtime': jsxRuntime,
  'react-dom': reactDom,
  'react-router': reactRouter,
  rxjs,
  '@emotion/css': emotionCss,
  '@grafana/data': grafanaData,
  '@grafana/ui': grafanaUi,
  '@grafana/runtime': grafanaRuntime,
};
const imports: Record<string, string> = {};
for (const [name, module] of Object.entries(shared)) {
  // A URL-like id, as Grafana uses (`package:<name>`): System.set refuses bare specifiers.
  const id = `app:${name}`;
  window.System.set(id, module);
  imports[name] = id;
}
window.System.addImportMap({ imports });

/** A BackendSrv double of the one method the app uses, with Grafana's answer and error shapes. */
function fetchObservable<T>(options: BackendSrvRequest): Observable<FetchResponse<T>> {
  return new Observable<FetchResponse<T>>((subscriber) => {
    const controller = new AbortController();
    const headers: Record<string, string> = { accept: 'application/json', ...(options.headers ?? {}) };
    let body: string | undefined;
    if (options.data !== undefined) {
      body = JSON.stringify(options.data);
      headers['content-type'] = 'application/json';
    }
    let url = options.url;
    if (options.params && Object.keys(options.params).length > 0) {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(options.params as Record<string, unknown>)) {
        if (value !== undefined && value !== null) query.set(key, String(value));
      }
      url += `${url.includes('?') ? '&' : '?'}${query}`;
    }
    fetch(url, {
      method: options.method ?? 'GET',
      headers,
      body,
      signal: controller.signal,
      credentials: 'same-origin',
    })
      .then(async (response) => {
        const text = await response.text();
        let data: unknown = text;
        try {
          data = text ? JSON.parse(text) : undefined;
        } catch {
          // Not JSON: Grafana hands the text through as it is.
        }
        const result = {
          data: data as T,
          status: response.status,
          statusText: response.statusText,
          ok: response.ok,
          headers: response.headers,
          redirected: response.redirected,
          type: response.type,
          url: response.url,
          config: options,
        } as FetchResponse<T>;
        if (response.ok) {
          subscriber.next(result);
          subscriber.complete();
        } else {
          // Grafana's FetchError: status, statusText, data, config.
          subscriber.error({
            status: response.status,
            statusText: response.statusText,
            data,
            config: options,
          });
        }
      })
      .catch((error: unknown) => {
        if (!controller.signal.aborted)
          subscriber.error({ status: 0, statusText: String(error), data: undefined, config: options });
      });
    return () => controller.abort();
  });
}

const backendSrv = {
  fetch: fetchObservable,
  request: <T,>(options: BackendSrvRequest) => lastValueFrom(fetchObservable<T>(options)).then((r) => r.data),
  datasourceRequest: <T,>(options: BackendSrvRequest) => lastValueFrom(fetchObservable<T>(options)),
  get: <T,>(url: string, params?: Record<string, unknown>) =>
    lastValueFrom(fetchObservable<T>({ url, params })).then((r) => r.data),
  post: <T,>(url: string, data?: unknown) =>
    lastValueFrom(fetchObservable<T>({ url, method: 'POST', data })).then((r) => r.data),
} as unknown as BackendSrv;
setBackendSrv(backendSrv);

host.fetchJson = async (url) => {
  try {
    const response = await lastValueFrom(fetchObservable<unknown>({ url }));
    return { status: response.status, data: response.data };
  } catch (e) {
    const failure = e as { status: number; data: unknown };
    return { status: failure.status, data: failure.data };
  }
};

/** What Grafana's /api/plugins/<id>/settings gives the frontend: never secureJsonData, only which keys are set. */
async function appMeta(): Promise<AppPluginMeta> {
  const pluginJson = (await (await fetch(`/public/plugins/${PLUGIN_ID}/plugin.json`)).json()) as {
    name: string;
    info: AppPluginMeta['info'];
  };
  return {
    id: PLUGIN_ID,
    name: pluginJson.name,
    type: PluginType.app,
    info: pluginJson.info,
    module: `/public/plugins/${PLUGIN_ID}/module.js`,
    baseUrl: `public/plugins/${PLUGIN_ID}`,
    enabled: true,
    pinned: true,
    jsonData: { serviceUrl: 'configured-on-the-server' },
    secureJsonFields: { serviceToken: true },
  } as unknown as AppPluginMeta;
}

/** Imports module.js and initialises the app as Grafana's importAppPlugin does (also when it preloads apps for extensions). */
async function loadApp(meta: AppPluginMeta): Promise<AppPlugin> {
  host.importStartedAt = performance.now();
  const exports = await window.System.import(`/public/plugins/${PLUGIN_ID}/module.js`);
  const plugin = exports.plugin as AppPlugin | undefined;
  if (!plugin?.root) throw new Error('module.js exports no `plugin` with a root page');
  plugin.meta = meta;
  plugin.init?.(meta);
  return plugin;
}

// The themes' own colours, for the test to compare the page with (independent of the theme the page picked).
host.themeColors = (mode) => {
  const theme = grafanaData.createTheme({ colors: { mode } });
  return {
    canvas: theme.colors.background.canvas,
    text: theme.colors.text.primary,
    primary: theme.colors.primary.main,
    error: theme.colors.error.main,
    primaryShade: theme.colors.primary.shade,
    errorShade: theme.colors.error.shade,
  };
};

async function main() {
  const element = document.getElementById('reactRoot');
  if (!element) throw new Error('no #reactRoot');
  const meta = await appMeta();
  const plugin = await loadApp(meta);
  // `/d/<uid>`: a dashboard. The test then renders panels and panel menus through `window.__host.dashboard`.
  if (window.location.pathname.startsWith('/d/')) {
    host.dashboard = startDashboard({
      root: createRoot(element),
      app: plugin,
      appMeta: meta,
      pluginId: PLUGIN_ID,
    });
    host.phase = 'ready';
    return;
  }
  const Root = plugin.root;
  if (!Root) throw new Error('module.js exports no `plugin` with a root page');
  createRoot(element).render(
    <Themed>
      <PluginContextProvider meta={meta}>
        <BrowserRouter>
          <Routes>
            <Route
              path={`/a/${PLUGIN_ID}/*`}
              element={
                <Root
                  meta={meta}
                  basename={`/a/${PLUGIN_ID}`}
                  query={{}}
                  path={`/a/${PLUGIN_ID}`}
                  onNavChanged={() => {}}
                />
              }
            />
          </Routes>
        </BrowserRouter>
      </PluginContextProvider>
    </Themed>,
  );
  host.phase = 'rendered';
}

main().catch((error: unknown) => {
  host.phase = 'failed';
  host.error = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
});
