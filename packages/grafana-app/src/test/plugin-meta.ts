import { type AppPluginMeta, PluginType } from '@grafana/data';
import type { RunbooksAppSettings } from '../settings';

/**
 * The app's plugin meta as Grafana hands it to the app, for tests that render the app's pages themselves;
 * `fields` replace or add top-level fields (settings, enabled, module path).
 */
export function appPluginMeta(
  fields: Partial<AppPluginMeta<RunbooksAppSettings>> = {},
): AppPluginMeta<RunbooksAppSettings> {
  return {
    id: 'aiwebtest-runbooks-app',
    name: 'AI-Web-Test Runbooks',
    type: PluginType.app,
    module: '',
    baseUrl: '',
    info: {
      author: { name: 'AI-Web-Test' },
      description: '',
      links: [],
      logos: { small: '', large: '' },
      screenshots: [],
      updated: '',
      version: '0.1.0',
    },
    ...fields,
  };
}
