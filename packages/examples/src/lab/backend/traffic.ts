import { z } from 'zod';

/** One request the generator sends: a GET path, or a method, path and JSON body. */
const TrafficPath = z.union([
  z.string().startsWith('/', 'expected a path starting with "/"'),
  z.strictObject({
    method: z.enum(['GET', 'POST']).default('GET'),
    path: z.string().startsWith('/', 'expected a path starting with "/"'),
    body: z.unknown().optional(),
  }),
]);

/** Options of {@link startTraffic}. */
export const TrafficOptions = z.strictObject({
  backendUrl: z.url({
    protocol: /^https?$/,
    message: 'expected the backend URL, such as "http://127.0.0.1:8000"',
  }),
  /** Requests started per second (spread evenly). */
  ratePerSecond: z.number().positive().max(1000),
  /** The requests, sent in turn. */
  paths: z.array(TrafficPath).min(1, 'give at least one path'),
  /** Requests in flight at most; a tick that finds this many waiting is skipped and counted, not queued. */
  maxInFlight: z.number().int().min(1).max(10_000).default(50),
  /** How long one request may take. */
  timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
});
export type TrafficOptionsInput = z.input<typeof TrafficOptions>;

/** What the generator has done so far. */
export interface TrafficStats {
  sent: number;
  /** Answers with a 2xx status. */
  ok: number;
  /** Answers with another status, by status. */
  byStatus: Record<string, number>;
  /** Requests that got no answer (refused, reset, timed out). */
  failed: number;
  /** Requests still open when stop() was called, aborted by it. */
  aborted: number;
  /** Ticks skipped because `maxInFlight` requests were still open. */
  skipped: number;
  inFlight: number;
  /** The mean duration of answered requests, ms. */
  meanMs: number;
}

/** A running load generator. */
export interface Traffic {
  /** Stops sending, aborts what is in flight, and resolves when it has settled. */
  stop(): Promise<void>;
  stats(): TrafficStats;
}

/**
 * A small load generator for the lab, so the backend's latency metrics and the Prometheus rules have data:
 * sends the given requests in turn at a steady rate. Bounded in-flight requests, so a slow backend makes it
 * skip ticks (counted) instead of piling up connections.
 */
export function startTraffic(input: TrafficOptionsInput): Traffic {
  const parsed = TrafficOptions.safeParse(input);
  if (!parsed.success)
    throw new Error(
      `Invalid traffic options: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  const o = parsed.data;
  const base = o.backendUrl.replace(/\/+$/, '');
  const requests = o.paths.map((p) =>
    typeof p === 'string' ? { method: 'GET' as const, path: p, body: undefined } : p,
  );
  const stats: TrafficStats = {
    sent: 0,
    ok: 0,
    byStatus: {},
    failed: 0,
    aborted: 0,
    skipped: 0,
    inFlight: 0,
    meanMs: 0,
  };
  let totalMs = 0;
  let answered = 0;
  let next = 0;
  const controller = new AbortController();
  const pending = new Set<Promise<void>>();

  const send = async () => {
    const r = requests[next++ % requests.length] as (typeof requests)[number];
    const started = performance.now();
    stats.sent++;
    stats.inFlight++;
    try {
      const response = await fetch(base + r.path, {
        method: r.method,
        headers: r.body === undefined ? {} : { 'content-type': 'application/json' },
        body: r.body === undefined ? undefined : JSON.stringify(r.body),
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(o.timeoutMs)]),
      });
      await response.arrayBuffer();
      totalMs += performance.now() - started;
      answered++;
      stats.meanMs = totalMs / answered;
      if (response.ok) stats.ok++;
      else stats.byStatus[response.status] = (stats.byStatus[response.status] ?? 0) + 1;
    } catch {
      if (controller.signal.aborted) stats.aborted++;
      else stats.failed++;
    } finally {
      stats.inFlight--;
    }
  };

  const timer = setInterval(() => {
    if (stats.inFlight >= o.maxInFlight) {
      stats.skipped++;
      return;
    }
    const p = send();
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, 1000 / o.ratePerSecond);

  return {
    async stop() {
      clearInterval(timer);
      controller.abort();
      await Promise.allSettled([...pending]);
    },
    stats: () => ({ ...stats, byStatus: { ...stats.byStatus } }),
  };
}
