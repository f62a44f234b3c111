/**
 * Runbook 6 of the operations manual, "OpenRouter API complete outage", on the AI-Web-Test platform.
 *
 * Decisions where the manual leaves room:
 * - Step 1 ("switch to fallback") is `kubectl set env deployment/backend OPENROUTER_FALLBACK=true OLLAMA_URL=…`:
 *   it lives in the Deployment, so a replica started later also serves from Ollama. Step 2 ("open the circuit
 *   breaker") is the SDK's `openBreaker` through the backend's breaker control: it reaches every live replica
 *   within a second and is verified by their acknowledgements, while the env change rolls pod by pod. Both are
 *   done, as the manual does both; `switchToFallback` would duplicate step 2 for a two-provider chain.
 * - Step 5 ("switch back") is a second path of the same runbook, not a second runbook: with `phase: 'auto'` (the
 *   default) a run on a platform that is already on the fallback probes OpenRouter and switches back only when
 *   the probe answers. The breaker is then forced *closed* as the manual says, but only for `closedFor` (5
 *   minutes): a breaker that tripped during the outage would otherwise stay open until its own reset timer and
 *   keep traffic on Ollama although the probe proved OpenRouter healthy, while a breaker closed for good would
 *   no longer fail fast (the manual's prevention). After `closedFor` it judges by itself again, from closed.
 *   Forcing a breaker closed is high risk: the engine asks a second person to approve it.
 * - Step 3 (status page): `step.notify` on the `statuspage` channel with the manual's text; the status page
 *   client itself is a later issue, the engine's notifier receives the message meanwhile.
 */
import {
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  finding,
  onAlert,
  toMillis,
} from '@aiwebtest/runbooks';
import {
  breakerKeys,
  closeBreaker,
  DEFAULT_BREAKER_PREFIX,
  openBreaker,
} from '@aiwebtest/runbooks/resilience';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { connectionOf, HttpUrl, type PackRunbookOptions, PlatformNamespace } from './environment';
import { backendHealth, backendMetrics, httpProbe, metricSum, sampleRequest } from './platform-checks';
import { prometheusQuery } from './prometheus-query';

/** The manual's status-page text (step 3). */
export const OUTAGE_STATUS_MESSAGE =
  'OpenRouter API is experiencing issues. Switched to fallback model. Response times may be slower.';
/** What the status page says once OpenRouter serves again. */
export const RECOVERED_STATUS_MESSAGE =
  'OpenRouter API has recovered. Responses are served by the primary model again.';

/** Input of `openrouter-outage`. */
export const OpenRouterOutageInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /**
   * `auto`: fail over when OpenRouter is down and the platform is not on the fallback yet, switch back when it is
   * on the fallback and the probe says OpenRouter answers again. `failover` / `recover` force one path (recover
   * still refuses while the probe fails).
   * @default "auto"
   */
  phase: z.enum(['auto', 'failover', 'recover']).default('auto'),
  /** Diagnosis step 1, `curl -I https://openrouter.ai/api/v1/health`. @default the environment's `openRouterUrl` + `/health` (the manual's URL) */
  openRouterHealthUrl: HttpUrl.optional(),
  /** Diagnosis step 4, the provider's status page (shown as a link). @default "https://status.openrouter.ai" */
  statusPageUrl: HttpUrl.default('https://status.openrouter.ai'),
  /** Where the fallback listens, when the backend's health does not say (`OLLAMA_URL`). @default "http://ollama:11434" */
  ollamaUrl: HttpUrl.default('http://ollama:11434'),
  /** Recovery step 5: how long the OpenRouter breaker stays forced closed before it judges by itself. @default "5m" */
  closedFor: Duration.default('5m'),
  /** Escalation: an outage longer than this calls for temporary service degradation. @default "1h" */
  outageEscalateAfter: Duration.default('1h'),
});
/** Input of `openrouter-outage`, as written. */
export type OpenRouterOutageInput = z.input<typeof OpenRouterOutageInput>;

/** Since when the backend's OpenRouter breaker has been forced open (breaker control in Redis), or null. */
function forcedOpenSince(redis: Redis, service: string, prefix: string | undefined) {
  return defineCheck<{ forcedOpen: boolean; since: string | null; elapsedMs: number | null }>({
    kind: 'aiwebtest.breaker-forced-since',
    description: `forced state of ${service}'s openrouter breaker`,
    async run() {
      const raw = await redis.hget(
        breakerKeys(prefix ?? DEFAULT_BREAKER_PREFIX, service).forced,
        'openrouter',
      );
      let record: unknown = null;
      try {
        record = raw ? JSON.parse(raw) : null;
      } catch {
        // A record this runbook cannot read counts as "not forced open by anyone it knows of".
      }
      const parsed = z.object({ state: z.string(), forcedAt: z.number() }).safeParse(record);
      if (!parsed.success || parsed.data.state !== 'open')
        return finding('ok', 'the openrouter breaker is not forced open', {
          forcedOpen: false,
          since: null,
          elapsedMs: null,
        });
      const since = new Date(parsed.data.forcedAt).toISOString();
      const elapsedMs = Math.max(0, Date.now() - parsed.data.forcedAt);
      return finding(
        'warn',
        `the openrouter breaker has been forced open since ${since} (${Math.round(elapsedMs / 60_000)} min)`,
        { forcedOpen: true, since, elapsedMs },
      );
    },
  });
}

/** Diagnosis step 4: the provider's status page cannot be read by a machine; it is shown as a link. */
function statusPage(url: string) {
  return defineCheck<{ url: string }>({
    kind: 'aiwebtest.status-page-link',
    description: `OpenRouter status page ${url}`,
    async run() {
      return finding('unknown', `see the OpenRouter status page: ${url}`, { url }, [
        { kind: 'link', title: 'OpenRouter status', url },
      ]);
    },
  });
}

/**
 * Runbook 6, "OpenRouter API complete outage": probe OpenRouter, read the backend's OpenRouter breaker and error
 * counts; on an outage switch the backend to Ollama (env and breaker), tell the users, and check that Ollama
 * answers; once OpenRouter answers again, switch back. Escalates when the fallback fails too, and when the
 * outage outlasts `outageEscalateAfter`.
 */
export function createOpenRouterOutageRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'openrouter-outage',
    title: 'OpenRouter API complete outage',
    description:
      'Probes OpenRouter and the backend’s circuit breaker; switches the backend to the Ollama fallback and opens the breaker on an outage, notifies users, verifies the fallback answers, and switches back when OpenRouter recovers.',
    severity: 'P1',
    input: OpenRouterOutageInput,
    triggers: [onAlert({ alertname: 'OpenRouterDown' })],
    tags: ['component: llm', 'runbook: 6'],
    async run({ input, step, mode }) {
      const platform = connect();
      const { env } = platform;
      const breaker = {
        service: env.breakerService,
        ...(env.breakerPrefix ? { prefix: env.breakerPrefix } : {}),
      };
      // The fallback (Ollama) answering a generation request: checked while the outage lasts and after failover.
      const fallbackAnswers = () =>
        sampleRequest({
          backendUrl: env.backendUrl,
          agent: 'generation_agent',
          prompt: 'runbook 6: fallback check',
          expectedProvider: 'ollama',
        });

      // Diagnosis, in the manual's order.
      const probe = await step.check(
        'openrouter-status',
        httpProbe(input.openRouterHealthUrl ?? `${platform.env.openRouterUrl}/health`, 'OpenRouter API'),
      );
      const health = await step.check('circuit-breaker', backendHealth(env.backendUrl));
      await step.check<unknown>(
        'error-rate',
        env.prometheusUrl
          ? (prometheusQuery({
              url: env.prometheusUrl,
              query: 'openrouter_api_errors_total',
              judge: (samples) => {
                const total = samples.reduce((s, x) => s + x.value, 0);
                return { status: total > 0 ? 'warn' : 'ok', summary: `${total} OpenRouter errors counted` };
              },
            }) as Check<unknown>)
          : (backendMetrics(
              env.backendUrl,
              (samples) => {
                const total = metricSum(samples, 'openrouter_api_errors_total');
                const up = metricSum(samples, 'openrouter_api_up');
                return {
                  status: up === 0 ? 'fail' : total > 0 ? 'warn' : 'ok',
                  summary: `openrouter_api_up ${up}, ${total} OpenRouter errors counted by the backend`,
                };
              },
              ['openrouter_api_up', 'openrouter_api_errors_total'],
            ) as Check<unknown>),
      );
      await step.check('status-page', statusPage(input.statusPageUrl));

      const h = health.data.health;
      const openRouter = h?.circuit_breakers.openrouter;
      const onFallback = h?.config.openrouter_fallback === true || openRouter?.forced === 'open';
      const openRouterUp = probe.status === 'ok';
      const cause = !openRouterUp
        ? `OpenRouter outage: ${probe.summary}`
        : openRouter && openRouter.state === 'open' && openRouter.forced === 'auto'
          ? `OpenRouter breaker open (${openRouter.lastFailure?.message ?? 'calls failing'})`
          : null;
      const down = cause !== null;

      const path =
        input.phase === 'failover'
          ? 'failover'
          : input.phase === 'recover'
            ? 'recover'
            : onFallback
              ? 'recover'
              : down
                ? 'failover'
                : 'healthy';

      if (path === 'healthy')
        return step.done(`OpenRouter is healthy: ${probe.summary}; ${health.summary}; no change needed`);

      if (path === 'recover') {
        if (!openRouterUp) {
          // Still out: stay on the fallback, but watch how long it has lasted and whether the fallback holds.
          const since = await step.check(
            'outage-duration',
            forcedOpenSince(platform.redis.client, breaker.service, env.breakerPrefix),
          );
          const fallback = await step.check('fallback-performance', fallbackAnswers());
          if (fallback.data.httpStatus !== 200)
            return step.escalate(`fallback also fails (${fallback.summary}): queue requests for retry later`);
          const elapsedMs = since.data.elapsedMs ?? 0;
          if (elapsedMs > toMillis(input.outageEscalateAfter))
            return step.escalate(
              `OpenRouter outage exceeds ${input.outageEscalateAfter} (${Math.round(elapsedMs / 60_000)} min on the fallback): consider temporary service degradation; if persistent, contact OpenRouter support`,
            );
          return step.done(
            `OpenRouter still unreachable (${probe.summary}); staying on the fallback: ${fallback.summary}`,
          );
        }
        const switchBack = await step.act(
          'switch-back',
          platform.k8s.setEnv({
            namespace: input.namespace,
            name: 'backend',
            env: { OPENROUTER_FALLBACK: 'false' },
          }),
        );
        const reset = await step.act(
          'close-circuit-breaker',
          closeBreaker(platform.redis.client, {
            ...breaker,
            provider: 'openrouter',
            reason: `Runbook 6 step 5: OpenRouter recovered (${probe.summary})`,
            expiresAfter: input.closedFor,
          }),
        );
        if (mode !== 'execute') {
          const planned = [switchBack, reset]
            .filter((r) => r.status === 'planned')
            .map((r) => (r as { plan: { summary: string } }).plan.summary);
          return step.done(
            planned.length
              ? `OpenRouter answers again (${probe.summary}); would switch back: ${planned.join('; ')}`
              : `OpenRouter answers again (${probe.summary}); the backend is on the fallback — plan or run this runbook to switch back`,
          );
        }
        await step.notify('notify-users-recovered', {
          channel: 'statuspage',
          message: RECOVERED_STATUS_MESSAGE,
        });
        const after = await step.check(
          'recovered-provider',
          sampleRequest({
            backendUrl: env.backendUrl,
            agent: 'generation_agent',
            prompt: 'runbook 6: recovery check',
          }),
        );
        if (after.data.provider !== 'openrouter')
          return step.escalate(
            `switched back but OpenRouter still does not answer the backend (${after.summary}): if persistent, contact OpenRouter support`,
          );
        return step.done(
          `OpenRouter recovered: switched back (OPENROUTER_FALLBACK=false, breaker closed for ${input.closedFor}, then automatic); ${after.summary}`,
        );
      }

      // Failover: recovery steps 1 to 4.
      const ollamaUrl =
        typeof h?.config.ollama_url === 'string' ? (h.config.ollama_url as string) : input.ollamaUrl;
      const switched = await step.act(
        'switch-to-fallback',
        platform.k8s.setEnv({
          namespace: input.namespace,
          name: 'backend',
          env: { OPENROUTER_FALLBACK: 'true', OLLAMA_URL: ollamaUrl },
        }),
        { onGiveUp: step.escalate('the backend did not take the fallback settings: switch manually') },
      );
      const opened = await step.act(
        'open-circuit-breaker',
        openBreaker(platform.redis.client, {
          ...breaker,
          provider: 'openrouter',
          reason: `Runbook 6: ${cause ?? 'operator failover'}`,
        }),
        { onGiveUp: step.escalate('the openrouter breaker could not be forced open on every replica') },
      );
      await step.notify('notify-users', { channel: 'statuspage', message: OUTAGE_STATUS_MESSAGE });
      const what = cause ?? 'failover requested';
      if (switched.status === 'skipped')
        return step.done(`${what}; plan or run this runbook to switch the backend to Ollama`);
      if (switched.status === 'planned' || opened.status === 'planned') {
        const plans = [switched, opened]
          .filter((r) => r.status === 'planned')
          .map((r) => (r as { plan: { summary: string } }).plan.summary);
        return step.done(`${what}; would ${plans.join('; ')}; status page: "${OUTAGE_STATUS_MESSAGE}"`);
      }

      // Step 4: monitor the fallback: the current provider should be ollama, and it should answer.
      const current = await step.check('fallback-provider', backendHealth(env.backendUrl));
      const sample = await step.check('fallback-performance', fallbackAnswers());
      if (sample.data.httpStatus !== 200 || current.data.health?.provider_current !== 'ollama')
        return step.escalate(
          `fallback also fails (${sample.summary}; ${current.summary}): queue requests for retry later`,
        );
      return step.done(
        `${what}: switched the backend to Ollama (OPENROUTER_FALLBACK=true, openrouter breaker forced open); ${sample.summary}`,
      );
    },
  });
}

/** `openrouter-outage` on the platform the environment describes. */
export const openRouterOutage = createOpenRouterOutageRunbook();
