/**
 * Runbook 3 of the operations manual, "Execution Agent Failure" (alert `TestExecutionStuck`,
 * `test_execution_duration > 600`): tests stuck in "running", the Selenium Grid or its browsers failing.
 */
import {
  type Action,
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  finding,
  onAlert,
  type ReplayableCheck,
  toMillis,
} from '@aiwebtest/runbooks';
import { z } from 'zod';
import { SELENIUM_HUB, seleniumNodeDeployment } from '../lab/platform/manifests';
import { type AiWebTest, connectionOf, type PackRunbookOptions } from './environment';
import { pollExecutionsSince, reworded, type SqlQuery, sleep, sqlQueryOf } from './executions-since';
import { seleniumGridStatus } from './platform-checks';

/** The Grid's deployments, in the manual's restart order: the hub first, so the new nodes register with it. */
export const SELENIUM_GRID_DEPLOYMENTS = [
  SELENIUM_HUB,
  seleniumNodeDeployment('chrome'),
  seleniumNodeDeployment('firefox'),
] as const;
const EXECUTION_AGENT = 'execution-agent';
const TIMEOUT_MESSAGE = 'Execution timeout';

/** The manual's escalation lines, word for word where it has them. */
export const EXECUTION_AGENT_ESCALATIONS = {
  gridDown: 'Selenium Grid is down: scale up Selenium nodes',
  browserCrashes: 'Browser crashes persist: check resource limits on Selenium nodes',
  persistent: 'Persistent issue: investigate test code for browser compatibility',
  agentDown: 'Execution agent still down after restart: page on-call',
} as const;

/** Input of `execution-agent-failure`. */
export const ExecutionAgentFailureInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: z.string().min(1, 'namespace: expected a namespace').default('aiwebtest'),
  /** An execution running longer than this is stuck (the manual: 10 minutes). @default "10m" */
  stuckAfter: Duration.default('10m'),
  /** Most stuck executions one run cancels; more is refused (look first). @default 1000 */
  maxCancel: z.number().int().min(1).max(10_000).default(1000),
  /** How long each restart may take to roll out before it counts as failed. @default "5m" */
  rolloutTimeout: Duration.default('5m'),
  /** How long the sample test may take to complete on the Grid (the manual expects < 2 minutes). @default "2m" */
  sampleTestTimeout: Duration.default('2m'),
});
/** Input of `execution-agent-failure`. */
export type ExecutionAgentFailureInput = z.input<typeof ExecutionAgentFailureInput>;

/** An action whose plan summary says more (e.g. that it cannot be reverted); apply and verify are its own. */
function withPlanNote<P, A>(action: Action<P, A>, note: string): Action<P, A> {
  return {
    ...action,
    plan: async (ctx) => {
      const draft = await action.plan(ctx);
      return { ...draft, summary: `${draft.summary}; ${note}` };
    },
  };
}

/** What {@link sampleTestCompletes} found. */
export interface SampleTestData {
  since: string;
  /** The first execution that completed after `since`, if any. */
  execution: {
    execution_id: string;
    result: string;
    browser: string | null;
    execution_time: number | null;
  } | null;
  waitedMs: number;
}

/**
 * The manual's "run sample test": browser automation works again when an execution started after the
 * recovery runs to a result (passed or failed, not `error`) on the Grid. Waits at most `timeoutMs`.
 * Fails when none does: the agent or the Grid still cannot run tests.
 */
export function sampleTestCompletes(query: SqlQuery, timeoutMs: number): Check<SampleTestData> {
  return defineCheck<SampleTestData>({
    kind: 'aiwebtest.sample-test',
    description: 'a test execution started now completes on the Selenium Grid',
    run: (ctx) =>
      // created_at is when the agent took the test; started_at may be back-dated by the agent.
      pollExecutionsSince<SampleTestData>(query, ctx.signal, {
        sql: `SELECT execution_id::text AS execution_id, result, browser, execution_time
             FROM test_executions
            WHERE created_at >= $1::timestamptz AND finished_at IS NOT NULL AND result IN ('passed', 'failed')
            ORDER BY finished_at LIMIT 1`,
        timeoutMs,
        judge({ since, rows, waitedMs }) {
          const row = rows[0];
          if (!row) return undefined;
          const execution = {
            execution_id: String(row.execution_id),
            result: String(row.result),
            browser: row.browser === null ? null : String(row.browser),
            execution_time: row.execution_time === null ? null : Number(row.execution_time),
          };
          return finding(
            'ok',
            `sample test ran: execution ${execution.execution_id} ${execution.result} on ${execution.browser ?? 'a browser'} after ${Math.round(waitedMs / 1000)} s`,
            { since, execution, waitedMs },
            [
              {
                kind: 'table',
                title: 'sample execution',
                columns: ['execution_id', 'result', 'browser', 'execution_time'],
                rows: [
                  [execution.execution_id, execution.result, execution.browser, execution.execution_time],
                ],
              },
            ],
          );
        },
        timedOut: ({ since, waitedMs }) =>
          finding(
            'fail',
            `no test execution completed on the Selenium Grid within ${Math.round(timeoutMs / 1000)} s: browser automation still fails`,
            { since, execution: null, waitedMs },
          ),
      }),
  });
}

/**
 * Runbook 3, "Execution Agent Failure": lists the running executions and which are stuck (longer than
 * `stuckAfter`), reads the Selenium Grid's `/status`, the browser pods and the execution agent's logs. In an
 * incident it cancels exactly the stuck executions (`result = 'error'`, `'Execution timeout'`; approval
 * needed, no revert), restarts the Grid's deployments when the Grid or its browsers are failing, restarts the
 * execution agent, verifies the Grid is ready and that a new execution completes. Escalates with the
 * manual's words when the Grid stays down, browsers keep crashing, or tests still do not complete.
 */
export function createExecutionAgentFailureRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'execution-agent-failure',
    title: 'Execution agent failure',
    description:
      'Cancels test executions stuck in "running", restarts the Selenium Grid and the execution agent, and verifies the Grid and a sample test.',
    severity: 'P1',
    input: ExecutionAgentFailureInput,
    triggers: [onAlert({ alertname: 'TestExecutionStuck' })],
    tags: ['component: execution-agent', 'component: selenium-grid', 'runbook: 3'],
    async run({ input, step, mode, log }) {
      const platform = connect();
      const { namespace } = input;
      const stuckMs = toMillis(input.stuckAfter);
      const stuckInterval = `${Math.round(stuckMs / 1000)} seconds`;

      // 1. Check active test executions (the manual's query, plus whether each is past the limit).
      const active = await step.check(
        'active-executions',
        reworded(
          platform.db.sqlCheck({
            name: 'Running test executions',
            sql: `SELECT execution_id, started_at, NOW() - started_at AS duration,
                         started_at < NOW() - $1::interval AS stuck
                    FROM test_executions WHERE result = 'running' ORDER BY started_at`,
            params: [stuckInterval],
          }),
          (f) => {
            // Oldest first, so the stuck ones are the first rows (the evidence keeps 50).
            const stuck = f.data.rows.filter((r) => r.stuck === true).length;
            const more =
              f.data.rowCount > f.data.rows.length && stuck === f.data.rows.length ? 'at least ' : '';
            const summary =
              stuck > 0
                ? `${more}${stuck} test execution(s) stuck in "running" for more than ${input.stuckAfter} (of ${f.data.rowCount} running)`
                : `${f.data.rowCount} test execution(s) running, none for more than ${input.stuckAfter}`;
            return { ...f, status: stuck > 0 ? 'fail' : 'ok', summary };
          },
        ),
      );
      const stuckCount = active.data.rows.filter((r) => r.stuck === true).length;

      // 2. Check Selenium Grid status.
      const grid = await step.check('selenium-grid', seleniumGridStatus(platform.env.seleniumUrl));
      // 3. Check browser pods.
      const browsers = await step.check(
        'browser-pods',
        platform.k8s.podStatus({ namespace, selector: 'app=selenium-node' }),
      );
      // 4. Check execution agent logs.
      await step.check(
        'agent-logs',
        platform.k8s.podLogs({ namespace, selector: `app=${EXECUTION_AGENT}`, tailLines: 100 }),
      );

      const gridFailing = grid.status === 'fail' || browsers.status === 'fail';
      const causes = [
        ...(stuckCount > 0 ? [active.summary] : []),
        ...(grid.status === 'fail' ? [grid.summary] : []),
        ...(browsers.status === 'fail' ? [`browser pods: ${browsers.summary}`] : []),
      ];
      if (causes.length === 0) {
        return step.done(`test execution healthy: ${active.summary}; ${grid.summary}; no change needed`);
      }
      if (mode === 'diagnose') return step.done(`execution agent failure: ${causes.join('; ')}`);

      const planned: string[] = [];
      const changed: string[] = [];

      // Recovery 1: cancel stuck executions (the manual's UPDATE, on exactly the planned rows).
      if (stuckCount > 0) {
        const cancel = await step.act(
          'cancel-stuck-executions',
          withPlanNote(
            platform.db.sqlAction({
              name: 'cancel-stuck-executions',
              target: 'test_executions',
              select: {
                sql: `SELECT execution_id, test_id, started_at, browser FROM test_executions
                       WHERE result = 'running' AND started_at < NOW() - $1::interval ORDER BY started_at`,
                params: [stuckInterval],
              },
              key: 'execution_id',
              update: {
                sql: `UPDATE test_executions SET result = 'error', error_message = $2
                       WHERE execution_id = ANY($1) AND result = 'running'`,
                params: [TIMEOUT_MESSAGE],
              },
              effect: `result running → error, error_message '${TIMEOUT_MESSAGE}'`,
              maxRows: input.maxCancel,
              risk: 'medium',
            }),
            'cannot be reverted: the executions are not resumed, their tests must be run again',
          ),
        );
        if (cancel.status === 'planned') planned.push(cancel.plan.summary);
        if (cancel.status === 'applied')
          changed.push(`cancelled ${cancel.plan.changes.length} stuck execution(s)`);
      } else {
        log('no execution is stuck: nothing to cancel');
      }

      // Recovery 2: restart the Selenium Grid, when it or its browsers are failing (a restart ends every session).
      if (gridFailing) {
        const present = await step.check(
          'selenium-deployments',
          gridDeployments(platform.k8s.cluster, namespace),
        );
        for (const name of present.data.present) {
          const restart = await step.act(
            `restart-${name}`,
            platform.k8s.rolloutRestart({ namespace, name, timeout: input.rolloutTimeout }),
            {
              onGiveUp: step.escalate(
                name === 'selenium-hub'
                  ? EXECUTION_AGENT_ESCALATIONS.gridDown
                  : EXECUTION_AGENT_ESCALATIONS.browserCrashes,
              ),
            },
          );
          if (restart.status === 'planned') planned.push(restart.plan.summary);
          if (restart.status === 'applied') changed.push(`restarted deployment/${name}`);
        }
      } else {
        log('Selenium Grid ready and its browser pods ready: not restarted', { grid: grid.summary });
      }

      // Recovery 3: restart the execution agent (it holds the dead WebDriver sessions of the stuck tests).
      const agent = await step.act(
        'restart-execution-agent',
        platform.k8s.rolloutRestart({ namespace, name: EXECUTION_AGENT, timeout: input.rolloutTimeout }),
        { onGiveUp: step.escalate(EXECUTION_AGENT_ESCALATIONS.agentDown) },
      );
      if (agent.status === 'planned') planned.push(agent.plan.summary);
      if (agent.status === 'applied') changed.push(`restarted deployment/${EXECUTION_AGENT}`);

      if (mode === 'plan') return step.done(`would: ${planned.join('; ')}`);

      // Recovery 4: verify Selenium Grid (new nodes take a moment to register with the new hub).
      const ready = await step.check(
        'verify-selenium-grid',
        untilGridReady(seleniumGridStatus(platform.env.seleniumUrl), 30_000),
      );
      if (ready.status === 'fail')
        return step.escalate(`${EXECUTION_AGENT_ESCALATIONS.gridDown} (${ready.summary})`);

      // Recovery 5: run sample test.
      const sample = await step.check(
        'run-sample-test',
        sampleTestCompletes(sqlQueryOf(platform), toMillis(input.sampleTestTimeout)),
      );
      if (sample.status !== 'ok') {
        return step.escalate(`${EXECUTION_AGENT_ESCALATIONS.persistent} (${sample.summary})`);
      }
      return step.done(`${changed.join('; ')}; ${ready.summary}; ${sample.summary}`);
    },
  });
}

/** What {@link gridDeployments} found. */
export interface GridDeploymentsData {
  present: string[];
  missing: string[];
}

/** Which of the Grid's deployments exist (the manual restarts those present). */
function gridDeployments(
  cluster: AiWebTest['k8s']['cluster'],
  namespace: string,
): Check<GridDeploymentsData> {
  return defineCheck<GridDeploymentsData>({
    kind: 'aiwebtest.selenium-deployments',
    description: `Selenium Grid deployments in ${namespace}`,
    async run(ctx) {
      cluster.assertContext();
      const list = await cluster.call(
        `list deployments in ${namespace}`,
        (o) => cluster.apps.listNamespacedDeployment({ namespace }, o),
        { signal: ctx.signal },
      );
      const names = new Set(list.items.map((d) => d.metadata?.name));
      const present = SELENIUM_GRID_DEPLOYMENTS.filter((n) => names.has(n));
      const missing = SELENIUM_GRID_DEPLOYMENTS.filter((n) => !names.has(n));
      return finding(
        present.length > 0 ? 'ok' : 'fail',
        present.length > 0
          ? `Selenium Grid deployments: ${present.join(', ')}${missing.length ? ` (absent: ${missing.join(', ')})` : ''}`
          : `no Selenium Grid deployment in ${namespace}`,
        { present, missing },
      );
    },
  });
}

/**
 * Asks the Grid again until it says ready (or `timeoutMs` passes), and reports the last answer. Replayable
 * like the check it repeats: its observation is the last answer's.
 */
export function untilGridReady<T extends { ready: boolean }, O>(
  check: ReplayableCheck<T, O>,
  timeoutMs: number,
): ReplayableCheck<T, O> {
  const { kind, description } = check;
  return defineCheck({
    kind,
    ...(description === undefined ? {} : { description }),
    async read(ctx): Promise<O> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const seen = await check.read(ctx);
        // Whether it is ready is the answer's, not a threshold's: the same whatever a replay judges it by.
        if (check.judge(seen).data.ready || Date.now() >= deadline) return seen;
        await sleep(500, ctx.signal);
      }
    },
    judge: (seen) => check.judge(seen),
  });
}

/** `execution-agent-failure` on the platform the environment describes. */
export const executionAgentFailure = createExecutionAgentFailureRunbook();
