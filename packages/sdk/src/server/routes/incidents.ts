import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Json } from '../../core/json';
import type { EscalatedIncident, Escalator } from '../../notify/escalator';
import { PagerDutyWebhookEvent, webhookDecision } from '../../notify/pagerduty-webhook';
import type { ServerContext } from '../context';
import { HttpError } from '../errors';
import { identityOf } from '../request-context';
import { errorResponses } from '../views';

const IncidentParams = z.object({
  key: z.string().min(1).max(200).describe('The incident key: the escalated run id'),
});

const IncidentView = z.object({
  key: z.string(),
  severity: z.enum(['P0', 'P1', 'P2', 'P3']),
  summary: z.string(),
  runbookId: z.string().optional(),
  openedAt: z.string(),
  acknowledgedAt: z.string().optional(),
  acknowledgedBy: z.string().optional(),
  resolvedAt: z.string().optional(),
  resolvedBy: z.string().optional(),
  overdueAt: z.string().optional(),
  paged: z.record(z.string(), z.string()).describe('Escalation level → when it was paged'),
  statusUpdates: z.number().int(),
});

/**
 * The on-call incidents of the escalator (`notify.escalation` in the service config): list them, acknowledge one
 * (pending levels that stop on acknowledgement are not paged; PagerDuty is told) and resolve one. Each decision is
 * written to the audit log under the run, so the run's timeline and incident report show it.
 */
export function incidentRoutes(app: FastifyInstance, { engine }: ServerContext, escalator: Escalator): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const known = (key: string) => {
    if (!escalator.incident(key)) {
      throw new HttpError(
        404,
        'NOT_FOUND',
        `No on-call incident ${key}: list them with GET /api/v1/incidents.`,
      );
    }
  };
  const view = (i: EscalatedIncident) => IncidentView.parse(i);

  api.get(
    '/incidents',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'The on-call incidents of escalated runs: who was paged when, acknowledgement, resolution',
        tags: ['incidents'],
        response: { 200: z.object({ incidents: z.array(IncidentView) }), ...errorResponses },
      },
    },
    async () => ({ incidents: escalator.state().incidents.map(view) }),
  );

  for (const decision of ['acknowledge', 'resolve'] as const) {
    api.post(
      `/incidents/:key/${decision}`,
      {
        config: { role: 'editor' },
        schema: {
          summary:
            decision === 'acknowledge'
              ? 'Acknowledge an on-call incident: the escalation stops paging further levels'
              : 'Resolve an on-call incident: nothing more is paged or posted; PagerDuty incidents are resolved',
          tags: ['incidents'],
          params: IncidentParams,
          response: { 200: IncidentView, ...errorResponses },
        },
      },
      async (request) => {
        const { key } = request.params;
        known(key);
        const actor = identityOf(request).name;
        const incident = await escalator[decision](key, actor);
        await engine.store.appendAudit({
          ts: new Date().toISOString(),
          actor,
          kind: `escalation.${decision === 'acknowledge' ? 'acknowledged' : 'resolved'}`,
          runId: key,
          data: { summary: incident.summary, paged: incident.paged } as unknown as Json,
        });
        return view(incident);
      },
    );
  }
}

const WebhookAnswer = z.object({
  status: z.enum(['acknowledged', 'resolved', 'ignored']),
  incident: z.string().optional().describe('The escalator incident it applied to'),
  level: z.string().optional().describe('The escalation level whose page PagerDuty reported on'),
  reason: z.string().optional().describe('Why an event was ignored'),
});

/**
 * `POST /api/v1/incidents/pagerduty`: PagerDuty v3 webhooks (a webhook subscription with `incident.acknowledged`
 * and `incident.resolved`), so that an acknowledgement made in PagerDuty stops the escalation like one made here.
 * Authenticated by the `X-PagerDuty-Signature` HMAC of the raw body (no bearer token: PagerDuty has none to
 * send), so it lives in its own scope, outside the token hook; an unsigned or wrongly signed delivery gets 401.
 * Events of other types, or about incidents the escalator does not know, are answered 202 and ignored. The page
 * is found by the incident's `incident_key` (the dedup key `<incident>:<level>`), else by its title.
 */
export function pagerDutyWebhookRoutes(
  app: FastifyInstance,
  { engine }: ServerContext,
  escalator: Escalator,
): void {
  // The signature covers the exact bytes sent: the body is kept raw and parsed only once it is verified.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/incidents/pagerduty',
    {
      schema: {
        summary:
          'PagerDuty v3 webhook: incident.acknowledged / incident.resolved acknowledge or resolve the escalation',
        tags: ['incidents'],
        security: [],
        response: { 200: WebhookAnswer, 202: WebhookAnswer, ...errorResponses },
      },
    },
    async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const signature = request.headers['x-pagerduty-signature'];
      if (!escalator.verifyPagerDutySignature(raw, typeof signature === 'string' ? signature : undefined)) {
        throw new HttpError(
          401,
          'UNAUTHENTICATED',
          signature
            ? "The X-PagerDuty-Signature does not match the body: check notify.pagerduty.webhookSecret against the webhook subscription's secret. Nothing was changed."
            : 'PagerDuty webhooks must be signed (X-PagerDuty-Signature: v1=<HMAC-SHA256>). Nothing was changed.',
        );
      }
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpError(400, 'INVALID_INPUT', 'The webhook body is not JSON.');
      }
      const parsed = PagerDutyWebhookEvent.safeParse(json);
      if (!parsed.success) {
        throw new HttpError(
          400,
          'INVALID_INPUT',
          `Not a PagerDuty v3 webhook: ${parsed.error.issues
            .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
            .join('; ')}.`,
        );
      }
      const { event } = parsed.data;
      const ignored = (reason: string) => reply.code(202).send({ status: 'ignored' as const, reason });
      const decision = webhookDecision(event.event_type);
      if (!decision) return ignored(`event type ${event.event_type} does not change an escalation`);
      const page = escalator.pageOf({ incidentKey: event.data.incident_key, title: event.data.title });
      if (!page) return ignored('no on-call incident of this service paged this PagerDuty incident');
      const known = escalator.incident(page.key);
      if (decision === 'acknowledge' && (known?.acknowledgedAt || known?.resolvedAt)) {
        return ignored(`incident ${page.key} is already ${known.resolvedAt ? 'resolved' : 'acknowledged'}`);
      }
      if (decision === 'resolve' && known?.resolvedAt)
        return ignored(`incident ${page.key} is already resolved`);
      const actor = `pagerduty:${event.agent?.summary ?? 'unknown'}`;
      const incident = await escalator[decision](page.key, actor);
      await engine.store.appendAudit({
        ts: new Date().toISOString(),
        actor,
        kind: `escalation.${decision === 'acknowledge' ? 'acknowledged' : 'resolved'}`,
        runId: page.key,
        data: {
          summary: incident.summary,
          paged: incident.paged,
          via: 'pagerduty-webhook',
          level: page.level,
          ...(event.id ? { webhookEvent: event.id } : {}),
        } as unknown as Json,
      });
      return reply.code(200).send({
        status: decision === 'acknowledge' ? ('acknowledged' as const) : ('resolved' as const),
        incident: page.key,
        level: page.level,
      });
    },
  );
}
