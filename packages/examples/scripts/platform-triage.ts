/**
 * The runbook an on-caller runs first when "something is wrong with AI-Web-Test" and no alert says what:
 * one pass over the whole platform with the pack's own checks and connections, then a verdict that names
 * the pack runbook to run next (an escalation `to: '<runbook-id>'`, with the input it needs), or says the
 * platform is healthy.
 *
 * It changes nothing (it has no actions), so `diagnose` is the mode to run it in:
 *
 * ```sh
 * runbook diagnose platform-triage --runbooks ./scripts/platform-triage.ts   # env vars, or the lab's lab.json
 * ```
 *
 * Composed from the pack (`@aiwebtest/runbook-examples`): `connectFromEnvironment` finds the platform,
 * `backendHealth` and `seleniumGridStatus` read its services, the agent list is `agent-failure`'s own input
 * schema, and every next runbook is looked up in the pack's `runbooks` (its severity becomes the
 * escalation's). Like the pack's runbooks it is a factory taking `{ connect }`, so a test points it at a lab.
 *
 * Node loads this file as it is (type stripping): it imports packages only and keeps to erasable TypeScript.
 */

import {
  AgentFailureInput,
  backendHealth,
  connectFromEnvironment,
  type PackRunbookOptions,
  runbooks as pack,
  seleniumGridStatus,
} from '@aiwebtest/runbook-examples';
import {
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  type Finding,
  finding,
  isReplayableCheck,
  type Json,
  type Severity,
  type StepContext,
  toMillis,
} from '@aiwebtest/runbooks';
import { z } from 'zod';

/** The six agents, in the manual's order: whatever `agent-failure` accepts. */
export const AGENTS = AgentFailureInput.shape.agent.options;

/** A database query running this long points at `database-performance`, when `longQuery` is not given. */
export const DEFAULT_LONG_QUERY = '5m';

/** Queries running this long are listed (and a lock wait this long is a failure); shorter with `longQuery`. */
const LIST_QUERIES_AFTER_MS = 60_000;

/**
 * Input of `platform-triage`. `longQuery` is a threshold: its default is in the code, not the schema, since
 * the engine records the validated input and a recorded default would hide a change of it from replays.
 */
export const PlatformTriageInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a Kubernetes namespace name')
    .default('aiwebtest'),
  /**
   * A database query running this long, or a lock waited on this long (at most 1 minute), points at
   * `database-performance`. @default "5m" ({@link DEFAULT_LONG_QUERY}, the manual's)
   */
  longQuery: Duration.optional(),
});
/** What `platform-triage` takes. */
export type PlatformTriageInput = z.input<typeof PlatformTriageInput>;

/**
 * What a replayable {@link readable} check stores: the inner check's observation, or why it could not be
 * read (the first line of the error).
 */
export type ReadableObservation = { observed: Json } | { unreadable: string };

/**
 * A check that reports instead of throwing, so the triage always reaches its verdict: a part that cannot be
 * read is a finding naming why, `unreadable` says which. A service that does not answer (PgBouncer, Redis)
 * is a `fail`; a view we may not have (the cluster refusing our credentials) is `unknown`.
 *
 * A replayable inner check stays replayable: `read` is wrapped as the run is, storing the inner observation
 * or the failure, and `judge` is the inner one's (or the unreadable finding), so a replay judges the recorded
 * observation again with the thresholds of now.
 */
export function readable<T>(inner: Check<T>, unreadable: 'fail' | 'unknown'): Check<T | null> {
  const kind = inner.kind;
  const description = inner.description ?? inner.kind;
  const cannotRead = (reason: string) => finding(unreadable, `could not be read: ${reason}`, null);
  if (isReplayableCheck(inner)) {
    return defineCheck<T | null, ReadableObservation>({
      kind,
      description,
      async read(ctx) {
        try {
          return { observed: await inner.read(ctx) };
        } catch (e) {
          return { unreadable: reasonOf(e, ctx) };
        }
      },
      judge: (observation) =>
        'unreadable' in observation ? cannotRead(observation.unreadable) : inner.judge(observation.observed),
    });
  }
  return defineCheck<T | null>({
    kind,
    description,
    async run(ctx) {
      try {
        return await inner.run(ctx);
      } catch (e) {
        return cannotRead(reasonOf(e, ctx));
      }
    },
  });
}

/** The first line of why a read failed; a cancelled run is not "unreadable", so that throws on. */
function reasonOf(e: unknown, ctx: StepContext): string {
  ctx.signal.throwIfAborted();
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** Something wrong, and where it points. Lower `rank` is more fundamental: fix it first. */
interface Problem {
  rank: number;
  /** `step: what it found`. */
  summary: string;
  /** The pack runbook for it and its input; none when the pack has no runbook for it (a person decides). */
  next?: { runbook: string; input?: Record<string, string> };
}

/** `runbook run <id> --input k=v …`, what the on-caller types next. */
function command(next: NonNullable<Problem['next']>, namespace: string): string {
  const input = { ...next.input, ...(namespace === 'aiwebtest' ? {} : { namespace }) };
  const flags = Object.entries(input).map(([k, v]) => ` --input ${k}=${v}`);
  return `runbook run ${next.runbook}${flags.join('')}`;
}

function severityOf(runbookId: string): Severity {
  const runbook = pack.find((r) => r.id === runbookId);
  if (!runbook) throw new Error(`platform-triage points at "${runbookId}", which the pack does not have`);
  return runbook.severity;
}

const failing = (f: Finding<unknown>) => f.status === 'fail';

/** `step: summary`, unless the summary starts with the step's name already (`backend unreachable: …`). */
const labelled = (name: string, summary: string) =>
  summary.toLowerCase().startsWith(name) ? summary : `${name}: ${summary}`;

/** `text` ending in one full stop, whether a summary brought its own or not. */
const sentence = (text: string) => (text.endsWith('.') ? text : `${text}.`);

/**
 * `platform-triage`: reads the backend's health, the pods of every agent, the database (a new connection
 * through PgBouncer, then its long queries), PgBouncer's pools, Redis and the Selenium Grid. Then the most
 * fundamental failure decides what to run next (a database outage makes the agents fail too), and the
 * escalation's reason lists every other one:
 *
 * 1. the backend is unreachable and no agent has a ready pod → `system-failure`;
 * 2. the database: no new connection, PgBouncer does not answer or its clients wait, or the backend cannot
 *    reach it → `postgres-connection-loss`;
 * 3. Redis does not answer → a person (no pack runbook repairs a live Redis);
 * 4. an agent's pods → `agent-failure` with `agent=<the first, in the manual's order>`;
 * 5. the backend's OpenRouter breaker is open → `openrouter-rate-limit` after 429s, else `openrouter-outage`;
 * 6. a query has run longer than `longQuery`, or has waited for a lock for a minute (or `longQuery`, when
 *    shorter) → `database-performance`;
 * 7. the Selenium Grid → `execution-agent-failure`;
 * 8. the backend, for any other reason, or a part that could not be read → a person.
 *
 * Nothing failing: `done`, naming any warnings.
 */
export function createPlatformTriageRunbook(options: PackRunbookOptions = {}) {
  const connect = options.connect ?? connectFromEnvironment;
  return defineRunbook({
    id: 'platform-triage',
    title: 'Platform triage: what is wrong, and which runbook next',
    description:
      'One pass over AI-Web-Test (backend, every agent’s pods, database, PgBouncer, Redis, Selenium Grid) that names the pack runbook to run next, or says the platform is healthy. Changes nothing.',
    severity: 'P2',
    input: PlatformTriageInput,
    tags: ['component: platform', 'triage', 'example'],
    async run({ input, step, log }) {
      const platform = connect();
      const { namespace } = input;
      const longQuery = input.longQuery ?? DEFAULT_LONG_QUERY;
      const problems: Problem[] = [];
      const warnings: string[] = [];
      const judge = (name: string, f: Finding<unknown>, problem: Omit<Problem, 'summary'>) => {
        const summary = labelled(name, f.summary);
        if (f.status === 'fail') problems.push({ ...problem, summary });
        else if (f.status === 'unknown') problems.push({ rank: 90, summary });
        else if (f.status === 'warn') warnings.push(summary);
      };

      const backend = await step.check('backend', backendHealth(platform.env.backendUrl));
      const health = backend.data.health;

      const agents: { agent: string; pods: Finding<unknown> }[] = [];
      for (const agent of AGENTS) {
        const selector = `app=${agent}`;
        const pods = await step.check(
          `pods-${agent}`,
          readable(platform.k8s.podStatus({ namespace, selector }), 'unknown'),
        );
        agents.push({ agent, pods });
      }
      if (agents.every((a) => a.pods.status === 'unknown')) {
        // One cause (the cluster refusing us) is one problem, not six.
        judge('pods', agents[0]?.pods ?? finding('unknown', 'no agents', null), { rank: 90 });
      } else {
        for (const { agent, pods } of agents) {
          judge(`pods-${agent}`, pods, { rank: 30, next: { runbook: 'agent-failure', input: { agent } } });
        }
      }

      const database = await step.check(
        'database',
        platform.db.connectivity({ timeout: '5s', slowAfter: '1s' }),
      );
      judge('database', database, { rank: 10, next: { runbook: 'postgres-connection-loss' } });
      if (database.data.reachable) {
        // Listing starts at a minute, or at `longQuery` when that is shorter (the check refuses a listing
        // threshold above the failing one).
        const minDuration = Math.min(LIST_QUERIES_AFTER_MS, Math.round(toMillis(longQuery)));
        const queries = await step.check(
          'database-queries',
          readable(platform.db.activeQueries({ failAfter: longQuery, minDuration }), 'unknown'),
        );
        judge('database-queries', queries, { rank: 50, next: { runbook: 'database-performance' } });
      }
      const pools = await step.check('pgbouncer-pools', readable(platform.pgbouncer.pools(), 'fail'));
      judge('pgbouncer-pools', pools, { rank: 11, next: { runbook: 'postgres-connection-loss' } });
      const redis = await step.check('redis', readable(platform.redis.ping(), 'fail'));
      judge('redis', redis, { rank: 20 });
      const grid = await step.check('selenium-grid', seleniumGridStatus(platform.env.seleniumUrl));
      judge('selenium-grid', grid, { rank: 60, next: { runbook: 'execution-agent-failure' } });

      // The backend's own answer, read for what it says about the parts behind it.
      if (!backend.data.reachable && agents.every((a) => failing(a.pods))) {
        problems.push({
          rank: 0,
          summary: `${labelled('backend', backend.summary)}, and no agent has a ready pod`,
          next: { runbook: 'system-failure' },
        });
      } else if (health && !health.database.up && database.status !== 'fail') {
        problems.push({
          rank: 12,
          summary: `${labelled('backend', backend.summary)} (while this runbook reaches it: the backend's path to it is broken)`,
          next: { runbook: 'postgres-connection-loss' },
        });
      } else {
        const openRouter = health?.circuit_breakers.openrouter;
        if (openRouter && (openRouter.state === 'open' || !openRouter.up)) {
          const limited = openRouter.lastFailure?.reason === 'rate_limited';
          problems.push({
            rank: 40,
            summary: `${labelled('backend', backend.summary)}${openRouter.lastFailure ? ` (last failure: ${openRouter.lastFailure.reason})` : ''}`,
            next: { runbook: limited ? 'openrouter-rate-limit' : 'openrouter-outage' },
          });
        } else {
          judge('backend', backend, { rank: 70 });
        }
      }

      if (problems.length === 0) {
        const ready = agents.filter((a) => a.pods.status !== 'fail').length;
        const healthy = `backend ${health?.status ?? backend.status}, ${ready}/${agents.length} agents ready, database ${database.status}, PgBouncer ${pools.status}, Redis ${redis.status}, Selenium Grid ${grid.status}`;
        return step.done(
          warnings.length
            ? `Platform healthy, with warnings: ${warnings.join('; ')} (${healthy})`
            : `Platform healthy: ${healthy}`,
        );
      }

      problems.sort((a, b) => a.rank - b.rank);
      const [first, ...others] = problems as [Problem, ...Problem[]];
      const also = others.length
        ? ` Also failing: ${sentence(others.map((p) => p.summary.replace(/\.$/, '')).join('; '))}`
        : '';
      if (!first.next) {
        return step.escalate(`${sentence(first.summary)} No pack runbook covers it: page on-call.${also}`, {
          severity: 'P1',
        });
      }
      const next = command(first.next, namespace);
      log(`next: ${next}`);
      return step.escalate(`${sentence(first.summary)} Next: ${next}.${also}`, {
        to: first.next.runbook,
        severity: severityOf(first.next.runbook),
      });
    },
  });
}

/** `platform-triage` on the platform the environment describes (env vars, or the running lab's lab.json). */
export const platformTriage = createPlatformTriageRunbook();
