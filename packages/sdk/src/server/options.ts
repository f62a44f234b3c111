import { Registry } from 'prom-client';
import { z } from 'zod';
import { Engine } from '../engine/engine';
import { AlertRouting } from './alert-routing';

/** What a caller may do: each role includes the ones before it. */
export const Role = z.enum(['viewer', 'editor', 'admin']);
/** What a caller may do: `viewer` reads and diagnoses, `editor` plans and executes, `admin` approves. */
export type Role = z.infer<typeof Role>;

/** A bearer token the service accepts. Only its SHA-256 is kept, so a leaked config leaks no token. */
export const TokenGrant = z.strictObject({
  /** Who holds the token; recorded as the actor of every run and decision made with it. */
  name: z.string().trim().min(1).max(200),
  /** SHA-256 of the token, 64 lowercase or uppercase hex digits (`printf %s "$TOKEN" | sha256sum`). */
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 of the token as 64 hex digits')
    .transform((hex) => hex.toLowerCase()),
  /** What the holder may do. */
  role: Role,
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
});
/** Options of {@link createServer}. */
export type ServerOptions = z.input<typeof ServerOptions>;
