import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { InputValidationError } from '../core/errors';
import { AccessPolicy, checkRunbookRoles } from './access';
import type { ServerContext } from './context';
import { installErrorHandling } from './errors';
import { forbidCaching, installRateLimit, installSecurityHeaders, serverTimeouts } from './hardening';
import { authenticate, requireRole, requireTokenKind, type TokenEntry } from './identity';
import { ServerOptions } from './options';
import { auditRefusals } from './refusal-audit';
import './request-context';
import { alertRoutes } from './routes/alerts';
import { auditRoutes } from './routes/audit';
import { eventRoutes } from './routes/events';
import { healthRoutes } from './routes/health';
import { incidentRoutes, pagerDutyWebhookRoutes } from './routes/incidents';
import { metricsRoutes } from './routes/metrics';
import { runbookRoutes } from './routes/runbooks';
import { runRoutes } from './routes/runs';
import { inputJsonSchema } from './views';

/** Where the API lives; its version is part of the path so that a v2 can run beside it. */
export const API_PREFIX = '/api/v1';

/**
 * Builds the runbook service's HTTP API over an engine: the catalog, runs, approvals, audit verification,
 * an OpenAPI document (`GET /api/v1/openapi.json`) and health probes. Returns the Fastify instance without
 * listening; call `listen` (and `close` on shutdown).
 *
 * Execute-mode runs are queued, not executed, by the API: run `engine.work({ signal })` in this or another
 * process sharing the store to execute them. Throws an {@link InputValidationError} on bad options.
 *
 * Callers are identified by bearer token, or as Grafana users through the Grafana app's token (identity.ts);
 * refusals are audited (refusal-audit.ts); rate limit, timeouts, security headers and the absence of CORS
 * are in hardening.ts.
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const parsed = ServerOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      'server options',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  const settings = parsed.data;
  checkRunbookRoles(settings.runbookRoles, settings.engine.runbooks());
  const tokens: TokenEntry[] = settings.tokens.map((t) => ({
    name: t.name,
    role: t.role,
    sha256: Buffer.from(t.sha256, 'hex'),
    grafana: t.grafana,
    alertmanager: t.alertmanager,
  }));

  const app = Fastify({
    logger: settings.logger as FastifyServerOptions['logger'],
    bodyLimit: settings.bodyLimit,
    ...serverTimeouts(settings),
    // Probes and load balancers get 503 while the server drains instead of a reset connection.
    return503OnClosing: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);
  app.decorateRequest('identity', null);
  installSecurityHeaders(app);

  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Runbook service',
        description:
          'Runbooks, runs, approvals and the audit log. Errors are always `{ error: { code, message, details } }`.',
        version: '1.0.0',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
        // Each runbook's input, so clients can build forms and validate before sending.
        schemas: Object.fromEntries(
          settings.engine.runbooks().map((r) => {
            const { $schema: _dialect, ...schema } = inputJsonSchema(r);
            return [`${r.id}.input`, schema];
          }),
        ),
      },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.register(async (scope) => healthRoutes(scope, settings.engine, settings.readyTimeoutMs));
  const metrics = settings.metrics;
  if (metrics !== false) app.register(async (scope) => metricsRoutes(scope, settings.engine, metrics));
  const context: ServerContext = {
    engine: settings.engine,
    access: new AccessPolicy(settings.runbookRoles),
    settings,
  };
  app.register(async (scope) => apiRoutes(scope, context, tokens), { prefix: API_PREFIX });
  // PagerDuty's webhooks carry a signature, not a bearer token: a scope of their own, outside the token hook.
  const escalator = settings.escalator;
  if (escalator?.acceptsPagerDutyWebhooks) {
    app.register(async (scope) => pagerDutyWebhookRoutes(scope, context, escalator), { prefix: API_PREFIX });
  }
  return app;
}

/**
 * Everything under /api/v1: authenticated, rate limited per identity, and each route checks its least role
 * before any work; every refusal is audited.
 */
async function apiRoutes(
  app: FastifyInstance,
  context: ServerContext,
  tokens: readonly TokenEntry[],
): Promise<void> {
  forbidCaching(app);
  auditRefusals(app, context.engine.store, context.settings.refusalAuditPerMinute);
  app.addHook('onRequest', async (request) => {
    // onRequest runs before the body is read or parsed: unauthenticated callers cost no parsing.
    const identity = authenticate(request, tokens);
    request.identity = identity;
    const route = `${request.method} ${request.routeOptions.url ?? request.url}`;
    requireTokenKind(identity, request.routeOptions.config.tokenKind ?? 'personal', route);
    const needed = request.routeOptions.config.role ?? 'viewer';
    requireRole(identity, needed, route);
  });
  // After authentication: the limit is per identity, and unauthenticated requests never count.
  await installRateLimit(app, context.settings.rateLimit);
  app.get(
    '/openapi.json',
    { config: { role: 'viewer' }, schema: { summary: 'This OpenAPI document', tags: ['meta'] } },
    async () => app.swagger(),
  );
  runbookRoutes(app, context);
  runRoutes(app, context);
  eventRoutes(app, context);
  auditRoutes(app, context);
  alertRoutes(app, context);
  if (context.settings.escalator) incidentRoutes(app, context, context.settings.escalator);
}
