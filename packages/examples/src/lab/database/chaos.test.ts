import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SeededLabDatabase, startSeededLabDatabase } from '../../../test/support/lab-database';
import {
  bloatTable,
  dropIndex,
  holdLocks,
  insertLowConfidenceDecisions,
  insertSlowExecutions,
  insertStuckExecutions,
  runSlowQueries,
} from './chaos';
import { agentConfidence, testExecutionDuration, testExecutionDurationP95 } from './database-metrics';

let seeded: SeededLabDatabase;
let url: string;
let db: pg.Client;

beforeAll(async () => {
  seeded = await startSeededLabDatabase();
  ({ url, db } = seeded);
});

afterAll(async () => {
  await seeded?.close();
});

/** Runs `sql` on a fresh session with a short lock_timeout: rejects when the statement would wait on a lock. */
async function withLockTimeout(sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET lock_timeout = '200ms'`);
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

async function until(probe: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('holdLocks', () => {
  it('table mode makes every query on the table wait until stop()', async () => {
    const lock = await holdLocks({ url, table: 'test_executions' });
    try {
      await expect(withLockTimeout('SELECT count(*) FROM test_executions')).rejects.toThrow(/lock timeout/);
      // Other tables are untouched.
      await expect(withLockTimeout('SELECT count(*) FROM agent_decisions')).resolves.toBeDefined();
    } finally {
      await lock.stop();
    }
    const { rows } = await withLockTimeout('SELECT count(*)::int AS n FROM test_executions');
    expect(rows[0].n).toBe(600);
  });

  it('rows mode blocks writers but not readers', async () => {
    const lock = await holdLocks({ url, table: 'agent_decisions', mode: 'rows' });
    try {
      await expect(
        withLockTimeout(`UPDATE agent_decisions SET confidence = confidence WHERE agent_type = 'generation'`),
      ).rejects.toThrow(/lock timeout/);
      await expect(withLockTimeout('SELECT count(*) FROM agent_decisions')).resolves.toBeDefined();
    } finally {
      await lock.stop();
    }
    await expect(
      withLockTimeout(`UPDATE agent_decisions SET confidence = confidence WHERE agent_type = 'generation'`),
    ).resolves.toBeDefined();
  });

  it('accepts only the lab’s tables, naming the field', async () => {
    await expect(holdLocks({ url, table: 'pg_class' as 'users' })).rejects.toThrow(
      /table: expected one of users/,
    );
  });
});

describe('runSlowQueries', () => {
  const activeQuery =
    "SELECT pid, NOW() - query_start AS duration, query FROM pg_stat_activity WHERE state = 'active' AND query NOT LIKE '%pg_stat%' ORDER BY duration DESC;";

  it('shows active queries on test_executions in runbook 5’s diagnosis, and stop() cancels them', async () => {
    const slow = await runSlowQueries({
      url,
      count: 2,
      seconds: 120,
      applicationName: 'aiwebtest-lab-test-slow',
    });
    let ours: () => Promise<number>;
    try {
      ours = async () => {
        const { rows } = await db.query(activeQuery);
        return rows.filter((r) => /FROM test_executions CROSS JOIN pg_sleep/.test(r.query)).length;
      };
      expect(await ours()).toBe(2);
      const { rows } = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'aiwebtest-lab-test-slow' AND state = 'active'`,
      );
      expect(rows[0].n).toBe(2);
    } finally {
      const started = Date.now();
      await slow.stop();
      expect(Date.now() - started).toBeLessThan(5000);
    }
    expect(await until(async () => (await ours()) === 0)).toBe(true);
  });
});

describe('execution and decision rows', () => {
  it('stuck executions raise test_execution_duration above 600; stop() deletes them', async () => {
    expect(await testExecutionDuration(db)).toBe(0);
    const stuck = await insertStuckExecutions({ url, count: 3, runningFor: 900 });
    try {
      expect(await testExecutionDuration(db)).toBeGreaterThan(600);
      const { rows } = await db.query(
        "SELECT execution_id, started_at, NOW() - started_at AS duration FROM test_executions WHERE result = 'running' ORDER BY started_at;",
      );
      expect(rows).toHaveLength(3);
    } finally {
      await stuck.stop();
    }
    expect(await testExecutionDuration(db)).toBe(0);
    const { rows } = await db.query('SELECT count(*)::int AS n FROM test_executions');
    expect(rows[0].n).toBe(600);
  });

  it('slow executions raise the p95 above 300 and show in runbook 9’s query; stop() deletes them', async () => {
    const before = await testExecutionDurationP95(db);
    expect(before).toBeGreaterThan(30);
    expect(before).toBeLessThanOrEqual(110);
    const slow = await insertSlowExecutions({ url, count: 20, executionTime: 420 });
    try {
      expect(await testExecutionDurationP95(db)).toBeGreaterThan(300);
      const { rows } = await db.query(
        'SELECT test_id, execution_time, browser FROM test_executions WHERE execution_time > 300 ORDER BY created_at DESC LIMIT 10;',
      );
      expect(rows).toHaveLength(10);
      expect(rows.every((r) => r.execution_time === 420)).toBe(true);
    } finally {
      await slow.stop();
    }
    expect(await testExecutionDurationP95(db)).toBeCloseTo(before, 5);
  });

  it('low-confidence decisions pull one agent’s mean below 0.7; stop() restores it', async () => {
    const healthy = await agentConfidence(db);
    expect(healthy.map((a) => a.agent)).toContain('generation_agent');
    expect(healthy.every((a) => a.mean >= 0.85 && a.mean <= 0.97)).toBe(true);
    const low = await insertLowConfidenceDecisions({
      url,
      agentType: 'generation',
      count: 60,
      confidence: 0.5,
    });
    try {
      const now = await agentConfidence(db);
      expect(now.find((a) => a.agentType === 'generation')?.mean).toBeLessThan(0.7);
      expect(now.find((a) => a.agentType === 'analysis')?.mean).toBeGreaterThanOrEqual(0.85);
    } finally {
      await low.stop();
    }
    expect(
      (await agentConfidence(db)).find((a) => a.agentType === 'generation')?.mean,
    ).toBeGreaterThanOrEqual(0.85);
  });

  it('rejects an unknown agent type, naming the field', async () => {
    await expect(
      insertLowConfidenceDecisions({ url, agentType: 'nope' as 'generation', count: 1, confidence: 0.5 }),
    ).rejects.toThrow(/agentType: expected one of requirements/);
  });
});

describe('runbook 5 helpers', () => {
  it('bloatTable leaves dead tuples with autovacuum off; stop() vacuums and restores autovacuum', async () => {
    const deadTuples = async () => {
      const { rows } = await db.query(
        `SELECT n_dead_tup::int AS n FROM pg_stat_user_tables WHERE relname = 'test_executions'`,
      );
      return rows[0].n as number;
    };
    const options = async () => {
      const { rows } = await db.query(
        `SELECT reloptions FROM pg_class WHERE oid = 'test_executions'::regclass`,
      );
      return rows[0].reloptions as string[] | null;
    };
    const bloat = await bloatTable({ url, table: 'test_executions', rows: 20_000 });
    try {
      expect(await options()).toEqual(['autovacuum_enabled=false']);
      expect(await until(async () => (await deadTuples()) >= 20_000)).toBe(true);
      const { rows } = await db.query('SELECT count(*)::int AS n FROM test_executions');
      expect(rows[0].n).toBe(600);
    } finally {
      await bloat.stop();
    }
    expect(await options()).toBeNull();
    expect(await until(async () => (await deadTuples()) === 0)).toBe(true);
  });

  it('dropIndex removes an index and stop() puts the same definition back', async () => {
    const definition = async () => {
      const { rows } = await db.query(
        `SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_test_executions_finished_at'`,
      );
      return rows[0]?.indexdef as string | undefined;
    };
    const original = await definition();
    expect(original).toMatch(/finished_at/);
    const dropped = await dropIndex({ url, index: 'idx_test_executions_finished_at' });
    expect(await definition()).toBeUndefined();
    await dropped.stop();
    expect(await definition()).toBe(original);
  });
});
