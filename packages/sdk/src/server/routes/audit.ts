import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServerContext } from '../context';
import { errorResponses } from '../views';

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

/** `GET /audit/verify`: recomputes the audit log's hash chain. */
export function auditRoutes(app: FastifyInstance, { engine }: ServerContext): void {
  app.withTypeProvider<ZodTypeProvider>().get(
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
