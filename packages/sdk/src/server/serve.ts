import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { sleep } from '../core/sleep';
import type { Engine } from '../engine/engine';
import { API_PREFIX, createServer } from './app';
import type { ServerOptions, TokenGrant } from './options';

/** How long {@link serve} lets requests and the run being executed finish on shutdown (30 s). */
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;
/** How long {@link serve}'s worker sleeps when there is nothing to run (1 s). */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;

/** Options of {@link serve}. */
export interface ServeOptions {
  engine: Engine;
  /** The accepted bearer tokens (hashed); at least one. */
  tokens: readonly TokenGrant[];
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** Fastify's (pino) logger, as {@link ServerOptions} takes it. @default false */
  logger?: ServerOptions['logger'];
  /** Aborting it shuts the service down gracefully; {@link serve} resolves when it is down. */
  signal: AbortSignal;
  /** How long the worker sleeps when there is nothing to run. @default 1000 */
  pollIntervalMs?: number;
  /**
   * How long shutdown, from the signal on, waits for in-flight requests and the run being executed to
   * finish. After it, every run still executing is handed over
   * (`engine.handOver`): stopped at its next safe point, not cancelled, and queued again, so another replica
   * sharing the store resumes it at once. Keep it below the orchestrator's kill timeout (Kubernetes'
   * `terminationGracePeriodSeconds`) minus the time an apply in flight may need. @default 30000
   */
  shutdownGraceMs?: number;
  /**
   * Aborting it makes shutdown hand the run over without waiting for the rest of the grace period (an
   * operator's second SIGTERM, say). It does not start a shutdown by itself. @default never aborts
   */
  handOverNow?: AbortSignal;
  /** Further options of {@link createServer}: alert routing, per-runbook roles, limits, metrics. */
  server?: Omit<ServerOptions, 'engine' | 'tokens' | 'logger'>;
  /** Called once the service listens. */
  onListening?: (where: { url: string; openapi: string }) => void;
}

/** How the service went down. */
export interface ServeResult {
  /**
   * Runs still executing at the end of the grace period (the worker's and inline ones of requests in
   * flight), handed over to the other replicas (0 or more).
   */
  handedOver: number;
}

/**
 * Runs the runbook service until `signal` aborts: the HTTP API ({@link createServer}) on `host:port`, and in
 * the same process a worker that executes queued and approved runs and reverts expired actions.
 *
 * Shutdown, when `signal` aborts: the server stops accepting connections and lets in-flight requests finish
 * (probes get 503 meanwhile); the worker claims no new run. Requests and the worker's run get
 * `shutdownGraceMs` from the signal; then every run still executing (the worker's and the inline diagnose or
 * plan runs of requests in flight) is handed over to the other replicas, and those requests answer with
 * their run queued. The caller closes the store afterwards.
 * Rejects when the server cannot listen.
 */
export async function serve(options: ServeOptions): Promise<ServeResult> {
  const app = createServer({
    ...options.server,
    engine: options.engine,
    tokens: [...options.tokens],
    logger: options.logger ?? false,
  });
  const signal = options.signal;
  // The responses in flight, to answer them with `Connection: close` on shutdown: a kept-alive connection
  // would hold app.close() for the whole keep-alive timeout after its request was answered.
  const inFlight = new Set<ServerResponse>();
  app.server.on('request', (_request, response: ServerResponse) => {
    inFlight.add(response);
    response.once('close', () => inFlight.delete(response));
  });
  try {
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
  } catch (e) {
    await app.close().catch(() => {});
    throw e;
  }
  const where = addressOf(app);
  app.log.info(where, `runbook service listening on ${where.url} (OpenAPI: ${where.openapi})`);
  options.onListening?.(where);

  const stopClaiming = new AbortController();
  const worker = workUntil(
    options.engine,
    stopClaiming.signal,
    app.log,
    options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
  );

  if (!signal.aborted) {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  app.log.info('shutting down: finishing in-flight requests and the run being executed');
  // The grace period starts now, not once the requests are done: an inline diagnose or plan runs inside its
  // request, so waiting for the requests first could outlast the orchestrator's kill timeout.
  const graceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  let timer: NodeJS.Timeout | undefined;
  let onHandOverNow = () => {};
  const timeUp = Promise.race([
    new Promise<'grace over'>((resolve) => {
      timer = setTimeout(() => resolve('grace over'), graceMs);
    }),
    new Promise<'asked'>((resolve) => {
      onHandOverNow = () => resolve('asked');
      if (options.handOverNow?.aborted) onHandOverNow();
      else options.handOverNow?.addEventListener('abort', onHandOverNow, { once: true });
    }),
  ]);
  stopClaiming.abort();
  for (const response of inFlight) if (!response.headersSent) response.shouldKeepAlive = false;
  // Settled either way, so that a failing close still lets the runs be handed over; rethrown at the end.
  const closing = app.close().then(
    () => undefined,
    (e: unknown) => ({ error: e }),
  );
  const finished = await Promise.race([
    Promise.all([worker, closing]).then(() => 'finished' as const),
    timeUp,
  ]);
  clearTimeout(timer);
  options.handOverNow?.removeEventListener('abort', onHandOverNow);
  let handedOver = 0;
  if (finished !== 'finished') {
    const why = finished === 'asked' ? 'asked to hand over at once' : `grace period of ${graceMs}ms over`;
    app.log.warn(`${why}: handing the runs still executing over to another replica`);
    // Also the inline runs of requests still in flight: those requests then answer with the run queued.
    handedOver = await options.engine.handOver(`the service shut down (${why})`);
    await worker;
    if (handedOver > 0) {
      app.log.info(
        { handedOver },
        `handed over ${handedOver} run(s): queued again for another replica to resume now`,
      );
    }
  }
  const closed = await closing;
  if (closed) throw closed.error;
  app.log.info('stopped');
  return { handedOver };
}

/**
 * Executes runnable runs and reverts expired actions until `stop` aborts. Unlike `engine.work`, stopping
 * does not cancel the run being executed: it finishes, is handed over, or (if the process dies) is resumed
 * elsewhere when its lease expires.
 */
async function workUntil(
  engine: Engine,
  stop: AbortSignal,
  log: FastifyBaseLogger,
  pollMs: number,
): Promise<void> {
  while (!stop.aborted) {
    let didWork = false;
    try {
      const result = await engine.runNext();
      if (result) {
        didWork = true;
        const fields = { runId: result.runId, runbookId: result.runbookId, status: result.status };
        if (result.handedOver) log.warn(fields, 'run handed over: queued again for another replica');
        else log.info(fields, 'run executed');
      }
      didWork = (await engine.revertExpired()) > 0 || didWork;
    } catch (e) {
      log.error({ err: e }, 'worker error');
    }
    if (!didWork) await sleep(pollMs, stop).catch(() => {});
  }
}

function addressOf(app: FastifyInstance): { url: string; openapi: string } {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  return { url, openapi: `${url}${API_PREFIX}/openapi.json` };
}
