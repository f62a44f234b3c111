import { AppPlugin } from '@grafana/data';
import { App } from './components/App';
import { AppConfig } from './config/AppConfig';
import { alertInstanceLink, panelMenuLink } from './extensions/links';
import type { RunbooksAppSettings } from './settings';

export type { RunbooksAppSettings } from './settings';

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
