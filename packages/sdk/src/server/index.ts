/**
 * `@aiwebtest/runbooks/server` — the runbook service: {@link createServer} builds the HTTP API over an
 * engine, {@link serve} runs it with a worker loop and a graceful shutdown (what `runbook serve` does).
 *
 * @module \@aiwebtest/runbooks/server
 */

export type { AlertOccurrence, AlertRecord } from '../store/alert-log';
export {
  AlertRoute,
  AlertRouting,
  checkRoutedRunbooks,
} from './alert-routing';
export { API_PREFIX, createServer } from './app';
export { AuthenticationError, type ErrorBody, type FieldIssue, HttpError, isHttpError } from './errors';
export { GRAFANA_CONTEXT_HEADER, GrafanaContext } from './grafana-identity';
export { hashToken, type Identity } from './identity';
export { type ServiceMetrics, type ServiceMetricsOptions, serviceMetrics } from './metrics';
export { Role, ServerOptions, TokenGrant } from './options';
export { AlertmanagerWebhook, WebhookResult } from './routes/alerts';
export { RunEventsPage } from './routes/events';
export { IdempotencyKey, REPLAYED_HEADER, RunContext } from './routes/run-input';
export { decodeRunCursor, encodeRunCursor } from './run-cursor';
export {
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  type ServeOptions,
  type ServeResult,
  serve,
} from './serve';
export { readServiceConfig, ServiceConfig, ServiceConfigError } from './service-config';
export { readTokensFile, TokensFile, TokensFileError } from './tokens-file';
export {
  ApprovalView,
  AuditEntryView,
  AuditRowView,
  ErrorView,
  FindingView,
  PlanView,
  RunbookView,
  RunDetailView,
  RunEventView,
  RunView,
  StepView,
} from './views';
