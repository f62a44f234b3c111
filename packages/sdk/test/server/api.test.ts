import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { postgresStore, uniqueSchema } from '../support/stores';
import { listen } from './http-client';
import { addBoomRoute, serverFixture, TOKENS } from './server-fixture';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely; their schemas are tested via OpenAPI
type Any = any;

describe('runbook service API over HTTP (PostgreSQL)', () => {
  const f = serverFixture({ setup: addBoomRoute });

  it('answers the health probes without credentials', async () => {
    expect(await f.call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await f.call('GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('lists the runbooks with their input as JSON Schema', async () => {
    const { status, body } = await f.call('GET', '/api/v1/runbooks', { token: TOKENS.vera });
    expect(status).toBe(200);
    const runbooks = (body as Any).runbooks;
    expect(runbooks.map((r: Any) => r.id)).toEqual(['fix-high', 'fix-low', 'scale-check']);
    const scale = runbooks.find((r: Any) => r.id === 'scale-check');
    expect(scale).toMatchObject({
      title: 'Check a deployment scale',
      severity: 'P3',
      description: 'Reports the replica count it was given.',
      triggers: [{ kind: 'alert', match: { alertname: 'ScaleDrift' } }],
      input: {
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        properties: {
          namespace: { type: 'string', minLength: 1 },
          replicas: { type: 'integer', default: 1 },
        },
        required: ['namespace'],
      },
    });
  });

  it('shows one runbook, and 404s an unknown one naming the known ids', async () => {
    const one = await f.call('GET', '/api/v1/runbooks/fix-low', { token: TOKENS.vera });
    expect(one).toMatchObject({ status: 200, body: { id: 'fix-low', title: 'Fix fix-low', severity: 'P2' } });
    const missing = await f.call('GET', '/api/v1/runbooks/nope', { token: TOKENS.vera });
    expect(missing.status).toBe(404);
    expect((missing.body as Any).error.code).toBe('NOT_FOUND');
    expect((missing.body as Any).error.message).toContain('fix-low');
  });

  it('diagnoses as a viewer: the run with its findings, changing nothing', async () => {
    const { status, body } = await f.call('POST', '/api/v1/runbooks/fix-low/diagnose', {
      token: TOKENS.vera,
      body: { input: { key: 'diag', value: 'on' } },
    });
    expect(status).toBe(200);
    const detail = body as Any;
    expect(detail.run).toMatchObject({
      runbookId: 'fix-low',
      mode: 'diagnose',
      status: 'succeeded',
      requestedBy: 'vera',
      input: { key: 'diag', value: 'on' },
    });
    expect(detail.run.createdAt).toMatch(ISO);
    expect(detail.run.endedAt).toMatch(ISO);
    expect(detail.findings).toEqual([
      expect.objectContaining({ step: 'inspect', status: 'fail', summary: 'diag is null' }),
    ]);
    expect(detail.steps.map((s: Any) => [s.name, s.status])).toEqual([
      ['inspect', 'succeeded'],
      ['fix', 'skipped'],
    ]);
    expect(f.world.applies).toEqual([]);
    expect((await f.store.getRun(detail.run.id))?.requestedBy).toBe('vera');
  });

  it('plans as an editor and returns the planned change', async () => {
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'plan', value: 'x' }, mode: 'plan' },
    });
    expect(status).toBe(200);
    const detail = body as Any;
    expect(detail.run).toMatchObject({ mode: 'plan', status: 'succeeded', requestedBy: 'erin' });
    const fix = detail.steps.find((s: Any) => s.name === 'fix');
    expect(fix.result).toMatchObject({ status: 'planned', plan: { summary: 'set plan to "x"' } });
    expect(f.world.applies).toEqual([]);
  });

  it('diagnoses through POST /runs as a viewer', async () => {
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.vera,
      body: { runbookId: 'scale-check', input: { namespace: 'web' }, mode: 'diagnose' },
    });
    expect(status).toBe(200);
    expect((body as Any).findings).toEqual([
      expect.objectContaining({ step: 'replicas', status: 'ok', data: { replicas: 1 } }),
    ]);
  });

  it('queues an execute run (202) that a worker then executes', async () => {
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'exec', value: 'y' }, mode: 'execute' },
    });
    expect(status).toBe(202);
    const runId = (body as Any).runId as string;
    const queued = await f.call('GET', `/api/v1/runs/${runId}`, { token: TOKENS.vera });
    expect(queued).toMatchObject({
      status: 200,
      body: { run: { id: runId, status: 'queued', mode: 'execute' } },
    });
    expect(f.world.applies).toEqual([]);

    await f.engine.resume(runId);
    const done = await f.call('GET', `/api/v1/runs/${runId}`, { token: TOKENS.vera });
    expect((done.body as Any).run.status).toBe('succeeded');
    expect(f.world.get('exec')).toBe('y');
    expect(f.world.applies).toEqual(['exec']);
  });

  it('lists runs with filters and a limit', async () => {
    const all = await f.call('GET', '/api/v1/runs', { token: TOKENS.vera });
    expect(all.status).toBe(200);
    const runs = (all.body as Any).runs as Any[];
    expect(runs.length).toBeGreaterThanOrEqual(4);
    expect(runs[0].createdAt >= runs[runs.length - 1].createdAt).toBe(true);

    const plans = await f.call('GET', '/api/v1/runs?runbookId=fix-low&status=succeeded&limit=2', {
      token: TOKENS.vera,
    });
    const filtered = (plans.body as Any).runs as Any[];
    expect(filtered).toHaveLength(2);
    for (const run of filtered) expect(run).toMatchObject({ runbookId: 'fix-low', status: 'succeeded' });
  });

  it('approves only with a second admin (four eyes), then the run continues on a worker', async () => {
    const started = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.ada,
      body: { runbookId: 'fix-high', input: { key: 'risky', value: 'z' }, mode: 'execute' },
    });
    expect(started.status).toBe(202);
    const runId = (started.body as Any).runId as string;
    const waiting = await f.engine.resume(runId);
    expect(waiting.status).toBe('waiting_approval');

    const own = await f.call('POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.ada, body: {} });
    expect(own.status).toBe(403);
    expect((own.body as Any).error).toMatchObject({ code: 'FOUR_EYES', details: { requestedBy: 'ada' } });

    const editor = await f.call('POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.erin });
    expect(editor.status).toBe(403);
    expect((editor.body as Any).error).toMatchObject({ code: 'FORBIDDEN', details: { needed: 'admin' } });
    expect((editor.body as Any).error.message).toContain('admin role');
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);

    const ok = await f.call('POST', `/api/v1/runs/${runId}/approve`, {
      token: TOKENS.abe,
      body: { reason: 'looked at the plan' },
    });
    expect(ok.status).toBe(200);
    expect((ok.body as Any).approval).toMatchObject({
      status: 'approved',
      decidedBy: 'abe',
      requestedBy: 'ada',
      reason: 'looked at the plan',
      breakGlass: false,
    });
    expect((ok.body as Any).approval.decidedAt).toMatch(ISO);

    const again = await f.call('POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.abe });
    expect(again.status).toBe(409);
    expect((again.body as Any).error.code).toBe('NO_PENDING_APPROVAL');

    await f.engine.resume(runId);
    expect((await f.store.getRun(runId))?.status).toBe('succeeded');
    expect(f.world.get('risky')).toBe('z');
  });

  it('rejects a pending plan: the run ends cancelled and nothing is applied', async () => {
    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'rejected', value: 'no' },
      { mode: 'execute', actor: 'erin' },
    );
    await f.engine.resume(runId);
    const rejected = await f.call('POST', `/api/v1/runs/${runId}/reject`, {
      token: TOKENS.abe,
      body: { reason: 'wrong target' },
    });
    expect(rejected).toMatchObject({
      status: 200,
      body: { approval: { status: 'rejected', decidedBy: 'abe' } },
    });
    const detail = await f.call('GET', `/api/v1/runs/${runId}`, { token: TOKENS.vera });
    expect((detail.body as Any).run.status).toBe('cancelled');
    expect((detail.body as Any).approvals).toEqual([expect.objectContaining({ status: 'rejected' })]);
    expect(f.world.get('rejected')).toBeNull();
  });

  it('break-glass needs a reason', async () => {
    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'glass', value: '1' },
      { mode: 'execute', actor: 'ada' },
    );
    await f.engine.resume(runId);
    const noReason = await f.call('POST', `/api/v1/runs/${runId}/approve`, {
      token: TOKENS.ada,
      body: { breakGlass: true },
    });
    expect(noReason.status).toBe(400);
    expect((noReason.body as Any).error.code).toBe('BREAK_GLASS_REASON_REQUIRED');
    const withReason = await f.call('POST', `/api/v1/runs/${runId}/approve`, {
      token: TOKENS.ada,
      body: { breakGlass: true, reason: 'outage, nobody else awake' },
    });
    expect(withReason).toMatchObject({
      status: 200,
      body: { approval: { breakGlass: true, decidedBy: 'ada' } },
    });
  });

  it('cancels a queued run as an editor; cancelling it again is a conflict', async () => {
    const runId = await f.engine.enqueue(
      'fix-low',
      { key: 'cancel', value: '1' },
      { mode: 'execute', actor: 'erin' },
    );
    const viewer = await f.call('POST', `/api/v1/runs/${runId}/cancel`, { token: TOKENS.vera, body: {} });
    expect(viewer.status).toBe(403);
    expect((await f.store.getRun(runId))?.status).toBe('queued');

    const cancelled = await f.call('POST', `/api/v1/runs/${runId}/cancel`, {
      token: TOKENS.erin,
      body: { reason: 'not needed' },
    });
    expect(cancelled).toMatchObject({ status: 200, body: { runId, result: 'cancelled' } });
    expect((await f.store.getRun(runId))?.status).toBe('cancelled');

    const again = await f.call('POST', `/api/v1/runs/${runId}/cancel`, { token: TOKENS.erin });
    expect(again.status).toBe(409);
    expect((again.body as Any).error.code).toBe('INVALID_STATE');
  });

  it("reads the audit log a page at a time, and one run's entries", async () => {
    const stored = await f.store.readAudit(0, 100_000);
    expect(stored.length).toBeGreaterThan(10);
    const read: Any[] = [];
    let after = 0;
    for (let pages = 0; pages < 100; pages++) {
      const { status, body } = await f.call('GET', `/api/v1/audit?limit=7&after=${after}`, {
        token: TOKENS.vera,
      });
      expect(status).toBe(200);
      const page = body as Any;
      expect(page.entries.length).toBeLessThanOrEqual(7);
      read.push(...page.entries);
      if (page.nextAfter === null) break;
      expect(page.nextAfter).toBe(page.entries.at(-1).seq);
      after = page.nextAfter;
    }
    expect(read.map((e) => e.seq)).toEqual(stored.map((r) => r.seq));
    expect(read).toEqual(
      stored.map((r) => ({ seq: r.seq, hash: r.hash, prevHash: r.prevHash, entry: JSON.parse(r.entry) })),
    );
    for (let i = 1; i < read.length; i++) expect(read[i].prevHash).toBe(read[i - 1].hash);

    const runId = read.find((e) => e.entry.kind === 'approval.approved')?.entry.runId as string;
    const ofRun = await f.call('GET', `/api/v1/audit?runId=${runId}&limit=1000`, { token: TOKENS.vera });
    const entries = (ofRun.body as Any).entries as Any[];
    expect(entries.map((e) => e.seq)).toEqual((await f.store.readRunAudit(runId)).map((r) => r.seq));
    expect(entries.length).toBeGreaterThan(3);
    for (const e of entries) expect(e.entry.runId).toBe(runId);
    expect((ofRun.body as Any).nextAfter).toBeNull();

    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['after=-1', 'after'],
      ['after=x', 'after'],
    ]) {
      const bad = await f.call('GET', `/api/v1/audit?${query}`, { token: TOKENS.vera });
      expect(bad.status).toBe(400);
      expect((bad.body as Any).error.details.map((d: Any) => d.path)).toEqual([field]);
    }
  });

  it('verifies the audit chain', async () => {
    const { status, body } = await f.call('GET', '/api/v1/audit/verify', { token: TOKENS.vera });
    expect(status).toBe(200);
    expect(body).toMatchObject({ ok: true, problems: [] });
    expect((body as Any).entries).toBeGreaterThan(10);
    expect((body as Any).headHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('readiness', () => {
  it('answers 503 when the store does not answer', async () => {
    const sut = await postgresStore(uniqueSchema('srvdown'));
    const engine = new Engine({ store: sut.store, runbooks: [] });
    const app = createServer({ engine });
    const { call } = await listen(app);
    try {
      expect((await call('GET', '/readyz')).status).toBe(200);
      await sut.dispose(); // drops the schema and ends the pool: every later query fails
      const down = await call('GET', '/readyz');
      expect(down.status).toBe(503);
      expect((down.body as Any).error.code).toBe('NOT_READY');
      expect((await call('GET', '/healthz')).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
