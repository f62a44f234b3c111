import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { type RedisInstance, unlessAborted } from '../connection';
import { parseInfo } from '../info';
import { warnNotAfterFail } from '../options';
import { errorText, formatLatency, round1 } from '../wording';

/** Options of {@link ping}. */
export const PingOptions = z
  .object({
    /** PINGs sent one after another on the probe connection. @default 5 */
    count: z.number().int().min(1).max(100).default(5),
    /** Which latency the thresholds judge: the median (one slow PING is noise) or the slowest. @default "p50" */
    judge: z.enum(['p50', 'max']).default('p50'),
    /** `warn` when the judged latency is at or above this. @default "20ms" */
    warnAfter: Duration.default('20ms'),
    /** `fail` when the judged latency is at or above this. @default "200ms" */
    failAfter: Duration.default('200ms'),
    /** Bound on the whole probe (connect, PINGs, `INFO server`); no answer in time is a `fail`. @default "5s" */
    timeout: Duration.default('5s'),
  })
  .refine(warnNotAfterFail, {
    message: 'warnAfter must not exceed failAfter',
    path: ['warnAfter'],
  });
export type PingOptions = z.output<typeof PingOptions>;
export type PingOptionsInput = z.input<typeof PingOptions>;

/** What {@link ping} found. */
export type PingData = {
  /** `[user@]host:port/db`. */
  server: string;
  reachable: boolean;
  /** Time to open the probe connection (TCP, TLS, AUTH, SELECT, CLIENT SETNAME). */
  connectMs: number | null;
  /** Round trip of each PING, in order. */
  latenciesMs: number[];
  /** Median PING round trip. */
  p50Ms: number | null;
  /** Slowest PING round trip. */
  maxMs: number | null;
  /** `redis_version`, e.g. `7.0.15`. */
  version: string | null;
  /** `uptime_in_seconds`: a small one after an incident means the server restarted. */
  uptimeSeconds: number | null;
  /** Why it could not connect or answer (`connect ECONNREFUSED …`, `LOADING …`, `WRONGPASS …`). */
  error: string | null;
};

/**
 * What {@link ping} measured: the probe as in {@link PingData}, and when each PING's reply came (for the
 * evidence's series). Replaying it with another `judge`, `warnAfter` or `failAfter` judges the recorded
 * round trips again.
 */
export type PingObservation = PingData & {
  /** Milliseconds since the epoch when each PING's reply came, in order. */
  repliedAt: number[];
};

const KIND = 'redis.ping';

/**
 * The manual's reachability probe (`redis-cli ping`, `ping -c 10 redis`): opens a **new** connection (a shared
 * one would hide a server that refuses new clients at `maxclients`) and times it, sends `count` PINGs one
 * after another and times each, then reads `redis_version` and uptime.
 *
 * - `fail` when it cannot connect or a PING fails (refused, DNS, `WRONGPASS`, `LOADING`, "max number of
 *   clients reached": the summary quotes the error), when there is no answer within `timeout`, or when the
 *   judged latency (`p50` or `max`) is at or above `failAfter`.
 * - `warn` when the judged latency is at or above `warnAfter`.
 * - `ok` otherwise.
 *
 * It never throws for an unreachable server — reporting that is its job; it throws only when the step is
 * cancelled.
 *
 * Replayable: `read` probes ({@link PingObservation}), `judge` applies `judge`, `warnAfter` and `failAfter`.
 */
export function ping(
  redis: RedisInstance,
  options: PingOptionsInput = {},
): ReplayableCheck<PingData, PingObservation> {
  const p = parseOptions(KIND, PingOptions, options);
  const timeoutMs = toMillis(p.timeout);
  const warnMs = toMillis(p.warnAfter);
  const failMs = toMillis(p.failAfter);
  return defineCheck({
    kind: KIND,
    description: `Connect to ${redis.display}, ${p.count} PINGs, server version`,
    async read(ctx): Promise<PingObservation> {
      const data: PingData = {
        server: redis.display,
        reachable: false,
        connectMs: null,
        latenciesMs: [],
        p50Ms: null,
        maxMs: null,
        version: null,
        uptimeSeconds: null,
        error: null,
      };
      const repliedAt: number[] = [];
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(new Error('deadline')), timeoutMs);
      const signal = AbortSignal.any([ctx.signal, deadline.signal]);
      // No ready check: a server still loading its dataset must answer (LOADING), not keep us waiting.
      const { client, lastError } = redis.open({ connectTimeoutMs: timeoutMs, readyCheck: false });
      try {
        const started = performance.now();
        await unlessAborted(client.connect(), signal);
        data.connectMs = round1(performance.now() - started);
        for (let i = 0; i < p.count; i++) {
          const t = performance.now();
          await unlessAborted(client.ping(), signal);
          const ms = performance.now() - t;
          data.latenciesMs.push(Math.round(ms * 100) / 100);
          repliedAt.push(Date.now());
          data.reachable = true;
        }
        const info = parseInfo(String(await unlessAborted(client.info('server'), signal)));
        data.version = info.redis_version ?? null;
        data.uptimeSeconds = info.uptime_in_seconds === undefined ? null : Number(info.uptime_in_seconds);
      } catch (e) {
        ctx.signal.throwIfAborted();
        data.error = deadline.signal.aborted
          ? `no answer within ${formatLatency(timeoutMs)}${data.reachable ? ' (answered, then stalled)' : data.connectMs === null ? '' : ' (connected, then stalled)'}`
          : errorText(redis.toError(explained(e, lastError()), 'PING'));
      } finally {
        clearTimeout(timer);
        client.disconnect();
      }
      if (data.latenciesMs.length > 0) {
        const sorted = [...data.latenciesMs].sort((a, b) => a - b);
        data.p50Ms = sorted[Math.floor((sorted.length - 1) / 2)] ?? null;
        data.maxMs = sorted[sorted.length - 1] ?? null;
      }
      return { ...data, repliedAt };
    },
    judge: ({ repliedAt, ...data }) =>
      judgeProbe(
        data,
        p.judge,
        warnMs,
        failMs,
        repliedAt.map((at, i): [number, number] => [at, data.latenciesMs[i] ?? 0]),
      ),
  });
}

/** A server's error reply says what happened; a bare "Connection is closed." less than the connection error. */
function explained(e: unknown, connectionError: Error | undefined): unknown {
  return (e as { name?: string })?.name === 'ReplyError' ? e : (connectionError ?? e);
}

function judgeProbe(
  data: PingData,
  by: PingOptions['judge'],
  warnMs: number,
  failMs: number,
  points: [number, number][],
) {
  const evidence: Evidence[] = [
    {
      kind: 'table',
      title: 'PING probe',
      columns: ['SERVER', 'REACHABLE', 'CONNECT', 'PINGS', 'P50', 'MAX', 'VERSION', 'ERROR'],
      rows: [
        [
          data.server,
          data.reachable,
          data.connectMs === null ? null : formatLatency(data.connectMs),
          data.latenciesMs.length,
          data.p50Ms === null ? null : formatLatency(data.p50Ms),
          data.maxMs === null ? null : formatLatency(data.maxMs),
          data.version,
          data.error,
        ],
      ],
    },
  ];
  if (points.length > 0) evidence.push({ kind: 'series', title: 'PING round trip', unit: 'ms', points });
  if (data.error !== null || data.p50Ms === null || data.maxMs === null) {
    return finding('fail', `Redis ${data.server} unreachable: ${data.error ?? 'no reply'}`, data, evidence);
  }
  const judged = by === 'p50' ? data.p50Ms : data.maxMs;
  const head =
    `${data.version ? `Redis ${data.version}` : 'Redis'} at ${data.server}: ${data.latenciesMs.length} PINGs, ` +
    `p50 ${formatLatency(data.p50Ms)}, max ${formatLatency(data.maxMs)} (connect ${formatLatency(data.connectMs ?? 0)})`;
  const status: FindingStatus = judged >= failMs ? 'fail' : judged >= warnMs ? 'warn' : 'ok';
  const limit = status === 'fail' ? failMs : warnMs;
  const summary = status === 'ok' ? head : `${head}: ${by} at or above ${formatLatency(limit)}`;
  return finding(status, summary, data, evidence);
}
