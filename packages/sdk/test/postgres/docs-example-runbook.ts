// The end-to-end runbook of POSTGRES.md ("End to end: the database-performance runbook"), which shows it as
// `database-performance.ts`. Everything between the docs markers appears there exactly, except the import
// lines: the docs import from the package (`@aiwebtest/runbooks`, `@aiwebtest/runbooks/postgres`), this file
// from the sources. docs-examples.test.ts runs it against a real cluster and fails when the two drift apart.

// docs:begin database-performance.ts
import { z } from 'zod';
import { type ActResult, Duration, defineRunbook, formatMillis, toMillis } from '../../src';
import type { Postgres } from '../../src/postgres';

/** Stuck test executions: still `running` after `$1` milliseconds (the manual's Runbook 3 query). */
const STUCK = `SELECT execution_id, result, started_at FROM test_executions
                WHERE result = 'running' AND started_at < now() - $1::float8 * interval '1 millisecond'
                ORDER BY started_at`;

/**
 * The manual's runbook 5, database performance: look at the active queries and terminate those running
 * longer than `queryLimit`, with a second person's approval; then find the test executions stuck in
 * `running` for longer than `executionLimit` and mark them timed out. `pg` is a parameter so that a test
 * can point the runbook at a throwaway cluster.
 */
export function databasePerformance(pg: Postgres) {
  return defineRunbook({
    id: 'database-performance',
    title: 'Database performance: long-running queries and stuck executions',
    severity: 'P2',
    input: z.object({
      /** Queries running at least this long are terminated (the manual: 5 minutes). */
      queryLimit: Duration.default('5m'),
      /** Executions `running` for longer than this are marked timed out (the manual: 10 minutes). */
      executionLimit: Duration.default('10m'),
    }),
    async run({ input, step }) {
      const executionMs = toMillis(input.executionLimit);

      // Lists the queries running at least queryLimit (a fail) and the blocking chains behind them.
      const queries = await step.check(
        'active-queries',
        pg.activeQueries({ minDuration: input.queryLimit, failAfter: input.queryLimit }),
      );
      let terminated: ActResult<unknown, unknown> | undefined;
      if (queries.data.longRunning > 0) {
        // Destructive (their transactions roll back): the run waits for a second person's approval of the
        // exact backends, and applies only if the same queries still run.
        terminated = await step.act(
          'terminate-long-queries',
          pg.terminateBackends({ filter: { minDuration: input.queryLimit } }),
          { onGiveUp: step.escalate('long-running queries survived pg_terminate_backend: page the DBA') },
        );
      }

      const stuck = await step.check(
        'stuck-executions',
        pg.sqlCheck({
          name: `Test executions running longer than ${formatMillis(executionMs)}`,
          sql: STUCK,
          params: [executionMs],
          thresholds: { fail: 1 },
        }),
      );
      let cancelled: ActResult<unknown, unknown> | undefined;
      if (stuck.status === 'fail') {
        // With a revert the action is not destructive: no approval, and a failed verify puts the rows back.
        cancelled = await step.act(
          'cancel-stuck-executions',
          pg.sqlAction({
            name: 'cancel-stuck-executions',
            target: 'test_executions',
            select: { sql: STUCK, params: [executionMs] },
            key: 'execution_id',
            update: {
              sql: `UPDATE test_executions SET result = 'error', error_message = 'Execution timeout'
                     WHERE execution_id = ANY($1) AND result = 'running'`,
            },
            revert: {
              sql: `UPDATE test_executions SET result = 'running', error_message = NULL
                     WHERE execution_id = ANY($1) AND result = 'error' AND error_message = 'Execution timeout'`,
            },
            maxRows: 500,
            effect: "result = 'error' (Execution timeout)",
          }),
        );
      }

      // How many were changed; else why not: none found, skipped (diagnose mode), planned (plan mode), or
      // noop (gone by the time the action planned).
      const outcome = (r?: ActResult<unknown, unknown>) =>
        r === undefined ? 'none found' : r.status === 'applied' ? String(r.plan.changes.length) : r.status;
      return step.done(
        `long-running queries terminated: ${outcome(terminated)}; ` +
          `stuck executions timed out: ${outcome(cancelled)}`,
      );
    },
  });
}
// docs:end database-performance.ts
