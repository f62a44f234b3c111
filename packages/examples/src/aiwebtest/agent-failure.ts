/**
 * Runbook 1 of the operations manual, "Requirements Agent Failure", for any of the six agents: the agent's
 * pods, logs and `agent_health`, OpenRouter as the backend's breakers see it; then a rollout restart, the
 * wait for readiness, the agent's health, a sample request and its success rate. A restart that does not
 * cure it rolls back to the previous revision (with a second person's approval) or pages on-call.
 */
import {
  type ActResult,
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  type Finding,
  finding,
  isBudgetExhaustedError,
  isRunbookError,
  isVerificationFailedError,
  onAlert,
  type ReplayableCheck,
  toMillis,
} from '@aiwebtest/runbooks';
import type { SqlCheckObservation } from '@aiwebtest/runbooks/postgres';
import { z } from 'zod';
import { AGENTS, agentMetricLabel } from '../lab/platform/manifests';
import { type AiWebTest, connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';
import { type BackendHealthData, backendHealth, sampleRequest } from './platform-checks';
import { prometheusQuery } from './prometheus-query';

/** Input of `agent-failure`: which agent is down, and where. */
export const AgentFailureInput = z.object({
  /** The agent's Deployment (its pods carry `app=<agent>`), as the AgentDown alert's `agent` label names it. */
  agent: z.enum(AGENTS, { message: `expected one of ${AGENTS.join(', ')}` }),
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** How long the restarted pods may take to be ready (the manual's `kubectl wait --timeout=60s`). @default "60s" */
  readyTimeout: Duration.default('60s'),
  /** A sample request slower than this is a warning (the manual's slow-response threshold). @default "60s" */
  sampleSlowAfter: Duration.default('60s'),
  /** The window of the success-rate finding (the Grafana panel's). @default "15m" */
  successWindow: z
    .string()
    .regex(/^\d+(s|m|h)$/, 'expected a window such as "15m"')
    .default('15m'),
  /** Decisions at or above this confidence count as successful (the manual's low-quality line). @default 0.7 */
  minConfidence: z.number().min(0).max(1).default(0.7),
  /** A success rate below this is a warning. @default 0.9 */
  minSuccessRate: z.number().min(0).max(1).default(0.9),
});
/** Input of `agent-failure`. */
export type AgentFailureInput = z.input<typeof AgentFailureInput>;

/** What {@link openRouterConnectivity} found. */
export interface OpenRouterConnectivityData {
  /** True when the backend's OpenRouter breaker is open or OpenRouter is marked down. */
  down: boolean;
  /** The breaker's state, `null` when the backend could not be asked or has no such breaker. */
  breaker: string | null;
  provider: string | null;
}

/**
 * The manual's `curl -I https://openrouter.ai/api/v1/health` from inside an agent pod, as the platform sees
 * it: the backend's `openrouter` circuit breaker. An open breaker (tripped by failures or forced open) is
 * the platform's word that OpenRouter is down; probing OpenRouter from here would test our network, not the
 * agents'.
 */
export function openRouterConnectivity(backendUrl: string): Check<OpenRouterConnectivityData> {
  const health = backendHealth(backendUrl);
  return defineCheck<OpenRouterConnectivityData>({
    kind: 'aiwebtest.openrouter-connectivity',
    description: 'OpenRouter as the backend’s circuit breakers see it',
    async run(ctx) {
      const f: Finding<BackendHealthData> = await health.run(ctx);
      const h = f.data.health;
      if (!h)
        return finding(
          'unknown',
          `cannot tell whether OpenRouter is up: ${f.summary}`,
          { down: false, breaker: null, provider: null },
          f.evidence,
        );
      const b = h.circuit_breakers.openrouter;
      if (!b)
        return finding(
          'unknown',
          'the backend has no openrouter breaker',
          { down: false, breaker: null, provider: h.provider_current },
          f.evidence,
        );
      const data = { down: b.state === 'open' || !b.up, breaker: b.state, provider: h.provider_current };
      const forced = b.forced === 'auto' ? '' : ` (forced ${b.forced})`;
      const last = b.lastFailure ? `; last failure: ${b.lastFailure.reason}` : '';
      if (data.down)
        return finding(
          'fail',
          `OpenRouter API down: breaker ${b.state}${forced}, traffic on ${h.provider_current ?? 'no provider'}${last}`,
          data,
          f.evidence,
        );
      return finding(
        b.state === 'closed' ? 'ok' : 'warn',
        `OpenRouter API reachable: breaker ${b.state}${forced}, provider ${h.provider_current ?? 'none'}`,
        data,
        f.evidence,
      );
    },
  });
}

/** What the success-rate check found. */
export interface SuccessRateData {
  decisions: number;
  successful: number;
  /** `successful / decisions`; `null` without decisions. */
  rate: number | null;
}

/**
 * The Grafana panel "Agents Dashboard > <Agent> > Success Rate" as a finding: the share of the agent's
 * decisions in the window with a confidence at or above `minConfidence`. Replayable: its observation is the
 * SQL result, judged against `minRate` again (`minConfidence` is in the query).
 */
export function successRate(
  platform: AiWebTest,
  o: { agentType: string; window: string; minConfidence: number; minRate: number },
): ReplayableCheck<SuccessRateData, SqlCheckObservation> {
  const query = platform.db.sqlCheck({
    name: `Success rate of ${o.agentType} decisions in the last ${o.window}`,
    sql: `SELECT count(*)::int AS decisions,
                 (count(*) FILTER (WHERE confidence >= $2))::int AS successful,
                 ((count(*) FILTER (WHERE confidence >= $2))::float8 / NULLIF(count(*), 0)) AS value
            FROM agent_decisions
           WHERE agent_type = $1 AND created_at > now() - $3::interval`,
    params: [o.agentType, o.minConfidence, o.window],
    measure: 'value',
    thresholds: { warn: o.minRate, direction: 'below' },
  });
  return defineCheck({
    kind: 'aiwebtest.agent-success-rate',
    description: query.description ?? '',
    read: (ctx) => query.read(ctx),
    judge(seen) {
      const f = query.judge(seen);
      const row = f.data.rows[0] as { decisions?: number; successful?: number } | undefined;
      const data = {
        decisions: Number(row?.decisions ?? 0),
        successful: Number(row?.successful ?? 0),
        rate: f.data.value,
      };
      if (data.rate === null)
        return finding('unknown', `no ${o.agentType} decisions in the last ${o.window}`, data, f.evidence);
      const pct = `${Math.round(data.rate * 1000) / 10}%`;
      const summary = `success rate of ${o.agentType} ${pct} (${data.successful}/${data.decisions} decisions with confidence ≥ ${o.minConfidence} in the last ${o.window})`;
      return finding(
        data.rate < o.minRate ? 'warn' : 'ok',
        data.rate < o.minRate ? `${summary}, below ${o.minRate * 100}%` : summary,
        data,
        f.evidence,
      );
    },
  });
}

const RESTART_ATTEMPTS = 3;

/**
 * Runbook 1 on the platform's Kubernetes, database and backend. Decisions, in the manual's order:
 * - pods ready and `agent_health` not 0: nothing to restart; an OpenRouter outage is escalated to the
 *   `openrouter-outage` runbook (switch to the fallback model), otherwise the agent is healthy;
 * - otherwise restart the Deployment (the restart's own verify waits for the rollout), wait for ready,
 *   verify the pods' health, send a sample request, report the success rate;
 * - the restart cannot be made after 3 attempts (API errors, or the budget of 3 restarts an hour is spent):
 *   page on-call;
 * - the restart did not cure it (the new pods fail too): roll back to the revision that ran before the
 *   restart's own, when there is one (risk high: a second person approves), else page on-call.
 */
export function createAgentFailureRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'agent-failure',
    title: 'Agent failure recovery',
    description:
      'Checks an AI-Web-Test agent’s pods, logs, agent_health and OpenRouter (the backend’s breakers); restarts its Deployment, waits for it to be ready, verifies its health with a sample request and its success rate. Pages on-call when the restart cannot be made after 3 attempts, rolls back to the previous revision (approved by a second person) when the restart does not cure it, and sends an OpenRouter outage to the openrouter-outage runbook (switch to the fallback model).',
    severity: 'P1',
    input: AgentFailureInput,
    triggers: [onAlert({ alertname: 'AgentDown' })],
    tags: ['component: agents', 'runbook: 1'],
    async run({ input, step }) {
      const platform = connect();
      const { namespace, agent } = input;
      const k8s = platform.k8s;
      const selector = `app=${agent}`;
      const label = agentMetricLabel(agent);
      const readyTimeout = input.readyTimeout;
      const switchToFallback =
        'OpenRouter API is down: switch to the fallback model (run the openrouter-outage runbook)';

      // Diagnosis 1-4.
      const pods = await step.check('pod-status', k8s.podStatus({ namespace, selector }));
      await step.check('logs', k8s.podLogs({ namespace, selector, tailLines: 100 }));
      const health = await step.check(
        'agent-metrics',
        prometheusQuery({
          url: platform.env.prometheusUrl,
          query: `agent_health{agent="${label}"}`,
          judge(samples) {
            if (samples.length === 0) return { status: 'unknown', summary: `no agent_health for ${label}` };
            const down = samples.some((s) => s.value === 0);
            return down
              ? { status: 'fail', summary: `agent_health{agent="${label}"} is 0: ${agent} is down` }
              : { status: 'ok', summary: `agent_health{agent="${label}"} is 1` };
          },
        }),
      );
      const openRouter = await step.check('openrouter', openRouterConnectivity(platform.env.backendUrl));

      if (pods.status !== 'fail' && health.status !== 'fail') {
        // The pods are fine: a restart would replace healthy pods and cure nothing.
        if (openRouter.data.down)
          return step.escalate(`${switchToFallback}; ${agent}'s pods are ready (${pods.summary})`, {
            to: 'openrouter-outage',
          });
        return step.done(`${agent} is healthy: ${pods.summary}; ${openRouter.summary}; no restart needed`);
      }

      // What a rollback would go back to is the revision before the one running now: after the restart
      // the Deployment's "previous" revision is this one, with the same image.
      const history = await step.check('revisions', k8s.rolloutHistory({ namespace, name: agent }));
      const previous = history.data.previous;

      // Recovery 1: restart (its verify waits for the rollout, and fails fast on crash-looping new pods).
      let restart: ActResult | undefined;
      let persistent: string | undefined;
      try {
        restart = await step.act(
          'restart',
          k8s.rolloutRestart({ namespace, name: agent, timeout: readyTimeout }),
          { retry: { maxAttempts: RESTART_ATTEMPTS, minDelay: '1s' } },
        );
      } catch (e) {
        if (isVerificationFailedError(e)) {
          persistent = e.message;
        } else {
          const cause = (e as { cause?: unknown }).cause;
          const exhausted = isBudgetExhaustedError(e) || isBudgetExhaustedError(cause);
          // A retriable error that survived every attempt, or restarts spent for the hour: a person now.
          if (exhausted || (isRunbookError(e) && e.retriable))
            return step.escalate(
              `restart of ${agent} failed after ${RESTART_ATTEMPTS} attempts: page on-call engineer (${
                exhausted ? 'restart budget of 3 per hour spent' : (e as Error).message
              })`,
              { severity: 'P1' },
            );
          throw e;
        }
      }

      if (restart?.status === 'skipped')
        return step.done(
          `${agent} is down: ${pods.summary}; ${openRouter.summary}; plan or execute this runbook to restart it`,
        );
      if (restart?.status === 'planned') {
        const fallback =
          previous === null
            ? 'if it does not cure it, page on-call (no previous revision)'
            : `if it does not cure it, roll back to revision ${previous} (needs approval)`;
        return step.done(`would ${restart.plan.summary}; ${fallback}`);
      }

      if (persistent === undefined) {
        // Recovery 2-5, after a restart that rolled out.
        await step.check('wait-ready', k8s.waitForRollout({ namespace, name: agent, timeout: readyTimeout }));
        const verify = await step.check('verify-health', k8s.podStatus({ namespace, selector }));
        if (verify.status === 'fail') {
          persistent = verify.summary;
        } else {
          const sample = await step.check(
            'sample-request',
            sampleRequest({
              backendUrl: platform.env.backendUrl,
              agent: label,
              prompt: 'Test user login',
              slowAfterMs: toMillis(input.sampleSlowAfter),
            }),
          );
          const rate = await step.check(
            'success-rate',
            successRate(platform, {
              agentType: agent.replace(/-agent$/, ''),
              window: input.successWindow,
              minConfidence: input.minConfidence,
              minRate: input.minSuccessRate,
            }),
          );
          if (openRouter.data.down || sample.status === 'fail') {
            return openRouter.data.down
              ? step.escalate(`restarted ${agent} (${verify.summary}), but ${switchToFallback}`, {
                  to: 'openrouter-outage',
                })
              : step.escalate(
                  `restarted ${agent} (${verify.summary}), but ${sample.summary}: page on-call engineer`,
                );
          }
          return step.done(
            `restarted deployment/${agent}: ${verify.summary}; ${sample.summary}; ${rate.summary}`,
          );
        }
      }

      // Persistent issue: the manual's "rollback to previous deployment".
      if (previous === null)
        return step.escalate(
          `restart did not cure ${agent} (${persistent}) and there is no previous revision to roll back to: page on-call engineer`,
          { severity: 'P1' },
        );
      const rollback = await step.act(
        'rollback',
        k8s.rolloutUndo({ namespace, name: agent, toRevision: previous, timeout: readyTimeout }),
        {
          onGiveUp: step.escalate(
            `restart and rollback to revision ${previous} did not cure ${agent}: page on-call engineer`,
            { severity: 'P1' },
          ),
        },
      );
      if (rollback.status !== 'applied' && rollback.status !== 'noop')
        return step.done(`restart did not cure ${agent} (${persistent}); rollback ${rollback.status}`);
      const after = await step.check('rollback-health', k8s.podStatus({ namespace, selector }));
      if (after.status === 'fail')
        return step.escalate(
          `rolled back ${agent} to revision ${previous}, still failing (${after.summary}): page on-call engineer`,
          { severity: 'P1' },
        );
      return step.done(
        `restart did not cure ${agent} (${persistent}); rolled back to revision ${previous}: ${after.summary}`,
      );
    },
  });
}

/** `agent-failure` on the platform the environment describes (env vars, or the running lab's lab.json). */
export const agentFailure = createAgentFailureRunbook();
