import type { AppPluginMeta, PluginConfigPageProps } from '@grafana/data';
import React from 'react';
import type { RunbooksAppSettings } from '../settings';

/** To be built: service URL (jsonData), token (secureJsonData), connection test. */
export function AppConfig(_props: PluginConfigPageProps<AppPluginMeta<RunbooksAppSettings>>) {
  return <div>Configuration</div>;
}
