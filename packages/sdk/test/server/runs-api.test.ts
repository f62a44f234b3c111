import { describe, expect, it } from 'vitest';
import { serverFixture, TOKENS } from './server-fixture';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely; their schemas are checked by the server
type Any = any;

const CONTEXT = {
  source: 'grafana',
  dashboard: { uid: 'agents-01', title: 'Agents', url: 'https://grafana.example/d/agents-01' },
  panel: { id: 4, title: 'Error rate' },
  timeRange: { from: 'now-1h', to: 'now' },
  labels: { team: 'sre' },
  variables: { namespace: 'web', agents: ['a', 'b'] },
};

describe('POST /runs and GET /runs over HTTP (PostgreSQL)', () => {
  const f = serverFixture({ schema: 'live' });
  const runsWithKey = async (key: string) =>
    (await f.store.listRuns({ limit: 10_000 })).filter((r) => r.idempotencyKey === key);
  const runCount = async () => (await f.store.listRuns({ limit: 10_000 })).length;
  const start = (token: string, body: Record<string, unknown>) =>
    f.call('POST', '/api/v1/runs', { token, body });

  it('stores the context with the run and shows it in the run, its detail and the list', async () => {
    const started = await start(TOKENS.vera, {
      runbookId: 'scale-check',
      input: { namespace: 'web' },
      mode: 'diagnose',
      context: CONTEXT,
    });
    expect(started.status).toBe(200);
    const run = (started.body as Any).run;
    expect(run).toMatchObject({ context: CONTEXT, idempotencyKey: null, approval: 'policy' });
    expect((await f.store.getRun(run.id))?.context).toEqual(CONTEXT);

    const detail = await f.call('GET', `/api/v1/runs/${run.id}`, { token: TOKENS.vera });
    expect((detail.body as Any).run.context).toEqual(CONTEXT);
    const list = await f.call('GET', '/api/v1/runs?runbookId=scale-check', { token: TOKENS.vera });
    const listed = (list.body as Any).runs.find((r: Any) => r.id === run.id);
    expect(listed.context).toEqual(CONTEXT);

    const without = await start(TOKENS.vera, {
      runbookId: 'scale-check',
      input: { namespace: 'web' },
      mode: 'diagnose',
    });
    expect((without.body as Any).run.context).toBeNull();
  });

  it('shows the plans of a plan run', async () => {
    const { body } = await start(TOKENS.erin, {
      runbookId: 'fix-high',
      input: { key: 'planned', value: 'v' },
      mode: 'plan',
    });
    expect((body as Any).plans).toEqual([
      expect.objectContaining({
        step: 'fix',
        status: 'planned',
        action: 'test.set',
        target: 'test:planned',
        risk: 'high',
        destructive: false,
        summary: 'set planned to "v"',
        changes: [{ target: 'test:planned', field: 'value', before: null, after: 'v' }],
      }),
    ]);
    expect((body as Any).plans[0].hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('diagnose with an idempotency key: the retry answers with the first run, marked as replayed', async () => {
    const body = {
      runbookId: 'scale-check',
      input: { namespace: 'db' },
      mode: 'diagnose',
      idempotencyKey: 'diag-1',
    };
    const first = await f.call('POST', '/api/v1/runs', { token: TOKENS.vera, body });
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const runId = (first.body as Any).run.id;
    expect((first.body as Any).run.idempotencyKey).toBe('diag-1');

    const again = await f.call('POST', '/api/v1/runs', { token: TOKENS.vera, body });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((again.body as Any).run).toMatchObject({ id: runId, status: 'succeeded' });
    expect((again.body as Any).findings).toEqual((first.body as Any).findings);

    // The runbook's own diagnose route shares the key space of its requester.
    const viaRunbook = await f.call('POST', '/api/v1/runbooks/scale-check/diagnose', {
      token: TOKENS.vera,
      body: { input: { namespace: 'db' }, idempotencyKey: 'diag-1' },
    });
    expect(viaRunbook.status).toBe(200);
    expect(viaRunbook.headers['idempotent-replayed']).toBe('true');
    expect((viaRunbook.body as Any).run.id).toBe(runId);
    expect((await runsWithKey('diag-1')).map((r) => r.id)).toEqual([runId]);
  });

  it('diagnose via POST /runbooks/:id/diagnose takes a key and a context too', async () => {
    const body = { input: { namespace: 'mq' }, idempotencyKey: 'diag-rb', context: { source: 'grafana' } };
    const first = await f.call('POST', '/api/v1/runbooks/scale-check/diagnose', { token: TOKENS.vera, body });
    expect(first.status).toBe(200);
    expect((first.body as Any).run).toMatchObject({
      idempotencyKey: 'diag-rb',
      context: { source: 'grafana' },
    });
    const again = await f.call('POST', '/api/v1/runbooks/scale-check/diagnose', { token: TOKENS.vera, body });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((again.body as Any).run.id).toBe((first.body as Any).run.id);
    expect(await runsWithKey('diag-rb')).toHaveLength(1);
  });

  it('plan with an idempotency key: one run, nothing applied', async () => {
    const body = {
      runbookId: 'fix-low',
      input: { key: 'idem-plan', value: 'p' },
      mode: 'plan',
      idempotencyKey: 'plan-1',
    };
    const first = await start(TOKENS.erin, body);
    const again = await f.call('POST', '/api/v1/runs', { token: TOKENS.erin, body });
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect((again.body as Any).run.id).toBe((first.body as Any).run.id);
    expect((again.body as Any).plans).toEqual((first.body as Any).plans);
    expect(await runsWithKey('plan-1')).toHaveLength(1);
    expect(f.world.applies).not.toContain('idem-plan');
  });

  it('execute with an idempotency key: queued once, applied once however often it is retried', async () => {
    const body = {
      runbookId: 'fix-low',
      input: { key: 'idem-exec', value: 'e' },
      mode: 'execute',
      idempotencyKey: 'exec-1',
    };
    const first = await f.call('POST', '/api/v1/runs', { token: TOKENS.erin, body });
    expect(first.status).toBe(202);
    const runId = (first.body as Any).runId;
    expect(first.body).toEqual({ runId, replayed: false });

    const again = await f.call('POST', '/api/v1/runs', { token: TOKENS.erin, body });
    expect(again.status).toBe(202);
    expect(again.body).toEqual({ runId, replayed: true });
    expect(again.headers['idempotent-replayed']).toBe('true');

    await f.engine.resume(runId);
    const afterRun = await f.call('POST', '/api/v1/runs', { token: TOKENS.erin, body });
    expect(afterRun.body).toEqual({ runId, replayed: true });
    expect(await runsWithKey('exec-1')).toHaveLength(1);
    expect((await f.store.getRun(runId))?.status).toBe('succeeded');
    expect(f.world.applies.filter((k) => k === 'idem-exec')).toEqual(['idem-exec']);
    // The retries queued nothing for a worker.
    expect(await f.engine.runNext()).toBeUndefined();
  });

  it('a key reused for another input or mode is a 409 naming idempotencyKey, and starts nothing', async () => {
    const body = {
      runbookId: 'fix-low',
      input: { key: 'reuse', value: '1' },
      mode: 'plan',
      idempotencyKey: 'reuse-1',
    };
    const first = await start(TOKENS.erin, body);
    expect(first.status).toBe(200);
    const before = await runCount();

    const otherInput = await start(TOKENS.erin, { ...body, input: { key: 'reuse', value: '2' } });
    expect(otherInput.status).toBe(409);
    expect((otherInput.body as Any).error).toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
      details: { path: 'idempotencyKey', runId: expect.any(String) },
    });
    expect((otherInput.body as Any).error.details.runId).toBe((first.body as Any).run.id);
    expect((otherInput.body as Any).error.message).toContain('idempotencyKey');

    const otherMode = await start(TOKENS.erin, { ...body, mode: 'execute' });
    expect(otherMode.status).toBe(409);
    expect((otherMode.body as Any).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await runCount()).toBe(before);
    expect(await runsWithKey('reuse-1')).toHaveLength(1);

    // Keys belong to their requester: another person's same key is another request.
    const otherPerson = await start(TOKENS.ada, body);
    expect(otherPerson.status).toBe(200);
    expect(otherPerson.headers['idempotent-replayed']).toBeUndefined();
    expect(await runsWithKey('reuse-1')).toHaveLength(2);
  });

  it('pages through every run newest first with nextCursor, each exactly once, ending with null', async () => {
    // Queued runs created back to back share milliseconds: the cursor must order ties by id.
    for (let i = 0; i < 7; i++) {
      await f.engine.enqueue('scale-check', { namespace: `page-${i}` }, { mode: 'diagnose', actor: 'erin' });
    }
    const expected = (await f.store.listRuns({ limit: 10_000 })).map((r) => r.id);
    expect(expected.length).toBeGreaterThan(10);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const page = await f.call('GET', `/api/v1/runs${query}`, { token: TOKENS.vera });
      expect(page.status).toBe(200);
      const body = page.body as Any;
      expect(body.runs.length).toBeLessThanOrEqual(3);
      seen.push(...body.runs.map((r: Any) => r.id));
      cursor = body.nextCursor;
      pages++;
      expect(pages).toBeLessThan(100);
    } while (cursor !== null);
    expect(seen).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 3));

    // With filters, and a last page that is exactly full.
    const queued = (await f.store.listRuns({ status: 'queued', runbookId: 'scale-check', limit: 100 })).map(
      (r) => r.id,
    );
    expect(queued.length).toBe(7);
    const first = (
      await f.call('GET', '/api/v1/runs?status=queued&runbookId=scale-check&limit=4', {
        token: TOKENS.vera,
      })
    ).body as Any;
    const second = (
      await f.call(
        'GET',
        `/api/v1/runs?status=queued&runbookId=scale-check&limit=4&cursor=${first.nextCursor}`,
        { token: TOKENS.vera },
      )
    ).body as Any;
    expect([...first.runs, ...second.runs].map((r: Any) => r.id)).toEqual(queued);
    expect(second.nextCursor).toBeNull();
    const exact = (
      await f.call('GET', '/api/v1/runs?status=queued&runbookId=scale-check&limit=7', {
        token: TOKENS.vera,
      })
    ).body as Any;
    expect(exact.runs).toHaveLength(7);
    expect(exact.nextCursor).toBeNull();
  });

  it('a bad cursor or limit is a 400 naming the field', async () => {
    const bad = async (query: string) => {
      const reply = await f.call('GET', `/api/v1/runs?${query}`, { token: TOKENS.vera });
      expect(reply.status).toBe(400);
      expect((reply.body as Any).error.code).toBe('INVALID_REQUEST');
      return (reply.body as Any).error.details.map((d: Any) => d.path);
    };
    expect(await bad('cursor=not%20a%20cursor')).toEqual(['cursor']);
    expect(await bad(`cursor=${Buffer.from('yesterday|run_1').toString('base64url')}`)).toEqual(['cursor']);
    expect(await bad(`cursor=${Buffer.from('2026-01-01T00:00:00.000Z|').toString('base64url')}`)).toEqual([
      'cursor',
    ]);
    expect(await bad('limit=0')).toEqual(['limit']);
    expect(await bad('limit=201')).toEqual(['limit']);
    expect(await bad('limit=ten')).toEqual(['limit']);
  });

  it('a context or key out of bounds, or with unknown keys, is a 400 naming its path; nothing starts', async () => {
    const before = await runCount();
    const base = { runbookId: 'scale-check', input: { namespace: 'web' }, mode: 'diagnose' };
    const paths = async (extra: Record<string, unknown>) => {
      const reply = await start(TOKENS.vera, { ...base, ...extra });
      expect(reply.status).toBe(400);
      const error = (reply.body as Any).error;
      expect(error.code).toBe('INVALID_REQUEST');
      return { paths: error.details.map((d: Any) => d.path), message: error.message as string };
    };

    const manyLabels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v']));
    expect((await paths({ context: { labels: manyLabels } })).paths).toEqual(['context.labels']);
    expect((await paths({ context: { dashboard: { uid: 'd', title: 'x'.repeat(501) } } })).paths).toEqual([
      'context.dashboard.title',
    ]);
    const unknownNested = await paths({ context: { dashboard: { uid: 'd', folder: 'ops' } } });
    expect(unknownNested.paths).toEqual(['context.dashboard']);
    expect(unknownNested.message).toContain('folder');
    const unknownTop = await paths({ context: { colour: 'red' } });
    expect(unknownTop.paths).toEqual(['context']);
    expect(unknownTop.message).toContain('colour');
    expect((await paths({ context: { variables: { v: Array(101).fill('x') } } })).paths).toEqual([
      'context.variables.v',
    ]);
    expect((await paths({ context: { timeRange: { from: 'now-1h' } } })).paths).toEqual([
      'context.timeRange.to',
    ]);

    expect((await paths({ idempotencyKey: 'has space' })).paths).toEqual(['idempotencyKey']);
    expect((await paths({ idempotencyKey: 'k'.repeat(201) })).paths).toEqual(['idempotencyKey']);
    expect((await paths({ idempotencyKey: '' })).paths).toEqual(['idempotencyKey']);
    expect(await runCount()).toBe(before);
  });

  it('refuses what only the Alertmanager webhook sets (source alertmanager, its keys, alert: idempotency keys) with a 400 naming the field; nothing starts', async () => {
    const before = await runCount();
    const refusals: [string, Record<string, unknown>][] = [
      ['context.source', { context: { source: 'alertmanager' } }],
      ['context.source', { context: { source: ' AlertManager' } }],
      ['context.receiver', { context: { source: 'grafana', receiver: 'runbooks' } }],
      ['context.groupKey', { context: { groupKey: '{}:{alertname="AgentDown"}' } }],
      ['context.externalURL', { context: { externalURL: 'http://alertmanager:9093' } }],
      ['idempotencyKey', { idempotencyKey: 'alert:5f1c2a3b' }],
      ['idempotencyKey', { idempotencyKey: 'ALERT:5f1c2a3b' }],
    ];
    const forged = {
      labels: { alertname: 'AgentDown' },
      fingerprint: 'f00d',
      startsAt: '2026-11-28T07:00:00Z',
    };
    for (const [path, extra] of refusals) {
      for (const [route, body] of [
        [
          '/api/v1/runs',
          { runbookId: 'scale-check', input: { namespace: 'web' }, mode: 'diagnose', ...extra },
        ],
        ['/api/v1/runbooks/scale-check/diagnose', { input: { namespace: 'web' }, ...extra }],
      ] as const) {
        const withAlert =
          'context' in body ? { ...body, context: { ...(body.context as object), alert: forged } } : body;
        const reply = await f.call('POST', route, { token: TOKENS.ada, body: withAlert });
        expect(reply.status, `${route} ${JSON.stringify(extra)}`).toBe(400);
        const error = (reply.body as Any).error;
        expect(error.code).toBe('INVALID_REQUEST');
        expect(error.details.map((d: Any) => d.path)).toEqual([path]);
        expect(error.message).toContain(path);
        expect(error.message).toContain('set only by the Alertmanager webhook');
      }
    }
    expect(await runCount()).toBe(before);
    expect(
      (await f.store.listRuns({ limit: 10_000 })).filter((r) => r.idempotencyKey?.startsWith('alert:')),
    ).toEqual([]);

    // Grafana's alert-instance action may pass the alert it was started for, under its own source.
    const context = { source: 'grafana', alert: forged };
    const fromGrafana = await start(TOKENS.vera, {
      runbookId: 'scale-check',
      input: { namespace: 'web' },
      mode: 'diagnose',
      context,
    });
    expect(fromGrafana.status).toBe(200);
    expect((fromGrafana.body as Any).run.context).toEqual(context);
  });
});
