import { AppPlugin, type AppRootProps } from '@grafana/data';
import { LoadingPlaceholder } from '@grafana/ui';
import React, { Suspense } from 'react';
import { alertInstanceLink, panelMenuLink } from './extensions/links';
import type { RunbooksAppSettings } from './settings';

export type { RunbooksAppSettings } from './settings';

// Grafana loads module.js on every page (the links below must be registered before any panel menu opens),
// so the pages and the config page are separate chunks, fetched when first shown.
const LazyApp = React.lazy(() => import('./components/App').then((m) => ({ default: m.App })));
const LazyAppConfig = React.lazy(() => import('./config/AppConfig').then((m) => ({ default: m.AppConfig })));

function App(props: AppRootProps<RunbooksAppSettings>) {
  return (
    <Suspense fallback={<LoadingPlaceholder text="Loading runbooks…" />}>
      <LazyApp {...props} />
    </Suspense>
  );
}

function AppConfig(props: React.ComponentProps<typeof LazyAppConfig>) {
  return (
    <Suspense fallback={<LoadingPlaceholder text="Loading configuration…" />}>
      <LazyAppConfig {...props} />
    </Suspense>
  );
}

export const plugin = new AppPlugin<RunbooksAppSettings>()
  .setRootPage(App)
  .addConfigPage({
    title: 'Configuration',
    icon: 'cog',
    body: AppConfig,
    id: 'configuration',
  })
  // "Runbooks…" in a panel's menu and on an alert instance: declared in plugin.json `extensions.addedLinks`.
  .addLink(panelMenuLink)
  .addLink(alertInstanceLink);
