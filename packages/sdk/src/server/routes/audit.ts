import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerContext } from '../context';
import { AuditRowView, auditRowView, errorResponses } from '../views';

const AuditVerificationView = z.object({
  ok: z.boolean(),
  entries: z.number().int(),
  headHash: z.string(),
  problems: z.array(
    z.object({
      seq: z.number().int(),
      problem: z.enum(['edited', 'missing', 'reordered', 'head-mismatch']),
      message: z.string(),
    }),
  ),
});

/** Query of `GET /audit`. */
export const AuditQuery = z.strictObject({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('Only entries after this sequence number (the nextAfter of the previous page)'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  runId: z.string().min(1).max(200).optional().describe("Only this run's entries"),
});

/** `GET /audit` (the log, a page at a time) and `GET /audit/verify` (its hash chain recomputed). */
export function auditRoutes(app: FastifyInstance, { engine }: ServerContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/audit',
    {
      config: { role: 'viewer' },
      schema: {
        summary: 'Read the audit log in order, a page at a time, optionally for one run',
        tags: ['audit'],
        querystring: AuditQuery,
        response: {
          200: z.object({
            entries: z.array(AuditRowView),
            nextAfter: z
              .number()
              .int()
              .nullable()
              .describe('Pass as `after` for the next page; null on the last page'),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { after, limit, runId } = request.query;
      // One more than asked tells whether another page exists.
      const rows =
        runId === undefined
          ? await engine.store.readAudit(after, limit + 1)
          : await engine.store.readRunAudit(runId, after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        entries: page.map(auditRowView),
        nextAfter: rows.length > limit && last ? last.seq : null,
      };
    },
  );

  api.get(
    '/audit/verify',
    {
      config: { role: 'viewer' },
      schema: {
        summary: "Verify the audit log's hash chain",
        tags: ['audit'],
        response: { 200: AuditVerificationView, ...errorResponses },
      },
    },
    async () => engine.verifyAudit(),
  );
}
