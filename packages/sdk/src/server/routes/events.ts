import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NotFoundError } from '../../core/errors';
import { sleep } from '../../core/sleep';
import { FINAL_RUN_STATUSES, type RunStatus } from '../../store/records';
import type { RunStore } from '../../store/run-store';
import type { ServerContext } from '../context';
import { HttpError } from '../errors';
import { identityOf } from '../request-context';
import { type ServerSentEvent, SseStream } from '../sse';
import { errorResponses, RunEventView, runEventView } from '../views';
import { RunParams } from './runs';

/** Rows read per store query while streaming. */
const STREAM_BATCH = 500;

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
 * run, whichever process executes it, and a client that reconnects (`Last-Event-ID`) misses nothing. All
 * streams of one run on this replica share one poller ({@link RunFeed}), and the number of open streams is
 * capped per identity and per replica (`eventStreams`), so viewers cannot take the store's connections from
 * the workers. Open streams are ended when the app closes, so they never hold a shutdown up; clients then
 * reconnect to another replica.
 */
export function eventRoutes(app: FastifyInstance, { engine, settings }: ServerContext): void {
  const { pollIntervalMs, heartbeatMs, maxPerIdentity, maxOpen } = settings.eventStreams;
  const slots = new StreamSlots(maxPerIdentity, maxOpen);
  const feeds = new RunFeeds(engine.store, pollIntervalMs, app.log);

  // Each poller may be in the middle of a store query; the store must outlive it.
  app.addHook('preClose', () => feeds.close());

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
          '`{ events, nextAfter, status, done }` at once. Open streams are limited per identity and per ' +
          'replica: one more is a 429 TOO_MANY_STREAMS (JSON polling is not limited this way).',
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

      // Taken before the response starts, so a refusal is an ordinary JSON error.
      const release = slots.take(identityOf(request).name);
      try {
        reply.hijack();
        const stream = new SseStream(reply.raw, reply.getHeaders());
        const heartbeat = setInterval(() => stream.comment('keep-alive'), heartbeatMs);
        try {
          feeds.follow(runId, after, stream);
          await stream.ended;
        } finally {
          clearInterval(heartbeat);
        }
      } finally {
        release();
      }
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

const POLL_INSTEAD =
  'Close one, or poll instead: GET /api/v1/runs/{id}/events with `Accept: application/json` (or ' +
  '`?format=json`) and `?after=<nextAfter>`.';

/** The open event streams of this replica, counted per identity and in all. */
class StreamSlots {
  readonly #byIdentity = new Map<string, number>();
  #open = 0;

  constructor(
    readonly maxPerIdentity: number,
    readonly maxOpen: number,
  ) {}

  /**
   * Counts one more stream of `identity`, or throws 429 `TOO_MANY_STREAMS` when it has the most it may have
   * or the replica serves the most it can. Call the returned function when the stream is over (idempotent).
   */
  take(identity: string): () => void {
    const mine = this.#byIdentity.get(identity) ?? 0;
    if (mine >= this.maxPerIdentity) {
      throw new HttpError(
        429,
        'TOO_MANY_STREAMS',
        `You have ${mine} run event streams open on this replica, the most one identity may have ` +
          `(eventStreams.maxPerIdentity = ${this.maxPerIdentity}). ${POLL_INSTEAD}`,
        { scope: 'identity', open: mine, max: this.maxPerIdentity },
      );
    }
    if (this.#open >= this.maxOpen) {
      throw new HttpError(
        429,
        'TOO_MANY_STREAMS',
        `This replica has ${this.#open} run event streams open, the most it serves ` +
          `(eventStreams.maxOpen = ${this.maxOpen}). ${POLL_INSTEAD}`,
        { scope: 'replica', open: this.#open, max: this.maxOpen },
      );
    }
    this.#byIdentity.set(identity, mine + 1);
    this.#open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open--;
      const left = (this.#byIdentity.get(identity) ?? 1) - 1;
      if (left > 0) this.#byIdentity.set(identity, left);
      else this.#byIdentity.delete(identity);
    };
  }
}

/** The pollers of the runs that have open streams on this replica, one per run. */
class RunFeeds {
  readonly #feeds = new Map<string, RunFeed>();
  #closing = false;

  constructor(
    readonly store: RunStore,
    readonly pollMs: number,
    readonly log: FastifyBaseLogger,
  ) {}

  /** Sends `stream` the run's events after `after`, from the run's poller (started if there is none). */
  follow(runId: string, after: number, stream: SseStream): void {
    // A request that was already being handled when the app began to close.
    if (this.#closing) {
      stream.end();
      return;
    }
    let feed = this.#feeds.get(runId);
    if (!feed) {
      const created = new RunFeed(this.store, runId, this.pollMs, this.log, () => {
        if (this.#feeds.get(runId) === created) this.#feeds.delete(runId);
      });
      this.#feeds.set(runId, created);
      feed = created;
    }
    feed.add(stream, after);
  }

  /** Ends every stream and waits for the pollers' queries to finish. */
  async close(): Promise<void> {
    this.#closing = true;
    const feeds = [...this.#feeds.values()];
    for (const feed of feeds) feed.endAll();
    await Promise.allSettled(feeds.map((feed) => feed.done));
  }
}

/**
 * One run's poller: reads the run's status and its audit rows after the lowest position of its streams,
 * once per interval however many streams follow the run, and sends each stream the rows it has not had. A
 * stream whose client is not reading ({@link SseStream.backedUp}) is left out until it drains; it then
 * continues from its own position, so nothing is lost and nothing piles up in memory for it.
 */
class RunFeed {
  /** Each stream with the sequence number of the last event it was sent. */
  readonly #streams = new Map<SseStream, number>();
  #alarm: AbortController | undefined;
  /** Set when a stream joined after the streams to read for were chosen: read again without waiting. */
  #woken = false;
  #done: Promise<void> | undefined;

  constructor(
    readonly store: RunStore,
    readonly runId: string,
    readonly pollMs: number,
    readonly log: FastifyBaseLogger,
    /** Called, synchronously with the decision, when the poller stops for want of streams. */
    readonly onIdle: () => void,
  ) {}

  /** Resolves when the poller has stopped. */
  get done(): Promise<void> {
    return this.#done ?? Promise.resolve();
  }

  add(stream: SseStream, after: number): void {
    this.#streams.set(stream, after);
    // The last stream leaving should stop the poller now, not after its nap.
    stream.signal.addEventListener('abort', () => {
      if (![...this.#streams.keys()].some((s) => !s.closed)) this.#wake();
    });
    this.#wake();
    this.#done ??= this.#poll();
  }

  endAll(): void {
    for (const stream of this.#streams.keys()) stream.end();
  }

  #wake(): void {
    this.#woken = true;
    this.#alarm?.abort();
  }

  async #poll(): Promise<void> {
    for (;;) {
      for (const stream of this.#streams.keys()) if (stream.closed) this.#streams.delete(stream);
      if (this.#streams.size === 0) {
        this.onIdle();
        return;
      }
      this.#woken = false;
      const ready = [...this.#streams].filter(([stream]) => !stream.backedUp);
      let full = false;
      if (ready.length > 0) {
        const from = Math.min(...ready.map(([, last]) => last));
        try {
          const page = await readPage(this.store, this.runId, from, STREAM_BATCH);
          for (const [stream, last] of ready) this.#deliver(stream, last, page);
          full = page.events.length === STREAM_BATCH;
        } catch (e) {
          // Clients reconnect with Last-Event-ID and resume where their stream stopped.
          if ([...this.#streams.keys()].some((s) => !s.closed)) {
            this.log.warn({ err: e, runId: this.runId }, 'run event stream failed; ending its streams');
          }
          this.endAll();
          continue;
        }
      }
      if (!full) await this.#nap();
    }
  }

  /** Sends `stream` the page's events after `last`, then `end` if the run is over. */
  #deliver(stream: SseStream, last: number, page: RunEventsPage): void {
    if (stream.closed) return;
    const fresh = page.events.filter((event) => event.seq > last);
    const seen = fresh.at(-1)?.seq ?? last;
    const events: ServerSentEvent[] = fresh.map((event) => ({
      id: event.seq,
      event: event.kind,
      data: JSON.stringify(event),
    }));
    if (page.done)
      events.push({ event: 'end', data: JSON.stringify({ status: page.status, lastSeq: seen }) });
    stream.send(...events);
    this.#streams.set(stream, seen);
    if (page.done) stream.end();
  }

  async #nap(): Promise<void> {
    if (this.#woken) return;
    this.#alarm = new AbortController();
    await sleep(this.pollMs, this.#alarm.signal).catch(() => {});
    this.#alarm = undefined;
  }
}
