/**
 * @aiwebtest/runbooks/server — the runbook service: {@link createServer} builds the HTTP API over an engine,
 * {@link serve} runs it with a worker loop and a graceful shutdown (what `runbook serve` does).
 */

export { API_PREFIX, createServer } from './app';
export { type ErrorBody, type FieldIssue, HttpError, isHttpError } from './errors';
export { hashToken, type Identity } from './identity';
export { type ServiceMetrics, type ServiceMetricsOptions, serviceMetrics } from './metrics';
export { Role, ServerOptions, TokenGrant } from './options';
export { type ServeOptions, type ServeResult, serve } from './serve';
export { readTokensFile, TokensFile, TokensFileError } from './tokens-file';
