import { Registry } from 'prom-client';
import { z } from 'zod';
import { Engine } from '../engine/engine';
import type { Escalator } from '../notify/escalator';
import { AlertRouting } from './alert-routing';

/** What a caller may do: each role includes the ones before it. */
export const Role = z.enum(['viewer', 'editor', 'admin']);
/** What a caller may do: `viewer` reads and diagnoses, `editor` plans and executes, `admin` approves. */
export type Role = z.infer<typeof Role>;

/** A bearer token the service accepts. Only its SHA-256 is kept, so a leaked config leaks no token. */
export const TokenGrant = z
  .strictObject({
    /** Who holds the token; recorded as the actor of every run and decision made with it. */
    name: z.string().trim().min(1).max(200),
    /** SHA-256 of the token, 64 lowercase or uppercase hex digits (`printf %s "$TOKEN" | sha256sum`). */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 of the token as 64 hex digits')
      .transform((hex) => hex.toLowerCase()),
    /** What the holder may do; for a Grafana token, the most any Grafana user may do through it. */
    role: Role,
    /**
     * The Grafana app's shared token: valid only together with the `X-Grafana-Context` header Grafana's
     * plugin proxy adds, and the identity is then the Grafana user (its `Login`), with the lower of its
     * org role and `role`. Token names and Grafana logins are one namespace of people.
     * @default false
     */
    grafana: z.boolean().default(false),
    /**
     * Alertmanager's webhook token: valid only on `POST /api/v1/alerts/alertmanager`, which takes no other
     * token (neither personal nor Grafana). `role` must still allow every run a notification starts
     * (`editor` for `ask` and `execute` routes by default). Cannot be combined with `grafana`.
     * @default false
     */
    alertmanager: z.boolean().default(false),
  })
  .superRefine((grant, ctx) => {
    if (grant.grafana && grant.alertmanager) {
      ctx.addIssue({
        code: 'custom',
        path: ['alertmanager'],
        message:
          'cannot be true together with "grafana": true: the Grafana app\'s token and Alertmanager\'s webhook token are two tokens, each valid only its own way',
      });
    }
  });
/** A bearer token the service accepts. */
export type TokenGrant = z.input<typeof TokenGrant>;

/** Options of {@link createServer}; validated with zod, defaults documented per field. */
export const ServerOptions = z.object({
  /** The engine whose runbooks and runs the service exposes; its store answers `/readyz`. */
  engine: z.instanceof(Engine, { message: 'must be an Engine' }),
  /** The accepted bearer tokens. @default [] (every /api/v1 request is refused) */
  tokens: z.array(TokenGrant).default([]),
  /** Largest request body in bytes; larger ones get 413 `BODY_TOO_LARGE`. @default 262144 (256 KiB) */
  bodyLimit: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(256 * 1024),
  /**
   * Largest body of Alertmanager's webhook (`POST /api/v1/alerts/alertmanager`) in bytes; the rest of the
   * API keeps `bodyLimit`. Larger because Alertmanager sends a whole alert group in one notification and
   * never retries a 413, so a group over the limit would be lost. Only an Alertmanager token gets as far
   * as sending the body. @default 4194304 (4 MiB)
   */
  alertBodyLimit: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  /**
   * Fastify's (pino) logger: `false`, `true`, or pino options such as `{ level: 'info' }`.
   * @default false
   */
  logger: z.union([z.boolean(), z.looseObject({})]).default(false),
  /** How long `/readyz` waits for the store before answering 503. @default 2000 */
  readyTimeoutMs: z.number().int().min(10).max(60_000).default(2_000),
  /**
   * `GET /metrics` (Prometheus text format, unauthenticated like `/healthz`), or `false` for none.
   * `registry`: where the metrics are registered and read from (@default a new one per server);
   * `processMetrics`: also prom-client's default process metrics (@default true).
   * @default {}
   */
  metrics: z
    .union([
      z.literal(false),
      z.strictObject({
        registry: z.instanceof(Registry, { message: 'must be a prom-client Registry' }).optional(),
        processMetrics: z.boolean().optional(),
      }),
    ])
    .default({}),
  /**
   * Per-runbook roles for starting runs, e.g. `{ "clear-cache": { execute: "admin" } }`.
   * @default {} (diagnose: viewer; plan and execute: editor)
   */
  runbookRoles: z
    .record(
      z.string().min(1).max(200),
      z.strictObject({ diagnose: Role.optional(), plan: Role.optional(), execute: Role.optional() }),
    )
    .default({}),
  /** How alerts posted to `/api/v1/alerts/alertmanager` become runs. @default no routes */
  alerts: AlertRouting.optional(),
  /**
   * Per-identity rate limit of /api/v1 (probes and `/metrics` are not limited), or `false` for none: at most
   * `max` requests per `timeWindowMs` per identity name; further ones get 429 `RATE_LIMITED` with
   * `Retry-After`. Counted in memory per replica, so N replicas allow up to N × `max`.
   * @default { max: 300, timeWindowMs: 60000 }
   */
  rateLimit: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Requests per window and identity. @default 300 */
        max: z.number().int().min(1).max(1_000_000).default(300),
        /** The window in milliseconds. @default 60000 */
        timeWindowMs: z.number().int().min(100).max(86_400_000).default(60_000),
      }),
    ])
    .default({ max: 300, timeWindowMs: 60_000 }),
  /**
   * Time to receive a whole request, headers and body; a client still sending after it gets 408 and its
   * connection is closed (a slowloris defence). @default 30000
   */
  requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  /**
   * A connection with no traffic either way for this long is closed (a client that stops reading).
   * Long-lived responses must send something more often. @default 120000
   */
  idleTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(120_000),
  /**
   * How long an idle keep-alive connection stays open between requests; longer than the usual 60 s idle
   * timeout of load balancers, so that they, not the service, close idle connections. @default 72000
   */
  keepAliveTimeoutMs: z.number().int().min(1_000).max(600_000).default(72_000),
  /**
   * At most this many `access.refused` audit entries per client address and actor per minute; further
   * refusals are counted and reported as `suppressed` in the next entry written for them, so a flood of
   * bad requests cannot flood the audit log. @default 20
   */
  refusalAuditPerMinute: z.number().int().min(1).max(10_000).default(20),
  /**
   * The on-call escalator of the notifier (`notify.escalation`): when given, `/incidents` lists its incidents and
   * takes acknowledgements and resolutions. @default none (no `/incidents` routes)
   */
  escalator: z
    // By shape, not instanceof: a runbook pack may bring its own copy of the SDK.
    .custom<Escalator>(
      (v) =>
        typeof (v as Escalator)?.acknowledge === 'function' && typeof (v as Escalator)?.state === 'function',
      'must be an Escalator (@aiwebtest/runbooks/notify)',
    )
    .optional(),
  /**
   * Run event streams (`GET /api/v1/runs/:id/events`). Each open stream polls the store, so their number is
   * bounded per identity and per replica; a stream beyond either gets 429 `TOO_MANY_STREAMS`.
   * `pollIntervalMs` (@default 500), `heartbeatMs` (@default 15000, keep it under `idleTimeoutMs`),
   * `maxPerIdentity` (@default 5), `maxOpen` (@default 200).
   * @default {}
   */
  eventStreams: z
    .strictObject({
      pollIntervalMs: z.number().int().min(10).max(60_000).default(500),
      heartbeatMs: z.number().int().min(100).max(300_000).default(15_000),
      maxPerIdentity: z.number().int().min(1).max(1_000).default(5),
      maxOpen: z.number().int().min(1).max(100_000).default(200),
    })
    .default({ pollIntervalMs: 500, heartbeatMs: 15_000, maxPerIdentity: 5, maxOpen: 200 }),
});
/** Options of {@link createServer}. */
export type ServerOptions = z.input<typeof ServerOptions>;
