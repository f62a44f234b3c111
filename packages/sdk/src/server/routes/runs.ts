import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RUN_MODES } from '../../core/step';
import { recordRun } from '../../replay/fixture';
import { RUN_STATUSES } from '../../store/records';
import type { ServerContext } from '../context';
import { type Identity, requireRole } from '../identity';
import { identityOf } from '../request-context';
import { decodeRunCursor, encodeRunCursor } from '../run-cursor';
import {
  ApprovalView,
  approvalView,
  errorResponses,
  FixtureView,
  RunDetailView,
  RunView,
  runDetailView,
  runView,
} from '../views';
import { checkRunInput, IdempotencyKey, REPLAYED_HEADER, RunContext, startRun } from './run-input';

const RunMode = z.enum(RUN_MODES);

/** Body of `POST /runs`. */
export const StartRunBody = z.strictObject({
  runbookId: z.string().min(1).max(200),
  input: z
    .record(z.string(), z.unknown())
    .default({})
    .describe("The runbook's input; see the runbook's `input` JSON Schema"),
  mode: RunMode.describe(
    'diagnose: checks only; plan: checks and plans; execute: applies (queued for a worker)',
  ),
  idempotencyKey: IdempotencyKey.optional(),
  context: RunContext.optional(),
});

/** Query of `GET /runs`. */
export const ListRunsQuery = z.strictObject({
  status: z.enum(RUN_STATUSES).optional(),
  runbookId: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .max(500)
    .refine((c) => decodeRunCursor(c) !== undefined, {
      message: 'not a cursor of this API: pass the nextCursor of the previous page as it was',
    })
    .optional()
    .describe('The nextCursor of the previous page'),
});

/** Path parameter of a run. */
export const RunParams = z.object({ id: z.string().min(1).max(200) });

/** Path parameter of `POST /approvals/:runId/approve` and `/reject`. */
export const ApprovalParams = z.object({ runId: z.string().min(1).max(200) });

/** Body of `POST /runs/:id/approve` and `/reject` (and of their `/approvals/:runId/…` aliases). */
export const DecisionBody = z
  .strictObject({
    reason: z.string().max(2000).optional(),
    breakGlass: z
      .boolean()
      .optional()
      .describe('Approve a run you requested yourself, in an emergency; needs a reason and is audited'),
  })
  // A POST without a body arrives as null.
  .nullish();

type DecisionBody = z.infer<typeof DecisionBody>;

/** Body of `POST /runs/:id/cancel`. */
export const CancelBody = z.strictObject({ reason: z.string().max(2000).optional() }).nullish();

/**
 * Starting, listing, showing, deciding on and cancelling runs.
 *
 * Execute-mode runs are only queued here: a worker (`engine.work()`, in this process or another sharing the
 * store) executes them, so a request never holds a connection open for a remediation that may wait on
 * locks, approvals or sleeps. Approved runs are queued again and continue on a worker too.
 */
export function runRoutes(app: FastifyInstance, { engine, access }: ServerContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    '/runs',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Start a run: diagnose and plan answer with the run; execute queues it for a worker (202)',
        description:
          'diagnose needs the viewer role; plan and execute need editor, unless the runbook has its own roles. ' +
          'With an idempotencyKey, a retry starts nothing and answers with the first run (header ' +
          '`Idempotent-Replayed: true`; for execute also `replayed: true`); the same key with another runbook, ' +
          'mode or input is a 409 IDEMPOTENCY_KEY_REUSED. Keys are per requester. What only the Alertmanager ' +
          'webhook sets is refused (400): `alert:` keys, context source `alertmanager`, receiver, groupKey, externalURL.',
        tags: ['runs'],
        body: StartRunBody,
        response: {
          200: RunDetailView,
          202: z.object({
            runId: z.string(),
            replayed: z.boolean().describe('True when the run was found by its idempotency key'),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const identity = identityOf(request);
      const { runbookId, input, mode, idempotencyKey, context } = request.body;
      // The role is checked before the runbook or input, so a refusal reveals nothing and changes nothing.
      requireRole(
        identity,
        access.roleFor(runbookId, mode),
        `Starting a run of ${runbookId} in ${mode} mode`,
      );
      checkRunInput(engine, runbookId, input);
      const started = await startRun(engine, {
        runbookId,
        input,
        mode,
        actor: identity.name,
        idempotencyKey,
        context,
      });
      if (started.replayed) reply.header(REPLAYED_HEADER, 'true');
      if (started.queued) return reply.code(202).send({ runId: started.runId, replayed: started.replayed });
      return reply.code(200).send(runDetailView(await engine.getRun(started.runId)));
    },
  );

  api.get(
    '/runs',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'List runs, newest first, a page at a time',
        tags: ['runs'],
        querystring: ListRunsQuery,
        response: {
          200: z.object({
            runs: z.array(RunView),
            nextCursor: z
              .string()
              .nullable()
              .describe('Pass as `cursor` for the next page; null on the last page'),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { status, runbookId, limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : decodeRunCursor(cursor);
      // One more than asked tells whether another page exists without a count query.
      const runs = await engine.store.listRuns({
        limit: limit + 1,
        ...(status ? { status } : {}),
        ...(runbookId ? { runbookId } : {}),
        ...(after ? { after } : {}),
      });
      const page = runs.slice(0, limit);
      const last = page.at(-1);
      return {
        runs: page.map(runView),
        nextCursor: runs.length > limit && last ? encodeRunCursor(last) : null,
      };
    },
  );

  api.get(
    '/runs/:id',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'A run with its context, steps, findings, plans and approvals',
        tags: ['runs'],
        params: RunParams,
        response: { 200: RunDetailView, ...errorResponses },
      },
    },
    async (request) => runDetailView(await engine.getRun(request.params.id)),
  );

  // What `runbook record` writes, from the service: with the embedded store the service holds its data
  // directory, so this is the way to record one of its runs.
  api.get(
    '/runs/:id/fixture',
    {
      config: { role: 'viewer' },
      schema: {
        summary:
          "A run's replay fixture (input, steps with observations, outcome), redacted: `runbook replay` it",
        tags: ['runs'],
        params: RunParams,
        response: { 200: FixtureView, ...errorResponses },
      },
    },
    async (request) => recordRun(engine.store, request.params.id),
  );

  for (const decision of ['approve', 'reject'] as const) {
    const decide = async (runId: string, identity: Identity, body: DecisionBody) => {
      const options = {
        actor: identity.name,
        ...(body?.reason !== undefined ? { reason: body.reason } : {}),
        ...(body?.breakGlass !== undefined ? { breakGlass: body.breakGlass } : {}),
      };
      const approval =
        decision === 'approve' ? await engine.approve(runId, options) : await engine.reject(runId, options);
      return { approval: approvalView(approval) };
    };
    const summary =
      decision === 'approve'
        ? "Approve a run's pending plan (not your own, unless break-glass); the run is queued to continue"
        : "Reject a run's pending plan; the run ends cancelled";
    const response = { 200: z.object({ approval: ApprovalView }), ...errorResponses };

    api.post(
      `/runs/:id/${decision}`,
      {
        config: { role: 'admin' },
        schema: { summary, tags: ['runs'], params: RunParams, body: DecisionBody, response },
      },
      async (request) => decide(request.params.id, identityOf(request), request.body),
    );
    // The same decision under its own prefix: Grafana's plugin proxy matches routes by method and path
    // prefix only, so an Admin-only proxy route can cover `/approvals` but not `/runs/:id/approve` apart
    // from `/runs/:id/cancel` (Editor).
    api.post(
      `/approvals/:runId/${decision}`,
      {
        config: { role: 'admin' },
        schema: {
          summary: `${summary} (the same as POST /runs/{id}/${decision}, on a path of its own, so a proxy that gates by path can require admin)`,
          tags: ['runs'],
          params: ApprovalParams,
          body: DecisionBody,
          response,
        },
      },
      async (request) => decide(request.params.runId, identityOf(request), request.body),
    );
  }

  api.post(
    '/runs/:id/cancel',
    {
      config: { role: 'editor' },
      schema: {
        summary: 'Cancel a run: at once when queued or waiting, at its next heartbeat when running',
        tags: ['runs'],
        params: RunParams,
        body: CancelBody,
        response: {
          200: z.object({ runId: z.string(), result: z.enum(['cancelled', 'requested']) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const identity = identityOf(request);
      const reason = request.body?.reason;
      const result = await engine.cancel(request.params.id, {
        actor: identity.name,
        ...(reason !== undefined ? { reason } : {}),
      });
      return { runId: request.params.id, result };
    },
  );
}
