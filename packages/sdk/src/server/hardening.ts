import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { HttpError } from './errors';
import type { ServerOptions } from './options';

type Settings = z.output<typeof ServerOptions>;

/**
 * Fastify's (and Node's) timeouts from the options. `requestTimeout` bounds the time to receive a whole
 * request, so a client trickling its headers or body (slowloris) is answered 408 and disconnected before
 * any handler runs. Node enforces it only while `headersTimeout` is not longer (its 60 s default would
 * silently disable a shorter request timeout), and checks every `connectionsCheckingInterval` (30 s by
 * default), so both are derived from it.
 */
export function serverTimeouts(settings: Settings) {
  const requestTimeout = settings.requestTimeoutMs;
  return {
    requestTimeout,
    connectionTimeout: settings.idleTimeoutMs,
    keepAliveTimeout: settings.keepAliveTimeoutMs,
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(requestTimeout / 4))),
    },
  };
}

/**
 * Security headers on every response, tuned for a JSON API that no browser renders: a CSP that allows
 * nothing and no framing, `nosniff`, no referrer, and helmet's other defaults.
 *
 * CORS is deliberately not enabled: no response carries `Access-Control-Allow-*`, so browsers refuse
 * cross-origin reads and preflights (an OPTIONS preflight finds no route). Grafana calls the service from
 * its server-side plugin proxy, where CORS does not apply, so no browser origin needs it, and every origin
 * granted would be one more page that could drive the API with a user's credentials.
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.register(fastifyHelmet, {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    hidePoweredBy: true,
  });
}

/**
 * API responses are per-caller and change with every run: no browser or intermediary may keep them. Set
 * on the request, so refusals and errors carry it too.
 */
export function forbidCaching(scope: FastifyInstance): void {
  scope.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });
}

/**
 * Per-identity rate limit of the routes `scope` declares after it (await it before declaring them). Its
 * check runs as a route `preParsing` hook, after the scope's authentication (`onRequest`) and before the
 * body is parsed, keyed by the identity's name: a Grafana login and a token of the same name share a
 * budget, as they are one person. Counts are kept in memory per replica.
 */
export async function installRateLimit(
  scope: FastifyInstance,
  rateLimit: Settings['rateLimit'],
): Promise<void> {
  if (rateLimit === false) return;
  await scope.register(fastifyRateLimit, {
    global: true,
    hook: 'preParsing',
    max: rateLimit.max,
    timeWindow: rateLimit.timeWindowMs,
    // Authentication ran first, so every request reaching this has an identity.
    keyGenerator: (request) => request.identity?.name ?? request.ip,
    errorResponseBuilder: (request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new HttpError(
        429,
        'RATE_LIMITED',
        `Too many requests from ${request.identity?.name ?? 'this client'}: at most ${context.max} per ${rateLimit.timeWindowMs / 1000} s. Retry in ${seconds} s (see Retry-After). Nothing was changed.`,
        { retryAfterSeconds: seconds, max: context.max },
      );
    },
  });
}
