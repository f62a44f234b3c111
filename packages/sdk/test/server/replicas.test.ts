import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/server/identity';
import { POSTGRES_URL, postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';

// Real `runbook serve` processes (main.ts under Node with tsx, so the child's pid is the engine's pid and
// appears in the lease owner) sharing one PostgreSQL schema, as replicas of the service run.
const sdk = fileURLToPath(new URL('../..', import.meta.url));
const main = join(sdk, 'src', 'cli', 'main.ts');
const MODULE = fileURLToPath(new URL('./replica-runbooks.ts', import.meta.url));
const TOKEN = 'replica-test-editor-token';

/** The timings a replica runs with: `runbook serve --lease-ttl --poll-interval --shutdown-grace`. */
interface Timing {
  leaseTtlMs: number;
  pollMs: number;
  graceMs: number;
}
const POLL_MS = 250;
/** A short lease, so that the kill case sees the dead replica's run resumed after it within seconds. */
const SHORT_LEASE: Timing = { leaseTtlMs: 3_000, pollMs: POLL_MS, graceMs: 2_000 };
/**
 * A lease far longer than the hand-over takes, so that a run resumed "at once" is clearly not one resumed
 * because its lease ran out.
 */
const LONG_LEASE: Timing = { leaseTtlMs: 20_000, pollMs: POLL_MS, graceMs: 2_000 };
/** A grace period no test waits out: only the second signal can make the replica hand over in time. */
const LONG_GRACE: Timing = { leaseTtlMs: 20_000, pollMs: POLL_MS, graceMs: 60_000 };

const dir = mkdtempSync(join(tmpdir(), 'runbook-replicas-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({ tokens: [{ name: 'ci', sha256: hashToken(TOKEN), role: 'editor' }] }),
);

interface Replica {
  child: ChildProcessWithoutNullStreams;
  pid: number;
  base: string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const replicas: Replica[] = [];

async function startReplica(schema: string, timing: Timing): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      main,
      'serve',
      '--port',
      '0',
      '--store-url',
      POSTGRES_URL,
      '--store-schema',
      schema,
      '--lease-ttl',
      `${timing.leaseTtlMs}ms`,
      '--poll-interval',
      `${timing.pollMs}ms`,
      '--shutdown-grace',
      `${timing.graceMs}ms`,
    ],
    {
      cwd: sdk,
      env: { ...process.env, RUNBOOK_MODULES: MODULE, RUNBOOK_TOKENS_FILE: tokensFile, RUNBOOK_ACTOR: 'ci' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  child.stdin.end();
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const match = /runbook service listening on (http:\/\/\S+)/.exec(stdout);
    if (match?.[1]) {
      const replica = { child, pid: child.pid as number, base: match[1], stdout: () => stdout, exited };
      replicas.push(replica);
      return replica;
    }
    if (gone || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`replica did not start:\n${stdout}\n${stderr}`);
    }
    await pause(100);
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function post(replica: Replica, body: unknown) {
  const response = await fetch(`${replica.base}/api/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { runId: string; replayed: boolean } };
}

interface RunRow {
  status: string;
  lease_owner: string | null;
  attempts: number;
  ended_at: Date | null;
}

/** The pid in a lease owner (`<hostname>:<pid>:<random>/<claim>`). */
function pidOf(leaseOwner: string | null): number | undefined {
  const m = leaseOwner ? /^[^:]+:(\d+):/.exec(leaseOwner) : null;
  return m?.[1] ? Number(m[1]) : undefined;
}

/** One shared schema and a pair of replicas on it; `open` (in the suite's beforeAll) starts them. */
function replicaPair(prefix: string, timing: Timing) {
  const schema = uniqueSchema(prefix);
  let sut: StoreUnderTest | undefined;
  const pair: { a?: Replica; b?: Replica } = {};
  const run = async (runId: string) =>
    (await store().driver.query<RunRow>('SELECT * FROM runs WHERE id = $1', [runId]))[0] as RunRow;
  const store = () => {
    if (!sut) throw new Error('opened in beforeAll');
    return sut.store;
  };
  const open = async () => {
    sut = await postgresStore(schema); // creates and migrates the schema both replicas open
    [pair.a, pair.b] = await Promise.all([startReplica(schema, timing), startReplica(schema, timing)]);
  };
  afterAll(async () => {
    for (const r of [pair.a, pair.b]) r?.child.kill('SIGKILL');
    await Promise.all([pair.a?.exited, pair.b?.exited]);
    await sut?.dispose();
  });
  /** Waits until the run's `wait` step sleeps, and returns the replica holding it and the other one. */
  const holderOf = async (runId: string): Promise<{ holder: Replica; other: Replica }> => {
    const { a, b } = pair as Required<typeof pair>;
    for (let i = 0; i < 200; i++) {
      const steps = await store().getSteps(runId);
      const pid = pidOf((await run(runId)).lease_owner);
      if (steps.some((s) => s.name === 'wait' && s.status === 'sleeping') && pid) {
        if (pid === a.pid) return { holder: a, other: b };
        if (pid === b.pid) return { holder: b, other: a };
        throw new Error(`lease owner pid ${pid} is neither replica (${a.pid}, ${b.pid})`);
      }
      await pause(100);
    }
    throw new Error(`run ${runId} never reached its sleep`);
  };
  /** Polls until the run ends, noting when `other` claimed it. */
  const untilEnded = async (runId: string, other: Replica, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let claimedAt: number | undefined;
    for (;;) {
      const row = await run(runId);
      if (claimedAt === undefined && pidOf(row.lease_owner) === other.pid) claimedAt = Date.now();
      if (row.ended_at) return { row, claimedAt, endedAt: Date.now() };
      if (Date.now() > deadline) throw new Error(`run ${runId} still ${row.status} after ${timeoutMs}ms`);
      await pause(100);
    }
  };
  /** The pid each check of the run reported. */
  const checkPids = async (runId: string) =>
    Object.fromEntries(
      (await store().getSteps(runId))
        .filter((s) => s.kind === 'check')
        .map((s) => [s.name, (s.result as { data: { pid: number } }).data.pid]),
    );
  /** The run's `run.handed-over` audit entry, if any. */
  const handOverOf = async (runId: string) =>
    (await store().readRunAudit(runId))
      .map((r) => JSON.parse(r.entry))
      .find((e) => e.kind === 'run.handed-over') as { ts: string; data: { from: string } } | undefined;
  return {
    pair: pair as Required<typeof pair>,
    timing,
    open,
    store,
    run,
    holderOf,
    untilEnded,
    checkPids,
    handOverOf,
  };
}

afterAll(() => {
  for (const r of replicas) r.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('runbook serve replicas sharing one PostgreSQL', () => {
  const one = replicaPair('rep1', SHORT_LEASE);
  const two = replicaPair('rep2', LONG_LEASE);
  const three = replicaPair('rep3', LONG_GRACE);
  beforeAll(async () => {
    await Promise.all([one.open(), two.open(), three.open()]);
  }, 90_000);

  it('starts one run for the same request (same idempotency key) sent to both at once', async () => {
    const { a, b } = one.pair;
    const request = {
      runbookId: 'long-wait',
      mode: 'execute',
      input: { seconds: 0 },
      idempotencyKey: 'alert-storm-1',
    };
    const answers = await Promise.all([
      post(a, request),
      post(b, request),
      post(a, request),
      post(b, request),
    ]);
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    const ids = new Set(answers.map((r) => r.body.runId));
    expect(ids.size).toBe(1);
    expect(answers.filter((r) => !r.body.replayed)).toHaveLength(1);
    const rows = await one
      .store()
      .driver.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM runs WHERE idempotency_key = 'alert-storm-1'",
      );
    expect(rows[0]?.n).toBe(1);
    const [runId] = [...ids] as [string];
    const { row } = await one.untilEnded(runId, a, 20_000);
    expect(row).toMatchObject({ status: 'succeeded', attempts: 1 });
  }, 30_000);

  // The slow scenarios wait for a lease or a grace period: they run side by side, each on its own pair.
  it.concurrent('resumes the run of a replica killed with SIGKILL on the other once its lease expired', async () => {
    const { leaseTtlMs, pollMs } = one.timing;
    const started = await post(one.pair.a, {
      runbookId: 'long-wait',
      mode: 'execute',
      input: { seconds: 2 },
    });
    expect(started.status).toBe(202);
    const runId = started.body.runId;
    const { holder, other } = await one.holderOf(runId);
    holder.child.kill('SIGKILL');
    const killedAt = Date.now();
    expect((await holder.exited).signal).toBe('SIGKILL');

    const { row, endedAt } = await one.untilEnded(runId, other, leaseTtlMs + 20_000);
    expect(row).toMatchObject({ status: 'succeeded', attempts: 2 });
    // Taken over only once the dead replica's lease ran out (renewed every third of it, so it had at
    // least two thirds left at the kill): the other replica's first step of the run came after that.
    // Then at the next poll; the sleep's wake time had passed by then, so it finished at once.
    const resumed = (await one.store().getSteps(runId)).find((s) => s.name === 'after')?.startedAt;
    expect((resumed?.getTime() ?? 0) - killedAt).toBeGreaterThanOrEqual((2 * leaseTtlMs) / 3 - 250);
    expect(endedAt - killedAt).toBeLessThanOrEqual(leaseTtlMs + pollMs + 2_000);
    expect(await one.checkPids(runId)).toEqual({ before: holder.pid, after: other.pid });
    expect(await one.handOverOf(runId)).toBeUndefined();
    expect((await fetch(`${other.base}/healthz`)).status).toBe(200);
  }, 60_000);

  it.concurrent('hands the run of a replica stopped with SIGTERM over to the other after the grace period, which resumes it at once', async () => {
    const { leaseTtlMs, pollMs, graceMs } = two.timing;
    // Longer than the grace period, so the run is still sleeping when the grace period ends.
    const seconds = graceMs / 1000 + 2;
    const started = await post(two.pair.a, { runbookId: 'long-wait', mode: 'execute', input: { seconds } });
    expect(started.status).toBe(202);
    const runId = started.body.runId;
    const { holder, other } = await two.holderOf(runId);
    holder.child.kill('SIGTERM');
    const terminatedAt = Date.now();

    const { row, claimedAt, endedAt } = await two.untilEnded(runId, other, leaseTtlMs + 20_000);
    expect(await holder.exited).toEqual({ code: 0, signal: null });
    expect(holder.stdout()).toContain('handed over 1 run(s)');
    expect(holder.stdout()).toContain(`grace period of ${graceMs}ms over`);
    expect(row).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(await two.checkPids(runId)).toEqual({ before: holder.pid, after: other.pid });

    const audit = (await two.store().readRunAudit(runId)).map((r) => JSON.parse(r.entry));
    const handOver = await two.handOverOf(runId);
    expect(handOver).toBeDefined();
    expect(pidOf(handOver?.data.from ?? null)).toBe(holder.pid);
    expect(audit.map((e) => e.kind)).not.toContain('run.cancelled');
    // Handed over when the grace period ended, not before.
    const handedAt = Date.parse(handOver?.ts ?? '');
    expect(handedAt - terminatedAt).toBeGreaterThanOrEqual(graceMs - 250);
    expect(handedAt - terminatedAt).toBeLessThan(graceMs + 3_000);
    // Claimed within a poll interval or two of the hand-over, long before the holder's lease would have
    // expired (the lease is 20 s here): the hand-over, not the lease, moved the run.
    expect(claimedAt).toBeDefined();
    expect((claimedAt as number) - handedAt).toBeLessThan(pollMs + 2_000);
    expect((claimedAt as number) - terminatedAt).toBeLessThan(leaseTtlMs / 2);
    expect(endedAt - handedAt).toBeLessThan(leaseTtlMs / 2);
  }, 60_000);

  it.concurrent('hands the run over at once on a second SIGTERM, without waiting out the grace period', async () => {
    const { leaseTtlMs, pollMs, graceMs } = three.timing;
    const started = await post(three.pair.a, {
      runbookId: 'long-wait',
      mode: 'execute',
      input: { seconds: 5 },
    });
    expect(started.status).toBe(202);
    const runId = started.body.runId;
    const { holder, other } = await three.holderOf(runId);
    holder.child.kill('SIGTERM');
    // The first signal starts the shutdown (the replica waits for its run: the grace period is a minute).
    for (let i = 0; i < 100 && !holder.stdout().includes('shutting down'); i++) await pause(50);
    expect(holder.stdout()).toContain('shutting down');
    await pause(300);
    expect((await three.run(runId)).lease_owner).toMatch(new RegExp(`:${holder.pid}:`));
    holder.child.kill('SIGTERM');
    const againAt = Date.now();

    const { row, claimedAt } = await three.untilEnded(runId, other, 20_000);
    expect(await holder.exited).toEqual({ code: 0, signal: null });
    expect(holder.stdout()).toContain('asked to hand over at once');
    expect(holder.stdout()).toContain('handed over 1 run(s)');
    expect(row).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(await three.checkPids(runId)).toEqual({ before: holder.pid, after: other.pid });
    const handOver = await three.handOverOf(runId);
    expect(pidOf(handOver?.data.from ?? null)).toBe(holder.pid);
    const handedAt = Date.parse(handOver?.ts ?? '');
    expect(handedAt - againAt).toBeLessThan(1_500);
    expect(handedAt - againAt).toBeLessThan(graceMs / 10);
    expect((claimedAt as number) - handedAt).toBeLessThan(pollMs + 2_000);
    expect((claimedAt as number) - againAt).toBeLessThan(leaseTtlMs / 4);
  }, 60_000);
});
