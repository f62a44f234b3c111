import { AppPlugin, type AppRootProps } from '@grafana/data';
// Grafana's stock build compiles JSX with the classic runtime, so React must be in scope.
import React from 'react';

/**
 * The app's non-secret settings (`jsonData`). The service token is never here: it is saved in
 * `secureJsonData.serviceToken`, which only Grafana's proxy `routes` (see plugin.json) can read.
 */
export type RunbooksAppSettings = {
  /** Base URL of the runbook service (`runbook serve`), e.g. `http://runbooks:8080`. No default. */
  serviceUrl?: string;
};

/** Placeholder root page until the catalog, runs and audit pages land. */
export function RunbooksRootPage({ meta }: AppRootProps<RunbooksAppSettings>) {
  const serviceUrl = meta.jsonData?.serviceUrl;
  return (
    <div>
      <h2>AI-Web-Test Runbooks</h2>
      <p>
        {serviceUrl
          ? `Runbook service: ${serviceUrl}`
          : 'No runbook service configured yet: set its URL and token on the Configuration page.'}
      </p>
    </div>
  );
}

export const plugin = new AppPlugin<RunbooksAppSettings>().setRootPage(RunbooksRootPage);
