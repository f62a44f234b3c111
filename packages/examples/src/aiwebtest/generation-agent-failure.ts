/**
 * Runbook 2 of the operations manual, "Generation Agent Failure": generated tests of low quality
 * (confidence < 0.7) or slow. Diagnosis: the agent's CPU and memory against its limits, the ERROR lines of
 * its logs, OpenRouter's rate limits and breaker, its recent decisions; recovery: scale up only when it is
 * resource constrained, clear its cache only when it holds stale entries, restart it, and judge the
 * confidence of the decisions it makes afterwards.
 */
import {
  type ActResult,
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  finding,
  onAlert,
  type ReplayableCheck,
  toMillis,
} from '@aiwebtest/runbooks';
import type { SqlCheckObservation } from '@aiwebtest/runbooks/postgres';
import { z } from 'zod';
import { openRouterConnectivity } from './agent-failure';
import { type AiWebTest, connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';
import { prometheusQuery } from './prometheus-query';

/** The generation agent's Deployment (and `app` label). */
export const GENERATION_AGENT = 'generation-agent';
/**
 * Where the generation agent caches its prompts' context in the platform's Redis: `agent:generation:cache:*`.
 * The lab's activity loop and chaos scenario use the same keys (src/lab/activity.ts).
 */
export const GENERATION_CACHE_PREFIX = 'agent:generation:cache:';
/** The hash field that marks a cache entry as stale (`HSET agent:generation:cache:<id> stale 1`). */
export const STALE_FIELD = 'stale';

/** Input of `generation-agent-failure`. */
export const GenerationAgentFailureInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** Below this mean confidence the generated tests are of low quality (the alert's line). @default 0.7 */
  minConfidence: z.number().min(0).max(1).default(0.7),
  /** The confidence the agent's new decisions must reach after recovery (the manual's "should be >0.85"). @default 0.85 */
  targetConfidence: z.number().min(0).max(1).default(0.85),
  /** Decisions read by the decision-log step (the manual's `LIMIT 10`). @default 10 */
  decisions: z.number().int().min(1).max(1000).default(10),
  /** A decision slower than this is a slow response (the manual's ">60 seconds"). @default "60s" */
  slowAfter: Duration.default('60s'),
  /**
   * Resource constrained: a container at or above this fraction of its CPU limit. 0.9 of the agents' 2-core
   * limit is 1.8 cores, where a pod is throttled and its generations slow down; below it, more replicas
   * would not help. @default 0.9
   */
  cpuLimitFraction: z.number().gt(0).max(1).default(0.9),
  /** Resource constrained: a container at or above this fraction of its memory limit (close to an OOM kill). @default 0.9 */
  memoryLimitFraction: z.number().gt(0).max(1).default(0.9),
  /** Replicas to scale up to when resource constrained (the manual's `--replicas=3`). @default 3 */
  replicas: z.number().int().min(1).max(50).default(3),
  /** How long to wait for new decisions after the restart to judge their confidence. @default "60s" */
  verifyTimeout: Duration.default('60s'),
  /** New decisions needed to judge the generation quality. @default 4 */
  verifyDecisions: z.number().int().min(1).max(1000).default(4),
});
/** Input of `generation-agent-failure`. */
export type GenerationAgentFailureInput = z.input<typeof GenerationAgentFailureInput>;

/** What the decision-log step found. */
export interface DecisionLogData {
  decisions: number;
  /** Mean confidence of the decisions read; `null` without decisions. */
  meanConfidence: number | null;
  /** Decisions slower than `slowAfter`. */
  slow: number;
}

/**
 * The manual's `SELECT * FROM agent_decisions WHERE agent_id LIKE 'generation%' …`, judged by its mean
 * confidence. Replayable: its observation is the SQL result, judged against `minConfidence` and
 * `slowAfterMs` again.
 */
export function decisionLog(
  platform: AiWebTest,
  o: { limit: number; minConfidence: number; slowAfterMs: number },
): ReplayableCheck<DecisionLogData, SqlCheckObservation> {
  const query = platform.db.sqlCheck({
    name: `Last ${o.limit} generation agent decisions`,
    sql: `SELECT id, agent_id, confidence, execution_time_ms, decision, created_at
            FROM agent_decisions
           WHERE agent_id LIKE $1
           ORDER BY created_at DESC
           LIMIT $2`,
    params: ['generation%', o.limit],
    measure: 'rows',
  });
  return defineCheck({
    kind: 'aiwebtest.generation-decisions',
    description: query.description ?? '',
    read: (ctx) => query.read(ctx),
    judge(seen) {
      const f = query.judge(seen);
      const rows = f.data.rows as { confidence: number; execution_time_ms: number }[];
      const mean = rows.length ? rows.reduce((s, r) => s + Number(r.confidence), 0) / rows.length : null;
      const slow = rows.filter((r) => Number(r.execution_time_ms) > o.slowAfterMs).length;
      const data = { decisions: rows.length, meanConfidence: mean, slow };
      if (mean === null)
        return finding('unknown', 'no generation agent decisions recorded', data, f.evidence);
      const m = mean.toFixed(2);
      const slowText = slow ? `; ${slow} slower than ${o.slowAfterMs / 1000} s` : '';
      if (mean < o.minConfidence)
        return finding(
          'fail',
          `low generation quality: mean confidence ${m} of the last ${rows.length} decisions, below ${o.minConfidence}${slowText}`,
          data,
          f.evidence,
        );
      return finding(
        slow ? 'warn' : 'ok',
        `mean confidence ${m} of the last ${rows.length} generation decisions${slowText}`,
        data,
        f.evidence,
      );
    },
  });
}

/** What the stale-cache step found. */
export interface StaleCacheData {
  keys: number;
  stale: number;
}

/** Counts the generation agent's cache entries under its prefix and those marked stale. Reads only. */
function staleCache(platform: AiWebTest): Check<StaleCacheData> {
  return defineCheck<StaleCacheData>({
    kind: 'aiwebtest.generation-cache-staleness',
    description: `Entries of ${GENERATION_CACHE_PREFIX}* marked ${STALE_FIELD}`,
    async run(ctx) {
      const { keys, stale } = await platform.redis.instance.run(
        'scan the generation cache',
        async (client) => {
          let cursor = '0';
          let keys = 0;
          let stale = 0;
          do {
            ctx.signal.throwIfAborted();
            const [next, batch] = await client.scan(
              cursor,
              'MATCH',
              `${GENERATION_CACHE_PREFIX}*`,
              'COUNT',
              500,
            );
            cursor = next;
            keys += batch.length;
            if (batch.length) {
              const pipeline = client.pipeline();
              for (const key of batch) pipeline.hget(key, STALE_FIELD);
              for (const [error, value] of (await pipeline.exec()) ?? []) {
                // A string entry answers WRONGTYPE to HGET: it has no stale marker. Any other error must not
                // pass for "not stale".
                if (error && !/^WRONGTYPE/.test(error.message)) throw error;
                if (!error && value === '1') stale++;
              }
            }
          } while (cursor !== '0' && keys < 1_000_000);
          return { keys, stale };
        },
        ctx.signal,
      );
      const data = { keys, stale };
      if (stale)
        return finding(
          'warn',
          `stale data in the generation agent cache: ${stale} of ${keys} entries under ${GENERATION_CACHE_PREFIX} marked stale`,
          data,
        );
      return finding('ok', `no stale entries among ${keys} under ${GENERATION_CACHE_PREFIX}`, data);
    },
  });
}

/** What the verify-quality step found. */
export interface QualityData {
  decisions: number;
  meanConfidence: number | null;
  since: string;
}

/**
 * The manual's "run test generation request and check confidence score": the decisions the agent makes
 * after the restart (created after `since`), waited for until `count` arrive or `timeoutMs` passes,
 * `ok` when their mean confidence is at least `target`. Replayable: its observation is the last count and
 * mean, judged against `target` again.
 */
export function generationQuality(
  platform: AiWebTest,
  o: { since: string; count: number; target: number; timeoutMs: number },
): ReplayableCheck<QualityData, QualityData> {
  return defineCheck({
    kind: 'aiwebtest.generation-quality',
    description: `Confidence of generation decisions made since ${o.since}`,
    async read(ctx): Promise<QualityData> {
      const deadline = Date.now() + o.timeoutMs;
      let decisions = 0;
      let mean: number | null = null;
      for (;;) {
        const { rows } = await platform.db.db.query<{ n: number; mean: number | null }>(
          `SELECT count(*)::int AS n, avg(confidence)::float8 AS mean
             FROM agent_decisions
            WHERE agent_type = 'generation' AND created_at > $1::timestamptz`,
          [o.since],
          { signal: ctx.signal },
        );
        decisions = rows[0]?.n ?? 0;
        mean = rows[0]?.mean ?? null;
        if (decisions >= o.count || Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, 250));
        ctx.signal.throwIfAborted();
      }
      return { decisions, meanConfidence: mean, since: o.since };
    },
    judge(data) {
      const { decisions, meanConfidence: mean } = data;
      if (mean === null)
        return finding(
          'unknown',
          `no generation decisions since the restart within ${o.timeoutMs / 1000} s: cannot judge quality`,
          data,
        );
      const m = mean.toFixed(2);
      return mean >= o.target
        ? finding(
            'ok',
            `generation quality restored: mean confidence ${m} of ${decisions} new decisions (≥ ${o.target})`,
            data,
          )
        : finding(
            'fail',
            `confidence remains low: mean ${m} of ${decisions} new decisions (< ${o.target})`,
            data,
          );
    },
  });
}

/** A step that records why a conditional recovery step of the manual did not run. */
function skipped(reason: string): Check<{ skipped: true }> {
  return defineCheck({
    kind: 'aiwebtest.skipped',
    description: reason,
    async run() {
      return finding('ok', `skipped: ${reason}`, { skipped: true as const });
    },
  });
}

/**
 * Runbook 2 on the platform's Kubernetes, database and Redis. The manual clears the cache with
 * `redis-cli FLUSHDB`, which empties the whole database the agent pod points at: the backend's request
 * queue, its breaker control and every other agent's cache with it. This runbook deletes only the
 * generation agent's entries (`agent:generation:cache:*`, with the SDK's clearCache: SCAN + UNLINK of that
 * prefix, hashes and strings, with or without a TTL), which is what "clear agent cache" means.
 */
export function createGenerationAgentFailureRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'generation-agent-failure',
    title: 'Generation agent failure recovery',
    description:
      'Low-quality or slow test generation: checks the generation agent’s CPU and memory against its limits, the ERROR lines of its logs, OpenRouter’s rate limits and breaker, and the confidence of its last decisions. Scales it to 3 replicas only when a pod is at ≥ 90% of its CPU or memory limit, clears only its own cache keys (agent:generation:cache:*, never FLUSHDB of the shared Redis database, which would also drop the request queue and breaker state) only when entries are stale, restarts it, and requires the confidence of its new decisions to reach 0.85; escalates when it stays low (check the OpenRouter model status, switch model version).',
    severity: 'P2',
    input: GenerationAgentFailureInput,
    triggers: [onAlert({ alertname: 'GenerationAgentLowConfidence' })],
    tags: ['component: agents', 'runbook: 2'],
    async run({ input, step }) {
      const platform = connect();
      const { namespace } = input;
      const k8s = platform.k8s;
      const name = GENERATION_AGENT;
      const selector = `app=${name}`;

      // Diagnosis 1-4.
      const usage = await step.check(
        'resource-usage',
        k8s.resourceUsage({
          namespace,
          selector,
          cpuWarn: input.cpuLimitFraction,
          memoryWarn: input.memoryLimitFraction,
        }),
      );
      const constrained = usage.status === 'warn';
      const errors = await step.check(
        'error-logs',
        k8s.podLogs({ namespace, selector, tailLines: 200, pattern: 'ERROR' }),
      );
      const openRouter = await step.check('openrouter', openRouterConnectivity(platform.env.backendUrl));
      const rateLimits = await step.check(
        'openrouter-rate-limits',
        prometheusQuery({
          url: platform.env.prometheusUrl,
          query: 'sum(openrouter_api_rate_limit_errors)',
          judge(samples) {
            const n = samples[0]?.value;
            if (n === undefined)
              return { status: 'unknown', summary: 'no openrouter_api_rate_limit_errors series' };
            return n > 10
              ? {
                  status: 'warn',
                  summary: `OpenRouter rate limited: ${n} rate-limit errors in the last minute`,
                }
              : { status: 'ok', summary: `${n} OpenRouter rate-limit errors in the last minute` };
          },
        }),
      );
      const decisions = await step.check(
        'decision-logs',
        decisionLog(platform, {
          limit: input.decisions,
          minConfidence: input.minConfidence,
          slowAfterMs: toMillis(input.slowAfter),
        }),
      );
      const cache = await step.check('stale-cache', staleCache(platform));
      const stale = cache.data.stale > 0;

      const causes = [
        decisions.status === 'fail' || decisions.status === 'warn' ? decisions.summary : null,
        constrained ? `resource constrained: ${usage.summary}` : null,
        stale ? cache.summary : null,
        errors.status === 'warn' ? errors.summary : null,
        openRouter.status === 'fail' ? openRouter.summary : null,
        rateLimits.status === 'warn' ? rateLimits.summary : null,
      ].filter((c): c is string => c !== null);
      if (causes.length === 0)
        return step.done(
          `generation agent healthy: ${decisions.summary}; ${usage.summary}; no change needed`,
        );

      // Recovery 1: scale up, only when resource constrained, and never down.
      const planned: string[] = [];
      const changed: string[] = [];
      const note = (r: ActResult) => {
        if (r.status === 'planned') planned.push(r.plan.summary);
        if (r.status === 'applied') changed.push(r.plan.summary);
      };
      if (constrained) {
        const status = await step.check('replicas', k8s.deploymentStatus({ namespace, name }));
        if (status.data.replicas < input.replicas) {
          note(
            await step.act('scale-up', k8s.scale({ namespace, name, replicas: input.replicas }), {
              onGiveUp: step.escalate(
                `resource constrained and scaling ${name} to ${input.replicas} replicas failed: scale horizontally (add more pods) by hand`,
              ),
            }),
          );
        } else {
          await step.check(
            'scale-up-skipped',
            skipped(
              `already ${status.data.replicas} replicas (≥ ${input.replicas}); more pods need a person`,
            ),
          );
        }
      } else {
        await step.check(
          'scale-up-skipped',
          skipped(
            `not resource constrained (no container at ≥ ${input.cpuLimitFraction * 100}% of its CPU or ${input.memoryLimitFraction * 100}% of its memory limit)`,
          ),
        );
      }

      // Recovery 2: clear the agent's own cache, only when it holds stale entries.
      if (stale) {
        note(
          await step.act(
            'clear-cache',
            platform.redis.clearCache({
              prefix: GENERATION_CACHE_PREFIX,
              types: ['string', 'hash'],
              includePersistent: true,
            }),
          ),
        );
      } else {
        await step.check('clear-cache-skipped', skipped(`no stale entries under ${GENERATION_CACHE_PREFIX}`));
      }

      // Recovery 3: restart.
      const restart = await step.act('restart', k8s.rolloutRestart({ namespace, name, timeout: '5m' }), {
        retry: { maxAttempts: 3, minDelay: '1s' },
        onGiveUp: step.escalate(`restart of ${name} failed after 3 attempts: page on-call engineer`, {
          severity: 'P1',
        }),
      });
      note(restart);

      if (restart.status === 'skipped')
        return step.done(
          `generation agent degraded: ${causes.join('; ')}; plan or execute this runbook to recover it`,
        );
      if (restart.status === 'planned') return step.done(`would ${planned.join('; then ')}`);
      if (restart.status !== 'applied') return step.done(`generation agent: ${causes.join('; ')}`);

      // Recovery 4-5: judge the decisions made after the restart; the dashboard's view as a finding.
      const quality = await step.check(
        'verify-quality',
        generationQuality(platform, {
          since: restart.applied.appliedAt,
          count: input.verifyDecisions,
          target: input.targetConfidence,
          timeoutMs: toMillis(input.verifyTimeout),
        }),
      );
      await step.check(
        'monitor-confidence',
        prometheusQuery({
          url: platform.env.prometheusUrl,
          query: 'agent_confidence{agent="generation_agent"}',
          judge(samples) {
            const v = samples[0]?.value;
            if (v === undefined)
              return { status: 'unknown', summary: 'no agent_confidence for generation_agent yet' };
            if (v < input.minConfidence)
              return {
                status: 'fail',
                summary: `agent_confidence ${v.toFixed(2)} below ${input.minConfidence}`,
              };
            return v >= input.targetConfidence
              ? { status: 'ok', summary: `agent_confidence ${v.toFixed(2)} (≥ ${input.targetConfidence})` }
              : {
                  status: 'warn',
                  summary: `agent_confidence ${v.toFixed(2)} below ${input.targetConfidence}`,
                };
          },
        }),
      );
      if (constrained) {
        const after = await step.check(
          'verify-resources',
          k8s.resourceUsage({
            namespace,
            selector,
            cpuWarn: input.cpuLimitFraction,
            memoryWarn: input.memoryLimitFraction,
          }),
        );
        if (after.status === 'warn')
          return step.escalate(
            `still resource constrained after scaling to ${input.replicas} replicas (${after.summary}): scale horizontally (add more pods)`,
          );
      }
      if (quality.status === 'fail')
        return step.escalate(
          `${quality.summary}: check OpenRouter API model status (${openRouter.summary}); if it is a model issue, switch to a different model version`,
        );
      if (quality.status !== 'ok')
        return step.escalate(`${changed.join('; ')}, but ${quality.summary}: page on-call engineer`);
      return step.done(`${changed.join('; ')}; ${quality.summary}`);
    },
  });
}

/** `generation-agent-failure` on the platform the environment describes (env vars, or the running lab's lab.json). */
export const generationAgentFailure = createGenerationAgentFailureRunbook();
