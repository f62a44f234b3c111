/**
 * Runbook 7 of the operations manual, "OpenRouter API rate limit", on the AI-Web-Test platform.
 *
 * Decisions where the manual leaves room:
 * - Diagnosis 1 ("current API usage", `GET /api/v1/usage` with the OpenRouter key): the runbook service holds
 *   no OpenRouter key, and must not. The usage that matters here — how often OpenRouter refuses — is the
 *   backend's `openrouter_api_rate_limit_errors` (429 answers of the last 60 s, the alert's metric), read
 *   from Prometheus or, without one, from the backend's own `/metrics`; the backend's health shows how many of
 *   its keys rest after a 429.
 * - Diagnosis 3 (`redis-cli LLEN agent:requests:queue`): the backend's health reports its Redis queue's length,
 *   so the runbook reads it there instead of guessing the queue's key.
 * - Step 2 ("throttle incoming requests", an nginx `limit_req_rate`): this platform has no nginx; the backend's
 *   request queue is the throttle. Once step 1 enabled it, every replica sends at most
 *   `OPENROUTER_MAX_REQUESTS_PER_MINUTE` to OpenRouter and answers 429 beyond its queue cap. The step verifies
 *   that this is what the backend reports, rather than changing anything else.
 * - Steps 3 and 4 ("clear the queue gradually", "request rate < 50/min") are one measurement: the queue length
 *   and OpenRouter call count sampled `sampleInterval` apart.
 * - Step 5 (status page): `step.notify` on the `statuspage` channel; the status page client is a later issue.
 */
import {
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  type Finding,
  finding,
  onAlert,
  type ReplayableCheck,
  toMillis,
} from '@aiwebtest/runbooks';
import { z } from 'zod';
import { connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';
import {
  type BackendHealthBody,
  backendHealth,
  backendMetrics,
  metricSum,
  parseMetrics,
} from './platform-checks';
import { prometheusQuery } from './prometheus-query';

/** The status-page text of step 5. */
export const RATE_LIMIT_STATUS_MESSAGE =
  'OpenRouter API rate limits reached. AI requests are queued and processed at a reduced rate; response times may be slower.';

/** Input of `openrouter-rate-limit`. */
export const OpenRouterRateLimitInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** Rate limited above this many 429 answers in the last minute (the alert's threshold). @default 10 */
  rateLimitErrorsAbove: z.number().int().min(0).default(10),
  /** Step 1's `OPENROUTER_MAX_REQUESTS_PER_MINUTE`, and step 4's ceiling. @default 50 */
  maxRequestsPerMinute: z.number().int().min(1).max(60_000).default(50),
  /** Escalation: a queue longer than this means new requests must be rejected for a while. @default 1000 */
  queueRejectAbove: z.number().int().min(1).default(1000),
  /** Steps 3–4: how far apart the queue and the call count are sampled. @default "30s" */
  sampleInterval: Duration.default('30s'),
});
/** Input of `openrouter-rate-limit`, as written. */
export type OpenRouterRateLimitInput = z.input<typeof OpenRouterRateLimitInput>;

/** What {@link queueDrain} measured. */
export interface QueueDrainData {
  queueBefore: number | null;
  queueAfter: number | null;
  /** OpenRouter calls per minute over the interval. */
  requestsPerMinute: number | null;
  /** 429 answers from OpenRouter during the interval. */
  newRateLimitErrors: number | null;
  intervalMs: number;
}

async function snapshot(backendUrl: string, signal: AbortSignal) {
  const timeout = AbortSignal.any([signal, AbortSignal.timeout(10_000)]);
  const [healthAnswer, metricsAnswer] = await Promise.all([
    fetch(new URL('/api/v1/health', backendUrl), { signal: timeout }),
    fetch(new URL('/metrics', backendUrl), { signal: timeout }),
  ]);
  const health = (await healthAnswer.json()) as Partial<BackendHealthBody>;
  const samples = parseMetrics(await metricsAnswer.text());
  return {
    queue: typeof health.queue?.length === 'number' ? health.queue.length : null,
    requests: metricSum(samples, 'openrouter_api_requests_total'),
    rateLimited: metricSum(samples, 'openrouter_api_errors_total', { type: 'rate_limited' }),
    at: performance.now(),
  };
}

/** One sample of the backend for {@link queueDrain}: its queue and its OpenRouter counters. */
export interface BackendSnapshot {
  queue: number | null;
  requests: number;
  rateLimited: number;
  /** `performance.now()` when it was taken: only the difference between two means anything. */
  at: number;
}

/**
 * What {@link queueDrain} read: the two samples, or why the backend could not be sampled. A replay judges
 * them with the check's `maxPerMinute` as it is now.
 */
export type QueueDrainObservation =
  | { before: BackendSnapshot; after: BackendSnapshot; error: null }
  | { before: null; after: null; error: string };

/**
 * Steps 3 and 4 measured: the backend's queue length and its OpenRouter call and 429 counters, twice,
 * `intervalMs` apart. `ok` when the queue is not growing and the rate is within `maxPerMinute`. Replayable
 * ({@link QueueDrainObservation}).
 */
export function queueDrain(
  backendUrl: string,
  intervalMs: number,
  maxPerMinute: number,
): ReplayableCheck<QueueDrainData, QueueDrainObservation> {
  return defineCheck({
    kind: 'aiwebtest.queue-drain',
    description: `the backend's request queue and OpenRouter call rate over ${intervalMs} ms`,
    async read(ctx): Promise<QueueDrainObservation> {
      try {
        const before = await snapshot(backendUrl, ctx.signal);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, intervalMs);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(ctx.signal.reason);
          });
        });
        const after = await snapshot(backendUrl, ctx.signal);
        return { before, after, error: null };
      } catch (e) {
        ctx.signal.throwIfAborted();
        return { before: null, after: null, error: (e as Error).message };
      }
    },
    judge(seen) {
      if (seen.error !== null) {
        return finding('unknown', `the backend could not be sampled: ${seen.error}`, {
          queueBefore: null,
          queueAfter: null,
          requestsPerMinute: null,
          newRateLimitErrors: null,
          intervalMs,
        });
      }
      const { before, after } = seen;
      const minutes = (after.at - before.at) / 60_000;
      const rate = Math.round(((after.requests - before.requests) / minutes) * 10) / 10;
      const data: QueueDrainData = {
        queueBefore: before.queue,
        queueAfter: after.queue,
        requestsPerMinute: rate,
        newRateLimitErrors: after.rateLimited - before.rateLimited,
        intervalMs,
      };
      const queue = `queue ${before.queue ?? '?'} → ${after.queue ?? '?'}`;
      const growing = before.queue !== null && after.queue !== null && after.queue > before.queue;
      const summary = `${queue} in ${Math.round(intervalMs / 1000)} s, ${rate} OpenRouter calls/min (limit ${maxPerMinute}), ${data.newRateLimitErrors} new 429 answers`;
      const status = growing || rate > maxPerMinute ? 'warn' : 'ok';
      return finding(status, summary, data, [
        {
          kind: 'table',
          title: 'request processing',
          columns: ['measure', 'before', 'after'],
          rows: [
            ['queue length', before.queue, after.queue],
            ['openrouter_api_requests_total', before.requests, after.requests],
            ['429 answers (total)', before.rateLimited, after.rateLimited],
          ],
        },
      ]);
    },
  });
}

/**
 * Step 4, judged from step 3's measurement: the rate sent to OpenRouter should stay under the limit.
 * Replayable: its observation is the measured rate.
 */
export function requestRate(
  drain: QueueDrainData,
  maxPerMinute: number,
): ReplayableCheck<{ requestsPerMinute: number | null }, { requestsPerMinute: number | null }> {
  return defineCheck({
    kind: 'aiwebtest.request-rate',
    description: `OpenRouter calls per minute (limit ${maxPerMinute})`,
    read: async () => ({ requestsPerMinute: drain.requestsPerMinute }),
    judge({ requestsPerMinute: rate }): Finding<{ requestsPerMinute: number | null }> {
      if (rate === null) return finding('unknown', 'no request rate measured', { requestsPerMinute: null });
      return finding(
        rate < maxPerMinute ? 'ok' : 'warn',
        `${rate} OpenRouter calls/min (should be < ${maxPerMinute})`,
        { requestsPerMinute: rate },
      );
    },
  });
}

/** What {@link throttle} read of the backend's health: its queue and the rate it sends to OpenRouter. */
export interface ThrottleObservation {
  /** The backend answered with a health document. */
  reported: boolean;
  queueEnabled: boolean;
  /** `openrouter_max_requests_per_minute` of its config, when a number. */
  ratePerMinute: number | null;
  /** The queue's bound. */
  cap: number | null;
}

/**
 * Step 2: whether the backend now throttles what it sends to OpenRouter (queue on, the rate configured).
 * Replayable ({@link ThrottleObservation}), judged against `maxPerMinute`.
 */
export function throttle(
  backendUrl: string,
  maxPerMinute: number,
): ReplayableCheck<
  { throttled: boolean; ratePerMinute: number | null; cap: number | null },
  ThrottleObservation
> {
  return defineCheck({
    kind: 'aiwebtest.backend-throttle',
    description: 'the backend’s request queue as the throttle of incoming LLM requests',
    async read(ctx): Promise<ThrottleObservation> {
      const answer = await backendHealth(backendUrl).run(ctx);
      const health = answer.data.health;
      const rate = health?.config.openrouter_max_requests_per_minute;
      return {
        reported: health !== null,
        queueEnabled: health?.queue.enabled === true,
        ratePerMinute: typeof rate === 'number' ? rate : null,
        cap: health?.queue.max ?? null,
      };
    },
    judge({ reported, queueEnabled: enabled, ratePerMinute, cap }) {
      const throttled = enabled && ratePerMinute !== null && ratePerMinute <= maxPerMinute;
      const data = { throttled, ratePerMinute, cap };
      if (!reported) return finding('unknown', 'the backend did not report its queue', data);
      if (throttled)
        return finding(
          'ok',
          `incoming LLM requests are throttled by the backend's queue: ${ratePerMinute}/min to OpenRouter, 429 beyond ${cap} queued (no nginx on this platform; this is its limit_req_rate)`,
          data,
        );
      return finding(
        'warn',
        `incoming LLM requests are not throttled: queue ${enabled ? 'on' : 'off'}, ${ratePerMinute ?? '?'}/min (want ≤ ${maxPerMinute})`,
        data,
      );
    },
  });
}

/**
 * Runbook 7, "OpenRouter API rate limit": count OpenRouter's 429 answers, the call rate and the backend's request
 * queue; when rate limited, enable the queue at the manual's 50 requests/min, verify the backend throttles,
 * watch the queue drain and the rate stay under the limit, and tell the users. Escalates when the queue exceeds
 * 1000 and when OpenRouter keeps refusing after throttling.
 */
export function createOpenRouterRateLimitRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'openrouter-rate-limit',
    title: 'OpenRouter API rate limit',
    description:
      'Counts OpenRouter 429 answers, the call rate and the request queue; enables the backend’s request queue at 50 requests/min, verifies the throttle and the queue draining, and notifies users.',
    severity: 'P2',
    input: OpenRouterRateLimitInput,
    triggers: [onAlert({ alertname: 'OpenRouterRateLimited' })],
    tags: ['component: llm', 'runbook: 7'],
    async run({ input, step }) {
      const platform = connect();
      const { env } = platform;
      const limit = input.rateLimitErrorsAbove;
      const judgeErrors = (count: number) => ({
        status: count > limit ? ('fail' as const) : ('ok' as const),
        summary:
          count > limit
            ? `OpenRouter rate limit: ${count} 429 answers in the last minute (limit ${limit})`
            : `${count} OpenRouter 429 answers in the last minute (limit ${limit})`,
      });

      // Diagnosis, in the manual's order.
      const usage = await step.check<unknown>(
        'api-usage',
        env.prometheusUrl
          ? (prometheusQuery({
              url: env.prometheusUrl,
              query: 'openrouter_api_rate_limit_errors',
              judge: (samples) => judgeErrors(samples.reduce((s, x) => s + x.value, 0)),
            }) as Check<unknown>)
          : (backendMetrics(
              env.backendUrl,
              (samples) => judgeErrors(metricSum(samples, 'openrouter_api_rate_limit_errors')),
              ['openrouter_api_rate_limit_errors', 'openrouter_api_errors_total'],
            ) as Check<unknown>),
      );
      await step.check<unknown>(
        'request-rate',
        env.prometheusUrl
          ? (prometheusQuery({
              url: env.prometheusUrl,
              query: 'sum(rate(openrouter_api_requests_total[5m])) * 60',
              unit: 'req/min',
              judge: (samples) => {
                const perMinute = Math.round((samples[0]?.value ?? 0) * 10) / 10;
                return {
                  status: perMinute > input.maxRequestsPerMinute ? 'warn' : 'ok',
                  summary: `${perMinute} OpenRouter calls/min over 5 minutes (limit ${input.maxRequestsPerMinute})`,
                };
              },
            }) as Check<unknown>)
          : (backendMetrics(
              env.backendUrl,
              (samples) => ({
                status: 'unknown',
                summary: `${metricSum(samples, 'openrouter_api_requests_total')} OpenRouter calls since the backend started (a rate needs Prometheus; the monitor step measures one)`,
              }),
              ['openrouter_api_requests_total'],
            ) as Check<unknown>),
      );
      const queueHealth = await step.check('request-queue', backendHealth(env.backendUrl));
      const h = queueHealth.data.health;

      const rateLimited = usage.status === 'fail';
      const queueOn =
        h?.queue.enabled === true &&
        h.config.openrouter_max_requests_per_minute === input.maxRequestsPerMinute;
      const queueLength = h?.queue.length ?? 0;
      const keys = h?.circuit_breakers.openrouter?.keys as { total?: number; cooling?: number } | undefined;
      const keyNote = keys?.cooling ? `; ${keys.cooling} of ${keys.total} keys resting after a 429` : '';

      if (queueLength > input.queueRejectAbove || (h && queueLength >= h.queue.max))
        return step.escalate(
          `request queue too large (${queueLength} > ${input.queueRejectAbove}): reject new requests temporarily (the backend answers 429 beyond ${h?.queue.max ?? '?'} queued); if persistent rate limiting, upgrade the OpenRouter API plan; if urgent, use multiple API keys for load balancing`,
        );
      if (!rateLimited)
        return step.done(
          `no OpenRouter rate limiting: ${usage.summary}; queue ${queueOn ? `on at ${input.maxRequestsPerMinute}/min` : 'off'}, ${queueLength} waiting; no change needed`,
        );
      const cause = `${usage.summary}${keyNote}`;

      // Recovery, in the manual's order.
      const enabled = await step.act(
        'enable-request-queue',
        platform.k8s.setEnv({
          namespace: input.namespace,
          name: 'backend',
          env: {
            OPENROUTER_QUEUE_ENABLED: 'true',
            OPENROUTER_MAX_REQUESTS_PER_MINUTE: String(input.maxRequestsPerMinute),
          },
        }),
        { onGiveUp: step.escalate('the backend did not take the queue settings: enable them manually') },
      );
      if (enabled.status === 'skipped')
        return step.done(`${cause}; plan or run this runbook to enable the request queue`);
      if (enabled.status === 'planned')
        return step.done(
          `${cause}; would ${enabled.plan.summary}; status page: "${RATE_LIMIT_STATUS_MESSAGE}"`,
        );

      const throttled = await step.check(
        'throttle-incoming',
        throttle(env.backendUrl, input.maxRequestsPerMinute),
      );
      const drain = await step.check(
        'clear-queue',
        queueDrain(env.backendUrl, toMillis(input.sampleInterval), input.maxRequestsPerMinute),
      );
      await step.check('monitor-request-rate', requestRate(drain.data, input.maxRequestsPerMinute));
      await step.notify('notify-users', { channel: 'statuspage', message: RATE_LIMIT_STATUS_MESSAGE });
      if (!throttled.data.throttled)
        return step.escalate(
          `the backend does not throttle after the change (${throttled.summary}): throttle manually`,
        );
      if ((drain.data.newRateLimitErrors ?? 0) > 0)
        return step.escalate(
          `persistent rate limiting (${drain.data.newRateLimitErrors} new 429 answers while throttled at ${input.maxRequestsPerMinute}/min): upgrade the OpenRouter API plan; if urgent, use multiple API keys for load balancing`,
        );
      return step.done(
        `${cause}: request queue enabled at ${input.maxRequestsPerMinute}/min; ${drain.summary}`,
      );
    },
  });
}

/** `openrouter-rate-limit` on the platform the environment describes. */
export const openRouterRateLimit = createOpenRouterRateLimitRunbook();
