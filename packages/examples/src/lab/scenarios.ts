/**
 * The chaos catalog: one incident per runbook (1–13), injected for real into a running lab. Each incident is
 * made so that the runbook's own steps heal it (a rollout restart replaces crash-looping pods, `FLUSHDB` clears
 * the stale cache, scaling the Grid adds slots, …); `undo()` exists for tests and `aiwebtest-lab heal`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { z } from 'zod';
import { GENERATION_CACHE_PATTERN, STALE_FIELD } from './activity';
import { startTraffic } from './backend';
import { insertStuckExecutions, runSlowQueries } from './database/chaos';
import { parseInput } from './database/lab-database';
import { injectTotalFailure, recreateWorkloads } from './dr/total-failure';
import { gridSessions } from './grid-sessions';
import type { LabParts } from './lab-parts';
import { injectDataDrift, injectModelAccuracyDrop } from './ml/ml-scenarios';
import { agentClassName } from './platform/agent-logs';
import { SELENIUM_HUB } from './platform/manifests';
import { podsMatching } from './platform/platform-status';
import { injectLoginAttack } from './security/login-attack';

export const SCENARIOS = z.enum(
  [
    'requirements-agent-down',
    'generation-quality-drop',
    'execution-stuck',
    'postgres-connection-loss',
    'database-slow',
    'openrouter-outage',
    'openrouter-rate-limit',
    'api-latency',
    'test-execution-slow',
    'model-accuracy-drop',
    'data-drift',
    'login-attack',
    'total-failure',
  ],
  { message: 'expected a scenario name; `aiwebtest-lab chaos --list` shows them' },
);
export type ScenarioName = z.infer<typeof SCENARIOS>;

/** An incident in progress. */
export interface Injected {
  /** What was done, for the operator. */
  description: string;
  /** Takes the incident back (tests, `aiwebtest-lab heal`); safe after a runbook healed it, and twice. */
  undo(): Promise<void>;
}

export const ScenarioOptions = z.strictObject({
  /**
   * How long an incident on the provider's side (OpenRouter outage, rate limit, latency) lasts before the
   * provider recovers by itself: the runbooks mitigate those, they cannot mend OpenRouter. @default 600000
   */
  providerIncidentMs: z
    .number()
    .int()
    .min(100)
    .max(24 * 3600_000)
    .default(600_000),
});
export type ScenarioOptions = z.input<typeof ScenarioOptions>;

export interface Scenario {
  name: ScenarioName;
  /** The id of the runbook that handles it. */
  runbook: string;
  description: string;
  inject(parts: LabParts, options?: ScenarioOptions): Promise<Injected>;
}

/** `undo` runs once; later calls wait for the first. */
function injected(description: string, undo: () => Promise<void>): Injected {
  let done: Promise<void> | undefined;
  return {
    description,
    undo: () => {
      done ??= undo();
      return done;
    },
  };
}

/**
 * A selector of the CURRENT pods of an app (`app=x,pod-template-hash in (…)`): a fault on it hits the pods
 * there are now, and a rollout restart, whose new pods carry a new hash, leaves it behind. A fault on `app=x`
 * alone would follow the new pods too, and no runbook step could ever cure it.
 */
export function currentPodsSelector(parts: LabParts, app: string): string {
  const pods = podsMatching(parts.simulator.store, parts.namespace, { app });
  for (const label of ['pod-template-hash', 'controller-revision-hash']) {
    const values = [...new Set(pods.map((p) => p.metadata.labels?.[label]).filter((v): v is string => !!v))];
    if (values.length > 0) return `app=${app},${label} in (${values.join(',')})`;
  }
  throw new Error(`no pods of app=${app} in ${parts.namespace} to inject a fault into`);
}

/** After `ms`, runs `end` unless cancelled: the provider recovering on its own. */
function recoverAfter(ms: number, end: () => void): () => void {
  const timer = setTimeout(end, ms);
  timer.unref();
  return () => {
    clearTimeout(timer);
    end();
  };
}

const requirementsAgentDown: Scenario = {
  name: 'requirements-agent-down',
  runbook: 'agent-failure',
  description: 'The requirements agent pods crash-loop; its logs say it is not responding.',
  async inject(parts) {
    const selector = currentPodsSelector(parts, 'requirements-agent');
    const fault = parts.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: parts.namespace,
      selector,
      exitCode: 1,
      message: `ERROR ${agentClassName('requirements-agent')} is not responding`,
    });
    return injected(
      `crash loop on the current requirements-agent pods (${selector}); a rollout restart replaces them`,
      async () => fault.clear(),
    );
  },
};

const generationQualityDrop: Scenario = {
  name: 'generation-quality-drop',
  runbook: 'generation-agent-failure',
  description:
    'Stale entries in the generation agent cache and its pods at their CPU limit: confidence drops below 0.7.',
  async inject(parts) {
    const prefix = GENERATION_CACHE_PATTERN.slice(0, -1);
    const keys = Array.from({ length: 25 }, () => `${prefix}${randomBytes(6).toString('hex')}`);
    const write = parts.redis.multi();
    for (const key of keys)
      write.hset(key, {
        [STALE_FIELD]: '1',
        prompt_hash: randomBytes(8).toString('hex'),
        model: 'anthropic/claude-3.5-sonnet',
        cached_at: new Date(Date.now() - 3 * 86_400_000).toISOString(),
      });
    await write.exec();
    const pods = podsMatching(parts.simulator.store, parts.namespace, { app: 'generation-agent' });
    for (const pod of pods)
      parts.simulator.setUsage(parts.namespace, pod.metadata.name, 'generation-agent', {
        cpu: '1950m',
        memory: '3600Mi',
      });
    return injected(
      `${keys.length} stale entries under ${GENERATION_CACHE_PATTERN} (FLUSHDB clears them); CPU pinned at 1950m on ${pods.length} generation pods (a rollout restart replaces them)`,
      async () => {
        await parts.redis.del(...keys);
        for (const pod of pods)
          parts.simulator.setUsage(parts.namespace, pod.metadata.name, 'generation-agent', {
            cpu: '300m',
            memory: '1200Mi',
          });
      },
    );
  },
};

const executionStuck: Scenario = {
  name: 'execution-stuck',
  runbook: 'execution-agent-failure',
  description: 'Executions stuck in running for over 10 minutes, and the Selenium hub crash-looping.',
  async inject(parts) {
    const selector = currentPodsSelector(parts, SELENIUM_HUB);
    const fault = parts.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: parts.namespace,
      selector,
      message: 'ERROR Selenium hub: unable to reach the event bus on port 4442',
    });
    const rows = await insertStuckExecutions({ url: parts.databaseUrl, count: 4, runningFor: 15 * 60 });
    return injected(
      `4 executions running for 15 minutes; the selenium-hub pods crash-loop (${selector}), a rollout restart replaces them`,
      async () => {
        fault.clear();
        await rows.stop();
      },
    );
  },
};

const postgresConnectionLoss: Scenario = {
  name: 'postgres-connection-loss',
  runbook: 'postgres-connection-loss',
  description:
    'PgBouncer is killed and the postgres pod crash-loops: nothing reaches the database (pg_up 0).',
  async inject(parts) {
    const selector = currentPodsSelector(parts, 'postgres');
    const fault = parts.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: parts.namespace,
      selector,
      message: 'FATAL:  could not write lock file "postmaster.pid": No space left on device',
    });
    await parts.pgbouncer.kill();
    return injected(
      `pgbouncer killed (a rollout restart of deployment/pgbouncer starts it again); postgres pod crash-looping (${selector}), a rollout restart of statefulset/postgres replaces it`,
      async () => {
        fault.clear();
        if (!parts.pgbouncer.running()) await parts.pgbouncer.restart();
        await parts.backend.resetDatabasePool();
      },
    );
  },
};

const databaseSlow: Scenario = {
  name: 'database-slow',
  runbook: 'database-performance',
  description: 'A long-running report holds an exclusive lock on test_executions; queries pile up behind it.',
  async inject(parts) {
    // The lock holder is itself an active query, as a runaway report would be: runbook 5's "kill queries active
    // for more than 5 minutes" ends it (an idle-in-transaction holder would escape that step).
    const holder = new pg.Client({
      connectionString: parts.databaseUrl,
      application_name: 'aiwebtest-report-export',
    });
    holder.on('error', () => {});
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE test_executions IN ACCESS EXCLUSIVE MODE');
    const held = holder.query('SELECT pg_sleep(3600)').catch(() => undefined);
    const slow = await runSlowQueries({ url: parts.databaseUrl, count: 3, seconds: 3600 });
    return injected(
      'an active report query (aiwebtest-report-export) holds ACCESS EXCLUSIVE on test_executions; 3 slow queries wait behind it; /api/v1/projects/:id/stats waits up to 30 s',
      async () => {
        const killer = new pg.Client({ connectionString: parts.databaseUrl });
        killer.on('error', () => {});
        await killer.connect();
        try {
          await killer.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'aiwebtest-report-export' AND datname = current_database()`,
          );
        } finally {
          await killer.end().catch(() => {});
        }
        await held;
        await holder.end().catch(() => {});
        await slow.stop();
      },
    );
  },
};

const openRouterOutage: Scenario = {
  name: 'openrouter-outage',
  runbook: 'openrouter-outage',
  description: 'OpenRouter resets every connection: the breaker opens and openrouter_api_up drops to 0.',
  async inject(parts, options) {
    const o = parseInput('openrouter-outage', ScenarioOptions, options ?? {});
    const fault = parts.openRouter.faults.inject({ kind: 'outage', mode: 'reset' });
    const end = recoverAfter(o.providerIncidentMs, () => parts.openRouter.faults.clear(fault.id));
    return injected(`OpenRouter outage (connections reset) for ${o.providerIncidentMs / 1000} s`, async () =>
      end(),
    );
  },
};

const openRouterRateLimit: Scenario = {
  name: 'openrouter-rate-limit',
  runbook: 'openrouter-rate-limit',
  description: 'OpenRouter answers 429 with Retry-After while a burst of generation requests arrives.',
  async inject(parts, options) {
    const o = parseInput('openrouter-rate-limit', ScenarioOptions, options ?? {});
    const fault = parts.openRouter.faults.inject({ kind: 'rateLimit', retryAfter: '2s' });
    const burst = startTraffic({
      backendUrl: parts.backend.url,
      ratePerSecond: 5,
      paths: [
        {
          method: 'POST',
          path: '/api/v1/generate',
          body: { prompt: 'Generate regression tests for the search page', agent: 'generation_agent' },
        },
      ],
      maxInFlight: 50,
    });
    const end = recoverAfter(o.providerIncidentMs, () => {
      parts.openRouter.faults.clear(fault.id);
      void burst.stop();
    });
    return injected(
      `OpenRouter answers 429 (Retry-After: 2) and 5 generation requests a second arrive, for ${o.providerIncidentMs / 1000} s`,
      async () => {
        end();
        await burst.stop();
      },
    );
  },
};

const apiLatency: Scenario = {
  name: 'api-latency',
  runbook: 'api-high-latency',
  description: 'OpenRouter takes 3.5 s per completion: the API p95 climbs above 2000 ms.',
  async inject(parts, options) {
    const o = parseInput('api-latency', ScenarioOptions, options ?? {});
    // Slow enough for ApiHighLatency (p95 > 2000 ms), not for DatabaseSlow (> 5000 ms), which would inhibit it
    // and send the incident to the database runbook (alertmanager-lab.yml).
    const fault = parts.openRouter.faults.inject({ kind: 'latency', delay: '3500ms' });
    const end = recoverAfter(o.providerIncidentMs, () => parts.openRouter.faults.clear(fault.id));
    return injected(
      `OpenRouter completions take 3.5 s for ${o.providerIncidentMs / 1000} s (the response cache, OPENROUTER_CACHE_ENABLED=true, takes them off the path)`,
      async () => end(),
    );
  },
};

const testExecutionSlow: Scenario = {
  name: 'test-execution-slow',
  runbook: 'test-execution-high-latency',
  description:
    "Other teams' suites take every free Grid slot: executions queue and run slowly (p95 > 300 s).",
  async inject(parts) {
    const sessions = gridSessions(parts.grid);
    const handles: string[] = [];
    for (;;) {
      const handle = sessions.start();
      if (!handle) break;
      handles.push(handle);
    }
    return injected(
      `${handles.length} external sessions occupy the free Grid slots (scaling selenium-node-* up adds room)`,
      async () => {
        for (const handle of handles) sessions.end(handle);
      },
    );
  },
};

const totalFailure: Scenario = {
  name: 'total-failure',
  runbook: 'system-failure',
  description:
    'Complete system failure: every platform workload gone, PostgreSQL crashed with its data directory lost, Redis emptied (needs disasterRecovery: true).',
  async inject(parts) {
    const r = await injectTotalFailure(parts);
    return injected(
      `recorded (scrape ${r.recordedAt ? new Date(r.recordedAt).toISOString() : 'none'}), then wrote ${r.afterRecord.users} user and ${r.afterRecord.test_executions} executions after the record; deleted ${r.workloadsDeleted.length} workloads, crashed PostgreSQL and removed its data directory, emptied Redis (PITR restore, RDB restore and a redeploy recover it)`,
      async () => recreateWorkloads(parts),
    );
  },
};

const loginAttack: Scenario = {
  name: 'login-attack',
  runbook: 'security-breach',
  description:
    'Credential stuffing through the login from 3 addresses (600 failures/min), one account taken (reads, an export), a backdoor in a backend pod.',
  async inject(parts) {
    const attack = await injectLoginAttack(parts);
    return injected(attack.description, attack.undo);
  },
};

const modelAccuracyDrop: Scenario = {
  name: 'model-accuracy-drop',
  runbook: 'model-accuracy-drop',
  description:
    'A bad generation_model version (4, accuracy about 0.71) became champion and the backend is pinned to it (MLFLOW_MODEL_VERSION=4).',
  async inject(parts) {
    const drop = await injectModelAccuracyDrop(parts);
    return injected(drop.description, drop.undo);
  },
};

const dataDrift: Scenario = {
  name: 'data-drift',
  runbook: 'data-drift',
  description:
    "The model's inputs shift (bigger pages, more elements, another browser mix): the drift report finds 3 of 4 features drifted.",
  async inject(parts) {
    const drift = await injectDataDrift(parts);
    return injected(drift.description, drift.undo);
  },
};

/** Every scenario by name. */
export const SCENARIO_CATALOG: Readonly<Record<ScenarioName, Scenario>> = {
  'requirements-agent-down': requirementsAgentDown,
  'generation-quality-drop': generationQualityDrop,
  'execution-stuck': executionStuck,
  'postgres-connection-loss': postgresConnectionLoss,
  'database-slow': databaseSlow,
  'openrouter-outage': openRouterOutage,
  'openrouter-rate-limit': openRouterRateLimit,
  'api-latency': apiLatency,
  'test-execution-slow': testExecutionSlow,
  'model-accuracy-drop': modelAccuracyDrop,
  'data-drift': dataDrift,
  'login-attack': loginAttack,
  'total-failure': totalFailure,
};

/** The scenario called `name`; a ZodError names the field when there is none. */
export function scenario(name: string): Scenario {
  return SCENARIO_CATALOG[SCENARIOS.parse(name)];
}
