/**
 * The app's non-secret settings (`jsonData`). The service token is never here: it is saved in
 * `secureJsonData.serviceToken`, which only Grafana's proxy `routes` (see plugin.json) can read.
 */
export type RunbooksAppSettings = {
  /** Base URL of the runbook service (`runbook serve`), e.g. `http://runbooks:8080`. No default. */
  serviceUrl?: string;
};

/** Where the app's pages live in Grafana. */
export const APP_URL = '/a/aiwebtest-runbooks-app';
