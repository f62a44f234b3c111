import { z } from 'zod';
import { InputValidationError, isIdempotencyKeyReusedError, isInputValidationError } from '../../core/errors';
import type { Json } from '../../core/json';
import type { RunMode } from '../../core/step';
import type { Engine } from '../../engine/engine';
import { HttpError } from '../errors';

/**
 * Validates a runbook's input before a run is created, so that a bad field is reported by its path in the
 * request body (`input.namespace`), as the request's own validation errors are.
 */
export function checkRunInput(engine: Engine, runbookId: string, input: unknown): void {
  try {
    engine.validateInput(runbookId, input);
  } catch (e) {
    if (!isInputValidationError(e)) throw e;
    throw new InputValidationError(
      `input for runbook "${runbookId}"`,
      e.issues.map((i) => ({
        path: i.path ? (i.path.startsWith('[') ? `input${i.path}` : `input.${i.path}`) : 'input',
        message: i.message,
      })),
    );
  }
}

// Bounds keep a context a few KiB: it is stored with the run, shown with it and copied into the audit log.
const MAX_ENTRIES = 64;
const name = z.string().min(1).max(200);
const text = (max: number) => z.string().max(max);
const url = z.string().max(2000);
const bounded = <T extends z.ZodType>(record: T, what: string) =>
  record.refine((r) => Object.keys(r as object).length <= MAX_ENTRIES, {
    message: `at most ${MAX_ENTRIES} ${what}`,
  });
const labels = bounded(z.record(name, text(1000)), 'labels');

/** Said of what only the Alertmanager webhook may set, so that alert provenance cannot be forged. */
const WEBHOOK_ONLY = 'set only by the Alertmanager webhook (POST /api/v1/alerts/alertmanager)';

/**
 * An idempotency key: 1–200 visible ASCII characters (no spaces), the same for retries of one request. Keys
 * starting with `alert:` are the webhook's, and refused: a caller could otherwise take an alert's key first
 * and so keep the alert from starting its run.
 */
export const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]*$/, 'must be visible ASCII characters (no spaces or control characters)')
  .refine((key) => !/^alert:/i.test(key), {
    message: `must not start with "alert:": such keys are ${WEBHOOK_ONLY}; choose another key`,
  })
  .describe(
    'Retrying with the same key answers with the first run instead of starting another; reusing it with another runbook, mode or input is a 409. Keys starting with `alert:` are reserved for the Alertmanager webhook',
  );

/** A field only the webhook sets: absent, or refused with a message saying so. */
const webhookOnly = (what: string) =>
  z
    .never({ error: `${WEBHOOK_ONLY}; leave it out` })
    .optional()
    .describe(`${what}: set only by the Alertmanager webhook; refused here`);

/**
 * Where a run came from, as an API caller may say: the Grafana dashboard, panel, time range and variables it
 * was started from, or the alert instance it was started for (Grafana's alert-instance action passes its
 * labels, fingerprint and `startsAt`). Stored (redacted) with the run and shown with it. Unknown keys are
 * refused so that a misspelt field is not silently lost.
 *
 * What only the Alertmanager webhook sets is refused: `source: "alertmanager"` (the alert latency metrics
 * trust exactly that, so a caller must not be able to claim it), and `receiver`, `groupKey`, `externalURL`.
 */
export const RunContext = z
  .strictObject({
    source: text(100)
      .refine((source) => source.trim().toLowerCase() !== 'alertmanager', {
        message: `"alertmanager" is ${WEBHOOK_ONLY}; name where this run came from, e.g. grafana or cli`,
      })
      .optional()
      .describe('What started the run, e.g. grafana, cli ("alertmanager" is set only by the webhook)'),
    dashboard: z.strictObject({ uid: name, title: text(500).optional(), url: url.optional() }).optional(),
    panel: z.strictObject({ id: z.union([z.number().int(), name]), title: text(500).optional() }).optional(),
    alert: z
      // Allowed for Grafana's alert-instance action; without source "alertmanager" no metric reads it.
      .strictObject({
        fingerprint: text(200).optional(),
        status: text(50).optional(),
        labels: labels.optional(),
        annotations: bounded(z.record(name, text(4000)), 'annotations').optional(),
        startsAt: text(100).optional(),
        endsAt: text(100).optional(),
        generatorURL: url.optional(),
      })
      .optional(),
    timeRange: z
      .strictObject({
        from: text(100).describe('e.g. now-1h, or an ISO time'),
        to: text(100).describe('e.g. now, or an ISO time'),
      })
      .optional(),
    labels: labels.optional(),
    variables: bounded(z.record(name, z.union([text(1000), z.array(text(1000)).max(100)])), 'variables')
      .optional()
      .describe('Dashboard template variables'),
    receiver: webhookOnly('Alertmanager receiver'),
    externalURL: webhookOnly('Alertmanager URL'),
    groupKey: webhookOnly('Alertmanager group key'),
  })
  .describe('Where the run came from: dashboard, panel, alert instance, time range');
/** Where a run came from. */
export type RunContext = z.infer<typeof RunContext>;

/** Header set on an answer that repeats the run first started with the same idempotency key. */
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/** What starting a run through the API answers with. */
export interface StartedRun {
  runId: string;
  /** True for execute mode: the run waits for a worker. */
  queued: boolean;
  /** True when the run was found by its idempotency key instead of started. */
  replayed: boolean;
}

/**
 * Starts a run for an API request: diagnose and plan execute here, execute is queued for a worker. With an
 * idempotency key the requester already used, nothing starts and the first run is answered
 * (`replayed: true`); the key used for another runbook, mode or input is a 409 `IDEMPOTENCY_KEY_REUSED`
 * with details `{ path: 'idempotencyKey', runId }` (the run first started with the key).
 */
export async function startRun(
  engine: Engine,
  request: {
    runbookId: string;
    input: unknown;
    mode: RunMode;
    actor: string;
    idempotencyKey?: string | undefined;
    context?: RunContext | undefined;
  },
): Promise<StartedRun> {
  const { runbookId, input, mode, actor, idempotencyKey, context } = request;
  const options = {
    mode,
    actor,
    ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    ...(context !== undefined ? { context: context as Json } : {}),
  };
  try {
    if (mode === 'execute') {
      const submitted = await engine.submit(runbookId, input, options);
      return { queued: true, runId: submitted.runId, replayed: !submitted.created };
    }
    const result = await engine.start(runbookId, input, options);
    return { queued: false, runId: result.runId, replayed: result.replayed === true };
  } catch (e) {
    if (isIdempotencyKeyReusedError(e)) {
      throw new HttpError(409, 'IDEMPOTENCY_KEY_REUSED', `idempotencyKey: ${e.message}`, {
        path: 'idempotencyKey',
        runId: e.runId,
      });
    }
    throw e;
  }
}
