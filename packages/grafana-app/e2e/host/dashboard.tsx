/**
 * The host page as a Grafana dashboard (`/d/<uid>`): what Grafana's dashboard does with the app's nested
 * panel plugin and with the app's panel-menu extension links, driven by the browser test through
 * `window.__host.dashboard`.
 *
 * - A panel: module.js of the nested plugin is imported with SystemJS from where Grafana serves it (under the
 *   app: `/public/plugins/<app>/panels/<dir>/`), its `plugin` export must be a PanelPlugin, and its component
 *   gets the props Grafana's panel renderer gives (options, time range, `replaceVariables` through the
 *   registered TemplateSrv, an event bus, …).
 * - The panel menu: each link the app added for the panel menu is configured with the panel's context (query
 *   results as data frames, targets, dashboard, time range); the ones not hidden become menu items, and a
 *   click calls the link's `onClick` with helpers whose `openModal` renders the body in Grafana's Modal.
 */
import { css } from '@emotion/css';
import {
  type AppPlugin,
  type AppPluginMeta,
  dateTime,
  EventBusSrv,
  LoadingState,
  makeTimeRange,
  PanelPlugin,
  type PanelPluginMeta,
  PluginContextProvider,
  type PluginExtensionAddedLinkConfig,
  type PluginExtensionEventHelpers,
  type PluginExtensionPanelContext,
  PluginExtensionPoints,
  PluginType,
  toDataFrame,
} from '@grafana/data';
import { setTemplateSrv } from '@grafana/runtime';
import { Menu, Modal } from '@grafana/ui';
import type * as React from 'react';
import { useEffect, useState } from 'react';
import type { Root } from 'react-dom/client';
import type { HostDashboard, PanelMenuSpec, PanelSpec } from './state.ts';
import { createTemplateSrv } from './template-srv.ts';
import { Themed } from './themed.tsx';

/** Where the nested panel lives in dist/ (and so under the app's public path). */
const PANEL_DIR = 'panels/runbook-actions';

type OpenModalOptions = Parameters<PluginExtensionEventHelpers['openModal']>[0];

/** Grafana's modals root: the one modal opened through `openModal`, wrapped as Grafana wraps it. */
let showModal: ((options: OpenModalOptions | null) => void) | undefined;

function ModalRoot({ pluginMeta }: { pluginMeta: AppPluginMeta }) {
  const [options, setOptions] = useState<OpenModalOptions | null>(null);
  useEffect(() => {
    showModal = setOptions;
    return () => {
      showModal = undefined;
    };
  }, []);
  if (!options) return null;
  const { title, body: Body, width, height } = options;
  const close = () => setOptions(null);
  return (
    // Grafana renders an extension's modal in the extension's plugin context.
    <PluginContextProvider meta={pluginMeta}>
      <Modal
        title={title}
        className={css({ width, height })}
        isOpen
        onDismiss={close}
        onClickBackdrop={close}
      >
        <Body onDismiss={close} />
      </Modal>
    </PluginContextProvider>
  );
}

function PanelFrame({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <section aria-label={`Panel ${title}`} style={{ padding: 8 }}>
      <h2 style={{ fontSize: 16, margin: '0 0 8px' }}>{title}</h2>
      {children}
    </section>
  );
}

/** The nested panel's meta, as Grafana's /api/plugins gives it (module and baseUrl under the app's path). */
async function panelMeta(appId: string): Promise<PanelPluginMeta> {
  const base = `public/plugins/${appId}/${PANEL_DIR}`;
  const json = (await (await fetch(`/${base}/plugin.json`)).json()) as PanelPluginMeta;
  return { ...json, type: PluginType.panel, module: `/${base}/module.js`, baseUrl: base } as PanelPluginMeta;
}

export function startDashboard({
  root,
  app,
  appMeta,
  pluginId,
}: {
  root: Root;
  app: AppPlugin;
  appMeta: AppPluginMeta;
  pluginId: string;
}): HostDashboard {
  const templates = createTemplateSrv();
  setTemplateSrv(templates.srv);
  let panel: Promise<{ plugin: PanelPlugin; meta: PanelPluginMeta }> | undefined;

  const loadPanel = () => {
    panel ??= (async () => {
      const meta = await panelMeta(pluginId);
      const exports = await window.System.import(meta.module);
      const plugin = exports.plugin;
      if (!(plugin instanceof PanelPlugin))
        throw new Error(`${meta.module} exports no PanelPlugin as \`plugin\``);
      plugin.meta = meta;
      return { plugin, meta };
    })();
    return panel;
  };

  const render = (content: React.ReactNode) =>
    root.render(
      <Themed>
        {content}
        <ModalRoot pluginMeta={appMeta} />
      </Themed>,
    );

  return {
    async renderPanel(spec: PanelSpec) {
      const { plugin, meta } = await loadPanel();
      const Panel = plugin.panel;
      if (!Panel) throw new Error('the panel plugin has no panel component');
      templates.set(spec.variables);
      const timeRange = makeTimeRange(dateTime(spec.timeRange.from), dateTime(spec.timeRange.to));
      const eventBus = new EventBusSrv();
      render(
        <PluginContextProvider meta={meta}>
          <PanelFrame title={spec.title}>
            <Panel
              id={spec.id}
              title={spec.title}
              options={spec.options as object}
              fieldConfig={{ defaults: {}, overrides: [] }}
              data={{ state: LoadingState.Done, series: [], timeRange }}
              timeRange={timeRange}
              timeZone="browser"
              width={800}
              height={500}
              transparent={false}
              renderCounter={0}
              // As Grafana's panel renderer does: the dashboard's TemplateSrv, with the panel's scoped variables.
              replaceVariables={(value, scopedVars, format) =>
                templates.srv.replace(value, scopedVars, format)
              }
              onOptionsChange={() => {}}
              onFieldConfigChange={() => {}}
              onChangeTimeRange={() => {}}
              eventBus={eventBus}
            />
          </PanelFrame>
        </PluginContextProvider>,
      );
    },

    async showPanelMenu(spec: PanelMenuSpec) {
      templates.set(spec.variables);
      const data = {
        state: LoadingState.Done,
        series: spec.series.map((s) => toDataFrame(s)),
        timeRange: makeTimeRange(dateTime(spec.timeRange.from), dateTime(spec.timeRange.to)),
      };
      // Grafana hands links a read-only context.
      const context = Object.freeze({
        pluginId: 'timeseries',
        id: spec.id,
        title: spec.title,
        timeRange: spec.timeRange.raw,
        timeZone: 'browser',
        dashboard: spec.dashboard,
        targets: spec.targets,
        data,
      }) as unknown as PluginExtensionPanelContext;
      const links = (app.addedLinkConfigs as PluginExtensionAddedLinkConfig[]).filter((link) =>
        ([] as string[]).concat(link.targets).includes(PluginExtensionPoints.DashboardPanelMenu),
      );
      const shown = links
        .map((link) => ({ link, overrides: link.configure ? link.configure(context) : {} }))
        .filter((entry) => entry.overrides !== undefined);
      const helpers: PluginExtensionEventHelpers = {
        context,
        extensionPointId: PluginExtensionPoints.DashboardPanelMenu,
        openModal: (options: OpenModalOptions) => showModal?.(options),
        isAppOpened: () => false,
        openAppInSideview: () => {},
        closeAppInSideview: () => {},
        openSidebar: () => {},
      } as unknown as PluginExtensionEventHelpers;
      render(
        <PanelFrame title={spec.title}>
          <Menu ariaLabel="Panel menu">
            {shown.map(({ link, overrides }) => (
              <Menu.Item
                key={link.title}
                label={overrides?.title ?? link.title}
                icon={overrides?.icon ?? link.icon}
                onClick={(event) => link.onClick?.(event, helpers)}
              />
            ))}
          </Menu>
        </PanelFrame>,
      );
      return shown.map(({ link, overrides }) => overrides?.title ?? link.title);
    },
  };
}
