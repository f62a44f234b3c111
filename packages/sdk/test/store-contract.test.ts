import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../src/engine/audit-chain';
import type { AuditEntry, Fence, StepWrite } from '../src/store/records';
import { DRIVERS, type StoreUnderTest } from './support/stores';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const audit = (kind: string, runId?: string): AuditEntry => ({
  ts: T0.toISOString(),
  actor: 'test',
  kind,
  ...(runId ? { runId } : {}),
});
let seq = 0;
const step = (name: string, status: StepWrite['status'] = 'succeeded'): StepWrite => ({
  name,
  seq: ++seq,
  kind: status === 'applying' ? 'act' : 'check',
  status,
  result: { name },
  error: null,
  attempts: 1,
  startedAt: T0,
  endedAt: status === 'applying' ? null : T0,
});

// One contract, two drivers: the embedded store must behave exactly like PostgreSQL.
describe.each(Object.entries(DRIVERS))('run store contract on %s', (_name, open) => {
  let sut: StoreUnderTest;
  beforeAll(async () => {
    sut = await open();
  });
  afterAll(async () => {
    await sut.dispose();
  });
  let n = 0;
  const id = (p: string) => `${p}_${++n}`;
  const create = (runId: string, claim?: { owner: string; leaseUntil: Date }, createdAt = T0) =>
    sut.store
      .createRun(
        {
          id: runId,
          runbookId: 'rb',
          mode: 'execute',
          input: { x: 1 },
          requestedBy: 'alice',
          now: createdAt,
          ...(claim ? { claim } : {}),
        },
        audit('run.created', runId),
      )
      .then((r) => r.run);
  const fence = (runId: string, owner = 'w1', now = T0): Fence => ({
    runId,
    owner,
    now,
    leaseUntil: at(30_000),
  });

  it('migrates idempotently', async () => {
    await sut.store.migrate();
    await sut.store.migrate();
    const versions = await sut.store.driver.query<{ version: number }>(
      'SELECT version FROM runbook_migrations',
    );
    expect(versions.map((v) => Number(v.version))).toEqual([1, 2]);
  });

  it('creates, reads and lists runs', async () => {
    const runId = id('run');
    const created = await create(runId);
    expect(created).toMatchObject({
      id: runId,
      status: 'queued',
      mode: 'execute',
      input: { x: 1 },
      requestedBy: 'alice',
      attempts: 0,
    });
    expect(created.createdAt.toISOString()).toBe(T0.toISOString());
    expect((await sut.store.getRun(runId))?.id).toBe(runId);
    expect(await sut.store.getRun('run_missing')).toBeUndefined();
    const listed = await sut.store.listRuns({ runbookId: 'rb', status: 'queued', limit: 500 });
    expect(listed.map((r) => r.id)).toContain(runId);
  });

  it('creates one run per requester and idempotency key, keeping its context', async () => {
    const key = `key-${id('k')}`;
    const first = id('idem');
    const newRun = (runId: string, requestedBy: string) => ({
      id: runId,
      runbookId: 'rb',
      mode: 'diagnose' as const,
      input: {},
      requestedBy,
      now: T0,
      context: { dashboard: 'agents', alert: { fingerprint: 'f1' } },
      idempotencyKey: key,
    });
    const made = await sut.store.createRun(newRun(first, 'alertmanager'), audit('run.created', first));
    expect(made).toMatchObject({ created: true, run: { id: first, idempotencyKey: key } });
    expect(made.run.context).toEqual({ dashboard: 'agents', alert: { fingerprint: 'f1' } });
    const auditBefore = (await sut.store.auditHead()).seq;
    // Concurrent retries of the same request: none creates a second run or a second audit entry.
    const retries = await Promise.all(
      [1, 2, 3].map((i) =>
        sut.store.createRun(newRun(`${first}_retry${i}`, 'alertmanager'), audit('run.created', first)),
      ),
    );
    expect(retries.map((r) => [r.created, r.run.id])).toEqual([
      [false, first],
      [false, first],
      [false, first],
    ]);
    expect((await sut.store.auditHead()).seq).toBe(auditBefore);
    // The same key from someone else is another request.
    const other = id('idem');
    expect((await sut.store.createRun(newRun(other, 'bob'), audit('run.created', other))).created).toBe(true);
  });

  it('pages through runs newest first with a cursor', async () => {
    const runbookId = `paged-${id('rb')}`;
    const ids = [0, 1, 2, 3, 4].map(() => id('page'));
    // Two share a creation time: the id breaks the tie, so no run is skipped or repeated.
    const times = [at(1), at(2), at(2), at(3), at(4)];
    for (const [i, runId] of ids.entries()) {
      await sut.store.createRun(
        { id: runId, runbookId, mode: 'diagnose', input: {}, requestedBy: 'a', now: times[i] as Date },
        audit('run.created', runId),
      );
    }
    const seen: string[] = [];
    let after: { createdAt: Date; id: string } | undefined;
    for (;;) {
      const page = await sut.store.listRuns({ runbookId, limit: 2, ...(after ? { after } : {}) });
      if (page.length === 0) break;
      seen.push(...page.map((r) => r.id));
      const last = page[page.length - 1] as { createdAt: Date; id: string };
      after = { createdAt: last.createdAt, id: last.id };
    }
    const expected = [...ids.entries()]
      .sort(
        ([a], [b]) =>
          (times[b] as Date).getTime() - (times[a] as Date).getTime() ||
          (ids[b] as string).localeCompare(ids[a] as string),
      )
      .map(([, runId]) => runId);
    expect(seen).toEqual(expected);
  });

  it('reads the audit entries of one run', async () => {
    const runId = id('audited');
    await create(runId);
    await sut.store.appendAudit(audit('note', runId));
    await sut.store.appendAudit(audit('note', `${runId}_other`));
    const rows = await sut.store.readRunAudit(runId);
    expect(rows.map((r) => JSON.parse(r.entry).kind)).toEqual(['run.created', 'note']);
    const after = await sut.store.readRunAudit(runId, rows[0]?.seq);
    expect(after.map((r) => r.seq)).toEqual([rows[1]?.seq]);
  });

  it('claims queued runs once, and runs whose lease expired again', async () => {
    // Drain whatever earlier tests left queued.
    while (await sut.store.claimNextRun('drain', at(0), at(1e12), ['rb'])) {}
    const a = id('claim');
    const b = id('claim');
    await create(a, undefined, at(1));
    await create(b, undefined, at(2));
    const first = await sut.store.claimNextRun('w1', at(10), at(1_000), ['rb']);
    const second = await sut.store.claimNextRun('w2', at(10), at(1_000), ['rb']);
    expect([first?.id, second?.id]).toEqual([a, b]);
    expect(first).toMatchObject({ status: 'running', leaseOwner: 'w1', attempts: 1 });
    expect(await sut.store.claimNextRun('w3', at(500), at(2_000), ['rb'])).toBeUndefined();
    // w1 died: its lease runs out and another worker takes the run over.
    const taken = await sut.store.claimNextRun('w3', at(1_001), at(5_000), ['rb']);
    expect(taken).toMatchObject({ id: a, leaseOwner: 'w3', attempts: 2 });
    // The old owner's writes are refused from now on.
    expect(await sut.store.recordStep(fence(a, 'w1', at(1_002)), step('late'), audit('x'))).toBe(false);
    expect(await sut.store.recordStep(fence(a, 'w3', at(1_002)), step('ok'), audit('x'))).toBe(true);
  });

  it('never hands the same run to concurrent claimers (FOR UPDATE SKIP LOCKED)', async () => {
    while (await sut.store.claimNextRun('drain', at(0), at(1e12), ['rb'])) {}
    const ids = Array.from({ length: 12 }, () => id('race'));
    for (const r of ids) await create(r, undefined, at(3));
    const claims = await Promise.all(
      Array.from({ length: 16 }, (_, i) => sut.store.claimNextRun(`racer-${i}`, at(10), at(100_000), ['rb'])),
    );
    const claimed = claims.flatMap((c) => (c ? [c.id] : []));
    expect(claimed.sort()).toEqual([...ids].sort());
    expect(new Set(claimed).size).toBe(ids.length);
  });

  it('claims only runs of the runbooks the claimer can execute', async () => {
    while (await sut.store.claimNextRun('drain', at(0), at(1e12), ['rb'])) {}
    const foreign = id('foreign');
    await sut.store.createRun(
      { id: foreign, runbookId: 'not-loaded-here', mode: 'execute', input: {}, requestedBy: 'a', now: at(4) },
      audit('run.created', foreign),
    );
    expect(await sut.store.claimNextRun('w1', at(10), at(1_000), ['rb'])).toBeUndefined();
    expect((await sut.store.claimNextRun('w2', at(10), at(1_000), ['rb', 'not-loaded-here']))?.id).toBe(
      foreign,
    );
  });

  it('claims a specific run only when nobody live holds it', async () => {
    const r = id('byid');
    await create(r, { owner: 'w1', leaseUntil: at(1_000) });
    expect(await sut.store.claimRun(r, 'w2', at(500), at(2_000))).toBeUndefined();
    expect((await sut.store.claimRun(r, 'w2', at(1_500), at(2_000)))?.leaseOwner).toBe('w2');
  });

  it('records steps fenced by the lease, upserting by name', async () => {
    const r = id('steps');
    await create(r, { owner: 'w1', leaseUntil: at(30_000) });
    expect(await sut.store.recordStep(fence(r), step('a', 'applying'), audit('a'))).toBe(true);
    expect(await sut.store.recordStep(fence(r), step('a'), audit('a'))).toBe(true);
    expect(await sut.store.recordStep(fence(r), step('b'), audit('b'))).toBe(true);
    expect(await sut.store.recordStep(fence(r, 'intruder'), step('c'), audit('c'))).toBe(false);
    const steps = await sut.store.getSteps(r);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'succeeded'],
      ['b', 'succeeded'],
    ]);
    expect(steps[0]?.result).toEqual({ name: 'a' });
  });

  it('locks a resource for one run at a time and spends its budget under the lock', async () => {
    const r1 = id('lock');
    const r2 = id('lock');
    await create(r1, { owner: 'w1', leaseUntil: at(30_000) });
    await create(r2, { owner: 'w2', leaseUntil: at(30_000) });
    const resource = `test:${id('res')}`;
    const budget = { action: 'restart', max: 1, windowStart: at(-3_600_000) };
    const lock = { resource, until: at(10_000) };
    expect(
      await sut.store.beginAction(fence(r1), step('act', 'applying'), lock, budget, audit('begin')),
    ).toEqual({ ok: true });
    const refused = await sut.store.beginAction(
      fence(r2, 'w2'),
      step('act', 'applying'),
      lock,
      null,
      audit('begin'),
    );
    expect(refused).toMatchObject({ ok: false, reason: 'locked', holder: { runId: r1, step: 'act' } });
    expect(
      await sut.store.finishAction(
        fence(r1),
        step('act'),
        resource,
        { action: 'restart', revertAt: at(60_000) },
        audit('fin'),
      ),
    ).toBe(true);
    expect(await sut.store.getLock(resource)).toBeUndefined();
    // Free now, but the budget of one restart per hour is spent.
    expect(
      await sut.store.beginAction(fence(r2, 'w2'), step('act', 'applying'), lock, budget, audit('begin')),
    ).toEqual({
      ok: false,
      reason: 'budget',
      used: 1,
    });
    expect(await sut.store.budgetUsed(resource, 'restart', at(-1))).toBe(1);
    // Outside the window it is available again.
    expect(
      await sut.store.beginAction(
        fence(r2, 'w2'),
        step('act', 'applying'),
        lock,
        { ...budget, windowStart: at(1) },
        audit('begin'),
      ),
    ).toEqual({ ok: true });
    expect(
      await sut.store.beginAction(
        fence(r2, 'lost'),
        step('x', 'applying'),
        { resource: 'test:other', until: at(1) },
        null,
        audit('b'),
      ),
    ).toEqual({
      ok: false,
      reason: 'lease-lost',
    });
  });

  it('lets an expired lock be taken over', async () => {
    const resource = `test:${id('stale')}`;
    expect(
      await sut.store.tryLock(
        { resource, runId: 'r-dead', step: 's', owner: 'dead', expiresAt: at(100) },
        at(0),
      ),
    ).toBe(true);
    expect(
      await sut.store.tryLock(
        { resource, runId: 'r2', step: 's', owner: 'alive', expiresAt: at(5_000) },
        at(50),
      ),
    ).toBe(false);
    expect(
      await sut.store.tryLock(
        { resource, runId: 'r2', step: 's', owner: 'alive', expiresAt: at(5_000) },
        at(101),
      ),
    ).toBe(true);
  });

  it('requests, voids and decides approvals, requeueing or cancelling the run', async () => {
    const r = id('apr');
    await create(r, { owner: 'w1', leaseUntil: at(30_000) });
    const request = (apr: string, hash: string) =>
      sut.store.requestApproval(
        fence(r),
        {
          id: apr,
          runId: r,
          step: 'restart',
          planHash: hash,
          plan: { hash },
          requestedBy: 'alice',
          requestedAt: T0,
          expiresAt: at(3_600_000),
        },
        step('restart', 'waiting_approval'),
        audit('approval.requested', r),
      );
    await request(`${r}-1`, 'h1');
    await request(`${r}-2`, 'h2');
    expect((await sut.store.listApprovals(r)).map((a) => [a.planHash, a.status])).toEqual([
      ['h1', 'void'],
      ['h2', 'pending'],
    ]);
    expect(await sut.store.suspendRun(fence(r), audit('run.suspended', r))).toBe(true);
    expect((await sut.store.getRun(r))?.status).toBe('waiting_approval');
    const decided = await sut.store.decideApproval(
      `${r}-2`,
      { status: 'approved', by: 'bob', reason: 'ok', breakGlass: false, now: T0 },
      null,
      audit('approval.approved', r),
    );
    expect(decided).toMatchObject({ status: 'approved', decidedBy: 'bob' });
    expect((await sut.store.getRun(r))?.status).toBe('queued');
    expect(
      await sut.store.decideApproval(
        `${r}-2`,
        { status: 'approved', by: 'carol', reason: null, breakGlass: false, now: T0 },
        null,
        audit('x'),
      ),
    ).toBeUndefined();
    expect((await sut.store.latestApproval(r, 'restart'))?.id).toBe(`${r}-2`);
  });

  it('cancels queued runs at once and flags running ones', async () => {
    const queued = id('cancel');
    const running = id('cancel');
    await create(queued);
    await create(running, { owner: 'w1', leaseUntil: at(30_000) });
    const err = { code: 'CANCELLED', name: 'CancelledError', message: 'x' };
    expect(await sut.store.cancelRun(queued, 'ops', 'why', T0, err, audit('c'))).toBe('cancelled');
    expect(await sut.store.cancelRun(running, 'ops', 'why', T0, err, audit('c'))).toBe('requested');
    expect(await sut.store.heartbeat(fence(running))).toEqual({ held: true, cancelRequested: 'ops: why' });
    expect(await sut.store.cancelRun(queued, 'ops', 'why', T0, err, audit('c'))).toBe('final');
    expect(await sut.store.cancelRun('run_nope', 'ops', 'why', T0, err, audit('c'))).toBe('missing');
    expect(await sut.store.finishRun(fence(running), 'cancelled', null, err, audit('f'))).toBe(true);
    expect(await sut.store.heartbeat(fence(running))).toEqual({ held: false, cancelRequested: null });
  });

  it('releases a run back to the queue only for its lease owner, audited with it', async () => {
    const r = id('release');
    await create(r, { owner: 'w1', leaseUntil: at(30_000) });
    const head = (await sut.store.auditHead()).seq;
    // A process that no longer owns the run (its lease was taken over) changes nothing and audits nothing.
    expect(await sut.store.releaseRun(fence(r, 'w2', at(1_000)), audit('run.handed-over', r))).toBe(false);
    expect(await sut.store.getRun(r)).toMatchObject({ status: 'running', leaseOwner: 'w1' });
    expect((await sut.store.auditHead()).seq).toBe(head);
    expect(await sut.store.readRunAudit(r)).toHaveLength(1); // only run.created

    expect(await sut.store.releaseRun(fence(r, 'w1', at(1_000)), audit('run.handed-over', r))).toBe(true);
    const released = await sut.store.getRun(r);
    expect(released).toMatchObject({ status: 'queued', leaseOwner: null, leaseExpiresAt: null });
    expect(released?.updatedAt.toISOString()).toBe(at(1_000).toISOString());
    expect((await sut.store.auditHead()).seq).toBe(head + 1);
    const kinds = (await sut.store.readRunAudit(r)).map((row) => JSON.parse(row.entry).kind);
    expect(kinds).toEqual(['run.created', 'run.handed-over']);
    // Released once: a second release (or one by the old owner after a re-claim) writes nothing.
    expect(await sut.store.releaseRun(fence(r, 'w1', at(1_100)), audit('run.handed-over', r))).toBe(false);
    expect((await sut.store.auditHead()).seq).toBe(head + 1);
    // Any process may claim it again at once.
    expect((await sut.store.claimRun(r, 'w3', at(1_200), at(31_200)))?.leaseOwner).toBe('w3');
  });

  it('claims due expiring actions once', async () => {
    const due = await sut.store.claimDueExpiring('w1', at(120_000), at(130_000), 100);
    expect(due.length).toBeGreaterThan(0);
    expect(await sut.store.claimDueExpiring('w2', at(120_000), at(130_000), 100)).toEqual([]);
    const first = due[0] as NonNullable<(typeof due)[0]>;
    expect(
      await sut.store.completeExpiring(first.runId, first.step, 'w2', 'reverted', null, audit('x')),
    ).toBe(false);
    expect(
      await sut.store.completeExpiring(first.runId, first.step, 'w1', 'reverted', null, audit('x')),
    ).toBe(true);
  });

  it('chains an audit entry to every write', async () => {
    const verdict = await verifyAuditChain(sut.store, 7); // small pages exercise the paging
    expect(verdict.problems).toEqual([]);
    expect(verdict.entries).toBeGreaterThan(20);
    expect(verdict.headHash).toBe((await sut.store.auditHead()).hash);
  });
});
