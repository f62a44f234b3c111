export { API_PREFIX, createServer } from './app';
export { type ErrorBody, type FieldIssue, HttpError, isHttpError } from './errors';
export { hashToken, type Identity } from './identity';
export { type ServiceMetrics, type ServiceMetricsOptions, serviceMetrics } from './metrics';
export { Role, ServerOptions, TokenGrant } from './options';
