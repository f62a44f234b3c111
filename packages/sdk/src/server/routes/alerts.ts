import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isIdempotencyKeyReusedError, isInputValidationError } from '../../core/errors';
import { type Json, sha256 } from '../../core/json';
import { AlertLog, type AlertOccurrence, type AlertRecord } from '../../store/alert-log';
import { type CompiledRoute, checkRoutedRunbooks, compileRouting } from '../alert-routing';
import type { ServerContext } from '../context';
import { HttpError } from '../errors';
import { requireRole } from '../identity';
import { identityOf } from '../request-context';
import { ErrorView, errorResponses } from '../views';

// Alertmanager writes RFC 3339 times with up to nanoseconds and, depending on its time zone, an offset.
const Timestamp = z.iso.datetime({ offset: true });
const AlertStatus = z.enum(['firing', 'resolved']);

/** One alert of a webhook notification. Fields Alertmanager may add later are tolerated. */
export const WebhookAlert = z.looseObject({
  status: AlertStatus,
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
  startsAt: Timestamp,
  endsAt: Timestamp,
  generatorURL: z.string(),
  fingerprint: z.string().min(1).max(200),
});

/** Alertmanager's webhook body, version "4". Fields Alertmanager may add later are tolerated. */
export const AlertmanagerWebhook = z.looseObject({
  version: z.literal('4', { message: 'must be "4" (the Alertmanager webhook version this service reads)' }),
  groupKey: z.string().min(1),
  status: AlertStatus,
  receiver: z.string(),
  externalURL: z.string().default(''),
  alerts: z.array(WebhookAlert),
});

/** What the webhook did with a notification. */
export const WebhookResult = z.object({
  received: z.number().int().describe('Alerts in the notification'),
  runs: z
    .array(
      z.object({
        fingerprint: z.string(),
        route: z.string(),
        runId: z.string(),
        created: z
          .boolean()
          .describe(
            'false when the occurrence already had its run (a redelivery, another replica, or a repeat whose input or mode changed)',
          ),
      }),
    )
    .describe('Runs of firing alerts that matched a route; queued for a worker'),
  resolved: z.number().int().describe('Resolved alerts in the notification (they start nothing)'),
  unmatched: z.number().int().describe('Firing alerts no route matched (recorded, nothing started)'),
  unroutable: z
    .array(z.object({ fingerprint: z.string(), route: z.string(), reason: z.string() }))
    .describe('Matched routes whose input could not be built from the alert (a missing label, a bad value)'),
});

const AlertView = z.object({
  groupKey: z.string(),
  fingerprint: z.string(),
  alertname: z.string().nullable(),
  status: AlertStatus,
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
  startsAt: z.iso.datetime(),
  receivedAt: z.iso.datetime(),
  resolvedAt: z.iso.datetime().nullable(),
  route: z.string().nullable(),
  runId: z.string().nullable().describe('The run the alert started: GET /runs/{runId} shows its diagnosis'),
});

const ListAlertsQuery = z.strictObject({
  status: AlertStatus.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

type Alert = z.infer<typeof WebhookAlert>;
type Notification = z.infer<typeof AlertmanagerWebhook>;
/** A matched route's outcome for one alert, decided before anything is written. */
type Target = { route: CompiledRoute; key: string; input: Json } | { route: CompiledRoute; reason: string };

const alertView = (a: AlertRecord): z.infer<typeof AlertView> => ({
  groupKey: a.groupKey,
  fingerprint: a.fingerprint,
  alertname: a.alertname,
  status: a.status,
  labels: a.labels,
  annotations: a.annotations,
  startsAt: a.startsAt.toISOString(),
  receivedAt: a.receivedAt.toISOString(),
  resolvedAt: a.resolvedAt ? a.resolvedAt.toISOString() : null,
  route: a.route,
  runId: a.runId,
});

/**
 * `POST /alerts/alertmanager` (Alertmanager's webhook) and `GET /alerts`. A firing alert that matches a route
 * queues a run whose context carries the alert; the run's steps are the alert's diagnosis, and the alert's
 * record points at the run. Throws an InputValidationError when a route names a runbook the engine lacks.
 *
 * The webhook takes only Alertmanager's token (`tokenKind: 'alertmanager'`, checked by the authentication
 * hook), and that token's role must allow every run the notification would start: checked for the whole
 * notification before anything is written, so a refusal (403) leaves no trace.
 *
 * An occurrence (group key, fingerprint, startsAt) has one run per route, found again by its idempotency
 * key. A repeat notification whose rendered input or mode differs from the first one (the service config
 * changed while the alert fires, or an input templated from an annotation that changes every time, such as
 * one holding `$value`) keeps the first run (`created: false`): the engine's IdempotencyKeyReusedError
 * names that run, and answering 409 instead would lose every other alert of the notification, since
 * Alertmanager never retries a 4xx.
 *
 * Each alert is processed on its own: a store or engine failure on one alert is logged and the next alert
 * is still processed; then, if any alert failed, the answer is 503 `ALERTS_INCOMPLETE` naming them.
 * Validation problems are never failures: they are decided per alert before anything is written and
 * answered 200 (`unroutable`). The answer is 5xx, not 200 with the failures listed, because Alertmanager
 * retries only a 5xx (or no answer) and its retry is the only way the failed alerts get another chance;
 * the retry resends the whole notification, which is safe because every write is deduplicated per
 * occurrence: the runs by their idempotency keys, the records by their primary key, and audit entries are
 * written only by the call that created the run or inserted the record. Processing the other alerts
 * before answering means the retry finds them done instead of depending on it. One gap remains: an
 * `alert.routed` entry whose own write failed right after its run was created is not written by the retry
 * (the run is no longer new); the run's `run.created` entry, written with the run, still names the alert.
 *
 * A firing alert whose occurrence is already recorded as resolved is a late redelivery (Alertmanager
 * retried a firing notification after the resolution arrived): it starts nothing, changes nothing and
 * writes no audit entry. It counts in `received` only: it is in none of `runs`, `resolved`, `unmatched` or
 * `unroutable`. The check reads the record before starting the run, so a resolution arriving at the same
 * instant as a late firing one may still let that one queue its run.
 */
export function alertRoutes(app: FastifyInstance, { engine, access, settings }: ServerContext): void {
  checkRoutedRunbooks(
    settings.alerts,
    engine.runbooks().map((r) => r.id),
  );
  const routes = compileRouting(settings.alerts);
  const log = new AlertLog(engine.store.driver);
  const api = app.withTypeProvider<ZodTypeProvider>();

  /** The routes an alert matches, in order: the first, and more only while they say `continue`. */
  const matching = (alert: Alert): CompiledRoute[] => {
    const found: CompiledRoute[] = [];
    for (const route of routes) {
      if (!route.matches(alert)) continue;
      found.push(route);
      if (!route.continue) break;
    }
    return found;
  };

  /** Each matched route's input, validated, or why it cannot be built; nothing is written. */
  const targets = (alert: Alert, occurrenceKey: string): Target[] =>
    matching(alert).map((route, i) => {
      const rendered = route.render(alert);
      if ('reason' in rendered) return { route, reason: rendered.reason };
      try {
        engine.validateInput(route.runbook, rendered.input);
      } catch (e) {
        if (!isInputValidationError(e)) throw e;
        const issues = e.issues.map((x) => `input.${x.path}: ${x.message}`).join('; ');
        return { route, reason: `the input built from the alert is invalid: ${issues}` };
      }
      // The engine refuses one key for two runbooks, so routes reached through `continue` get their own.
      return {
        route,
        input: rendered.input,
        key: i === 0 ? occurrenceKey : `${occurrenceKey}:${route.name}`,
      };
    });

  api.post(
    '/alerts/alertmanager',
    {
      config: { role: 'viewer', tokenKind: 'alertmanager' },
      // Its own limit: a whole alert group comes in one notification, and Alertmanager never retries a 413.
      bodyLimit: settings.alertBodyLimit,
      schema: {
        summary: "Alertmanager's webhook (version 4): firing alerts that match a route queue runs",
        description:
          'Point an Alertmanager webhook receiver here with `send_resolved: true` and an Alertmanager token ' +
          '(`"alertmanager": true`; the webhook takes no other token, and that token is valid nowhere else). ' +
          'Redeliveries start nothing new, nor do repeats whose input or mode changed (the first run is kept), ' +
          'nor a late firing notification of an alert occurrence already resolved (it counts in `received` only). ' +
          "The token's role must allow every run the notification would start (ask counts as execute), else 403 and nothing is recorded. " +
          'If the store or engine fails on some alerts, the others are still processed and the answer is 503 ' +
          '`ALERTS_INCOMPLETE`, so that Alertmanager retries the notification; the retry is deduplicated.',
        tags: ['alerts'],
        body: AlertmanagerWebhook,
        response: {
          200: WebhookResult,
          ...errorResponses,
          503: ErrorView.describe(
            'ALERTS_INCOMPLETE: the store or engine failed on the alerts in `details.failed`; the others were processed. Alertmanager retries; the retry is deduplicated.',
          ),
        },
      },
    },
    async (request) => {
      const identity = identityOf(request);
      const body: Notification = request.body;
      const actor = identity.name;
      const occurrence = (alert: Alert): AlertOccurrence => ({
        groupKey: body.groupKey,
        fingerprint: alert.fingerprint,
        startsAt: new Date(alert.startsAt),
        labels: alert.labels,
        annotations: alert.annotations,
      });

      // Decide everything first: a refused role must leave no trace, not half a batch.
      const firing = body.alerts
        .filter((alert) => alert.status === 'firing')
        .map((alert) => {
          const startsAt = new Date(alert.startsAt).toISOString();
          const key = `alert:${sha256(`${body.groupKey}\n${alert.fingerprint}\n${startsAt}`)}`;
          return { alert, targets: targets(alert, key) };
        });
      for (const { alert, targets: list } of firing) {
        for (const t of list) {
          if (!('input' in t)) continue;
          const what = `Route ${t.route.name} (alert ${alert.fingerprint}) starting ${t.route.runbook} in ${t.route.approval === 'always' ? 'ask' : t.route.mode} mode`;
          requireRole(identity, access.roleFor(t.route.runbook, t.route.mode), what);
        }
      }

      const now = new Date();
      const result: z.infer<typeof WebhookResult> = {
        received: body.alerts.length,
        runs: [],
        resolved: 0,
        unmatched: 0,
        unroutable: [],
      };
      const audit = (kind: string, alert: Alert, data: Record<string, Json>, runId?: string) =>
        engine.store.appendAudit({
          ts: new Date().toISOString(),
          actor,
          kind,
          ...(runId ? { runId } : {}),
          data: {
            groupKey: body.groupKey,
            fingerprint: alert.fingerprint,
            alertname: alert.labels.alertname ?? null,
            startsAt: new Date(alert.startsAt).toISOString(),
            ...data,
          },
        });

      /** The run of `t` for this occurrence: queued now, or the one its idempotency key already names. */
      const startRun = async (t: Extract<Target, { input: Json }>, context: Json) => {
        try {
          // Queued, never executed here: the webhook answers at once and Alertmanager does not time out.
          // The idempotency key makes a redelivery, or the same alert at another replica, find the first run.
          return await engine.submit(t.route.runbook, t.input, {
            mode: t.route.mode,
            actor,
            context,
            idempotencyKey: t.key,
            ...(t.route.approval ? { approval: t.route.approval } : {}),
          });
        } catch (e) {
          if (!isIdempotencyKeyReusedError(e)) throw e;
          // A repeat whose input or mode changed (a config rollout, an input templated from an annotation
          // such as $value): the occurrence was already started, and keeps its first run.
          request.log.info(
            { route: t.route.name, runId: e.runId },
            'repeat notification with another input or mode: the alert keeps its first run',
          );
          return { runId: e.runId, created: false };
        }
      };

      const resolvedAlert = async (alert: Alert) => {
        result.resolved++;
        const changed = await log.recordResolved(occurrence(alert), new Date(alert.endsAt), now);
        if (changed)
          await audit('alert.resolved', alert, { route: changed.route }, changed.runId ?? undefined);
      };

      const firingAlert = async (alert: Alert, list: Target[]) => {
        const recorded = await log.get(occurrence(alert));
        if (recorded?.status === 'resolved') {
          request.log.info(
            { fingerprint: alert.fingerprint, route: recorded.route, runId: recorded.runId },
            'late firing notification of an alert already resolved: nothing started',
          );
          return;
        }
        if (list.length === 0) {
          result.unmatched++;
          if (await log.recordFiring(occurrence(alert), null, null, now)) {
            await audit('alert.unmatched', alert, {});
          }
          return;
        }
        const context: Json = {
          source: 'alertmanager',
          receiver: body.receiver,
          externalURL: body.externalURL,
          groupKey: body.groupKey,
          alert: {
            fingerprint: alert.fingerprint,
            status: alert.status,
            labels: alert.labels,
            annotations: alert.annotations,
            startsAt: new Date(alert.startsAt).toISOString(),
            endsAt: new Date(alert.endsAt).toISOString(),
            generatorURL: alert.generatorURL,
          },
        };
        let firstRun: { route: string; runId: string } | undefined;
        const reasons: string[] = [];
        for (const t of list) {
          if (!('input' in t)) {
            result.unroutable.push({ fingerprint: alert.fingerprint, route: t.route.name, reason: t.reason });
            reasons.push(`${t.route.name}: ${t.reason}`);
            continue;
          }
          const { runId, created } = await startRun(t, context);
          result.runs.push({ fingerprint: alert.fingerprint, route: t.route.name, runId, created });
          firstRun ??= { route: t.route.name, runId };
          if (created) await audit('alert.routed', alert, { route: t.route.name }, runId);
        }
        const route = firstRun?.route ?? list[0]?.route.name ?? null;
        const inserted = await log.recordFiring(occurrence(alert), route, firstRun?.runId ?? null, now);
        if (inserted && !firstRun) await audit('alert.unroutable', alert, { route, reasons });
      };

      // One alert's failure never stops the others; see the TSDoc of alertRoutes for why the answer is 503.
      const failed: { fingerprint: string; status: Alert['status'] }[] = [];
      const each = async (alert: Alert, work: () => Promise<void>) => {
        try {
          await work();
        } catch (e) {
          request.log.error(
            { err: e, groupKey: body.groupKey, fingerprint: alert.fingerprint },
            'could not process an alert of the notification; the others are processed, Alertmanager retries',
          );
          failed.push({ fingerprint: alert.fingerprint, status: alert.status });
        }
      };
      for (const alert of body.alerts.filter((a) => a.status === 'resolved')) {
        await each(alert, () => resolvedAlert(alert));
      }
      for (const { alert, targets: list } of firing) {
        await each(alert, () => firingAlert(alert, list));
      }
      if (failed.length > 0) {
        throw new HttpError(
          503,
          'ALERTS_INCOMPLETE',
          `${failed.length} of ${body.alerts.length} alerts of the notification could not be processed (a store or engine failure, logged): ${failed.map((f) => f.fingerprint).join(', ')}. The others were processed. Alertmanager retries on 503; resending the whole notification is safe, since alerts already processed start and audit nothing new.`,
          { failed, processed: result },
        );
      }
      return result;
    },
  );

  api.get(
    '/alerts',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Alerts received from Alertmanager, newest first, with the run each started',
        tags: ['alerts'],
        querystring: ListAlertsQuery,
        response: { 200: z.object({ alerts: z.array(AlertView) }), ...errorResponses },
      },
    },
    async (request) => {
      const { status, limit } = request.query;
      const alerts = await log.list({ limit, ...(status ? { status } : {}) });
      return { alerts: alerts.map(alertView) };
    },
  );
}
