import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NotFoundError } from '../../core/errors';
import { sleep } from '../../core/sleep';
import { FINAL_RUN_STATUSES, type RunStatus } from '../../store/records';
import type { RunStore } from '../../store/run-store';
import type { ServerContext } from '../context';
import { SseStream } from '../sse';
import { errorResponses, RunEventView, runEventView } from '../views';
import { RunParams } from './runs';

/** How often an open event stream asks the store for new audit rows. @default 500 */
export const EVENT_POLL_INTERVAL_MS = 500;
/** How often an idle event stream sends a `: keep-alive` comment. @default 15000 */
export const EVENT_HEARTBEAT_MS = 15_000;
/** Rows read per store query while streaming. */
const STREAM_BATCH = 500;

/** Timing of the event streams; tests shorten it. */
export interface EventStreamTiming {
  /** @default {@link EVENT_POLL_INTERVAL_MS} */
  pollIntervalMs?: number;
  /** @default {@link EVENT_HEARTBEAT_MS} */
  heartbeatMs?: number;
}

const Seq = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Query of `GET /runs/:id/events`. */
export const RunEventsQuery = z.strictObject({
  after: Seq.optional().describe('Only events after this sequence number; `Last-Event-ID` wins over it'),
  format: z
    .enum(['sse', 'json'])
    .optional()
    .describe('json: one page at once, for clients that cannot stream; @default by the Accept header'),
  limit: z.coerce.number().int().min(1).max(1000).default(500).describe('Events per page of the json form'),
});

/** Headers of `GET /runs/:id/events`; the others pass through untouched. */
const RunEventsHeaders = z.looseObject({
  'last-event-id': z
    .string()
    .regex(/^\d{1,15}$/, 'must be the id (a sequence number) of the last event received')
    .optional()
    .describe('Sent by a reconnecting EventSource: resume after this event'),
});

/** A page of a run's events, for clients polling instead of streaming. */
export const RunEventsPage = z.object({
  events: z.array(RunEventView),
  nextAfter: z.number().int().describe('Pass as `after` to poll for the events after these'),
  status: z.enum(['queued', 'running', 'waiting_approval', 'succeeded', 'failed', 'escalated', 'cancelled']),
  done: z.boolean().describe('The run ended and every event up to its end is in this page or before'),
});
export type RunEventsPage = z.infer<typeof RunEventsPage>;

/**
 * `GET /runs/:id/events`: a run's audit entries as Server-Sent Events, or as JSON pages for polling.
 *
 * The stream is read from the audit log, not from this process's engine events, so any replica serves any
 * run, whichever process executes it, and a client that reconnects (`Last-Event-ID`) misses nothing. Open
 * streams are ended when the app closes, so they never hold a shutdown up; clients then reconnect to
 * another replica.
 */
export function eventRoutes(
  app: FastifyInstance,
  { engine }: ServerContext,
  timing: EventStreamTiming = {},
): void {
  const pollMs = timing.pollIntervalMs ?? EVENT_POLL_INTERVAL_MS;
  const heartbeatMs = timing.heartbeatMs ?? EVENT_HEARTBEAT_MS;
  const open = new Map<SseStream, Promise<void>>();

  app.addHook('preClose', async () => {
    for (const stream of open.keys()) stream.end();
    // Each loop may be in the middle of a store query; the store must outlive it.
    await Promise.allSettled(open.values());
  });

  app.withTypeProvider<ZodTypeProvider>().get(
    '/runs/:id/events',
    {
      config: { role: 'viewer' },
      schema: {
        summary: "A run's events (its audit entries): Server-Sent Events, or JSON pages for polling",
        description:
          'text/event-stream: each audit entry of the run as `id: <seq>`, `event: <kind>`, `data: <JSON>`, ' +
          'then `event: end` once the run has ended; `: keep-alive` comments while idle. Resume with ' +
          '`Last-Event-ID` or `?after=<seq>`. With `Accept: application/json` or `?format=json`, one page ' +
          '`{ events, nextAfter, status, done }` at once.',
        tags: ['runs'],
        params: RunParams,
        querystring: RunEventsQuery,
        headers: RunEventsHeaders,
        response: {
          200: {
            description: 'The events',
            content: {
              'text/event-stream': { schema: z.string().describe('Server-Sent Events') },
              'application/json': { schema: RunEventsPage },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const runId = request.params.id;
      const header = request.headers['last-event-id'];
      const after = header !== undefined ? Number(header) : (request.query.after ?? 0);
      const run = await engine.store.getRun(runId);
      if (!run) throw new NotFoundError(`Run ${runId}`, 'List runs with GET /api/v1/runs.');

      if (wantsJson(request, request.query.format)) {
        const page = await readPage(engine.store, runId, after, request.query.limit);
        return reply.type('application/json').send(page);
      }

      reply.hijack();
      const stream = new SseStream(reply.raw, reply.getHeaders());
      const heartbeat = setInterval(() => void stream.comment('keep-alive'), heartbeatMs);
      const following = follow(engine.store, runId, after, stream, pollMs, request.log).finally(() => {
        clearInterval(heartbeat);
        open.delete(stream);
      });
      open.set(stream, following);
      await following;
      return reply;
    },
  );
}

/** JSON unless the client asked for an event stream; `?format=` decides over `Accept`. */
function wantsJson(request: FastifyRequest, format: 'sse' | 'json' | undefined): boolean {
  if (format !== undefined) return format === 'json';
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/event-stream');
}

function isFinal(status: RunStatus): boolean {
  return FINAL_RUN_STATUSES.includes(status);
}

/** One page of events after `after`. The status is read first, so a final one's last entries are in the rows. */
async function readPage(
  store: RunStore,
  runId: string,
  after: number,
  limit: number,
): Promise<RunEventsPage> {
  const run = await store.getRun(runId);
  if (!run) throw new NotFoundError(`Run ${runId}`, 'List runs with GET /api/v1/runs.');
  const rows = await store.readRunAudit(runId, after, limit);
  return {
    events: rows.map(runEventView),
    nextAfter: rows.at(-1)?.seq ?? after,
    status: run.status,
    done: isFinal(run.status) && rows.length < limit,
  };
}

/**
 * Sends the run's audit rows after `after` as they are appended, until the run has ended and every row
 * is sent (then `event: end`), the client goes away, or the app closes.
 */
async function follow(
  store: RunStore,
  runId: string,
  after: number,
  stream: SseStream,
  pollMs: number,
  log: FastifyBaseLogger,
): Promise<void> {
  let last = after;
  try {
    while (!stream.closed) {
      const page = await readPage(store, runId, last, STREAM_BATCH);
      for (const event of page.events) {
        await stream.send({ id: event.seq, event: event.kind, data: JSON.stringify(event) });
      }
      last = page.nextAfter;
      if (page.done) {
        await stream.send({ event: 'end', data: JSON.stringify({ status: page.status, lastSeq: last }) });
        stream.end();
        return;
      }
      if (page.events.length < STREAM_BATCH) await sleep(pollMs, stream.signal).catch(() => {});
    }
  } catch (e) {
    // The client reconnects with Last-Event-ID and resumes where this stream stopped.
    if (!stream.closed) log.warn({ err: e, runId }, 'run event stream failed; ending it');
    stream.end();
  }
}
