import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerContext } from '../context';
import { requireRole } from '../identity';
import { identityOf } from '../request-context';
import { errorResponses, RunbookView, RunDetailView, runbookView, runDetailView } from '../views';
import { checkRunInput, IdempotencyKey, REPLAYED_HEADER, RunContext, startRun } from './run-input';

/** Path parameter of a runbook. */
export const RunbookParams = z.object({ id: z.string().min(1).max(200) });

/** Body of `POST /runbooks/:id/diagnose`. */
export const DiagnoseBody = z.strictObject({
  input: z
    .record(z.string(), z.unknown())
    .default({})
    .describe("The runbook's input; see the runbook's `input` JSON Schema"),
  idempotencyKey: IdempotencyKey.optional(),
  context: RunContext.optional(),
});

/** The catalog, and diagnosing one runbook. */
export function runbookRoutes(app: FastifyInstance, { engine, access }: ServerContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/runbooks',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'List the runbooks, each with its input as JSON Schema',
        tags: ['runbooks'],
        response: { 200: z.object({ runbooks: z.array(RunbookView) }), ...errorResponses },
      },
    },
    async () => ({ runbooks: engine.runbooks().map(runbookView) }),
  );

  api.get(
    '/runbooks/:id',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'One runbook',
        tags: ['runbooks'],
        params: RunbookParams,
        response: { 200: RunbookView, ...errorResponses },
      },
    },
    async (request) => runbookView(engine.runbook(request.params.id)),
  );

  api.post(
    '/runbooks/:id/diagnose',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Run a runbook in diagnose mode (checks only, no changes) and return its findings',
        description:
          'Takes an idempotencyKey and a context as `POST /runs` does, with the same refusals of what only the ' +
          'Alertmanager webhook sets (`alert:` keys, context source `alertmanager`, receiver, groupKey, externalURL).',
        tags: ['runbooks'],
        params: RunbookParams,
        body: DiagnoseBody,
        response: { 200: RunDetailView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const identity = identityOf(request);
      const runbookId = request.params.id;
      const { input, idempotencyKey, context } = request.body;
      requireRole(identity, access.roleFor(runbookId, 'diagnose'), `Diagnosing ${runbookId}`);
      checkRunInput(engine, runbookId, input);
      const started = await startRun(engine, {
        runbookId,
        input,
        mode: 'diagnose',
        actor: identity.name,
        idempotencyKey,
        context,
      });
      if (started.replayed) reply.header(REPLAYED_HEADER, 'true');
      return runDetailView(await engine.getRun(started.runId));
    },
  );
}
