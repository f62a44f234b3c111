import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Json } from '../../core/json';
import type { EscalatedIncident, Escalator } from '../../notify/escalator';
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
