import type { Pool } from 'pg';
import { z } from 'zod';

/** A project id as it appears in a URL: a number or a UUID, nothing that could surprise the database's cast. */
export const ProjectId = z
  .string()
  .regex(
    /^(?:[0-9]{1,18}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/,
    'expected a numeric id or a UUID',
  );

/** A project's test statistics. */
export interface ProjectStats {
  project_id: string;
  total_executions: number;
  passed: number;
  failed: number;
  errors: number;
  running: number;
  pass_rate: number | null;
  avg_execution_time: number | null;
  last_execution_at: string | null;
}

/**
 * Statistics of one project, read from `test_executions` joined with `test_cases` (the lab schema's
 * mv_project_stats holds the same once refreshed; reading the base tables keeps the endpoint right between
 * refreshes and makes a slow database show in this endpoint's latency, which is what Runbook 8 looks for).
 * `null` when the project has no test cases. The id travels as a parameter: PostgreSQL casts it to the
 * column's type, so the query works with integer and UUID ids alike.
 */
export async function readProjectStats(pool: Pool, projectId: string): Promise<ProjectStats | null> {
  const { rows } = await pool.query<{
    cases: string;
    total: string;
    passed: string;
    failed: string;
    errors: string;
    running: string;
    avg_time: string | null;
    last_at: Date | null;
  }>(
    `SELECT (SELECT count(*) FROM test_cases WHERE project_id = $1) AS cases,
            count(te.*) AS total,
            count(*) FILTER (WHERE te.result = 'passed') AS passed,
            count(*) FILTER (WHERE te.result = 'failed') AS failed,
            count(*) FILTER (WHERE te.result = 'error') AS errors,
            count(*) FILTER (WHERE te.result = 'running') AS running,
            avg(te.execution_time)::float8 AS avg_time,
            max(te.created_at) AS last_at
       FROM test_cases tc
       JOIN test_executions te ON te.test_id = tc.test_id
      WHERE tc.project_id = $1`,
    [projectId],
  );
  const row = rows[0];
  if (!row || Number(row.cases) === 0) return null;
  const total = Number(row.total);
  const passed = Number(row.passed);
  const failed = Number(row.failed);
  const finished = passed + failed + Number(row.errors);
  return {
    project_id: projectId,
    total_executions: total,
    passed,
    failed,
    errors: Number(row.errors),
    running: Number(row.running),
    pass_rate: finished === 0 ? null : passed / finished,
    avg_execution_time: row.avg_time === null ? null : Number(row.avg_time),
    last_execution_at: row.last_at ? row.last_at.toISOString() : null,
  };
}
