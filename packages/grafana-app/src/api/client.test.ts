import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, startWaitingFailover } from '../test/harness';
import { api, ServiceError } from './client';

// Every function of the client once, against the real service through the Grafana proxy double: what
// the functions return is what the service answered, and failures are ServiceErrors with its code.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: { login: 'gina', role: 'Admin' } });
});
afterAll(async () => {
  await h?.stop();
});

/** The ServiceError a promise fails with (the test fails if it does not). */
async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  const e = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(ServiceError);
  return e as ServiceError;
}

const waitingFailover = () => startWaitingFailover(h);

describe('api, through the Grafana proxy double, against the real service', () => {
  it('lists the catalog and reads one runbook with its input schema', async () => {
    const runbooks = await api.listRunbooks();
    expect(runbooks.map((r) => r.id).sort()).toEqual(['failover-database', 'inspect-latency', 'scale-agent']);
    const scale = await api.getRunbook('scale-agent');
    expect(scale).toMatchObject({ id: 'scale-agent', severity: 'P2' });
    expect(scale.input).toMatchObject({
      properties: {
        agent: { enum: ['generation-agent', 'requirements-agent'] },
        replicas: { type: 'integer' },
      },
    });
  });

  it('diagnoses and answers with the findings and their evidence', async () => {
    const detail = await api.diagnose(
      'inspect-latency',
      { service: 'api-gateway' },
      { source: 'grafana-test' },
    );
    expect(detail.run).toMatchObject({
      runbookId: 'inspect-latency',
      mode: 'diagnose',
      status: 'succeeded',
      requestedBy: 'gina',
    });
    expect(detail.findings[0]?.evidence.map((e) => (e as { kind: string }).kind)).toEqual([
      'table',
      'log',
      'series',
      'text',
      'link',
    ]);
  });

  it('plans without changing anything, executes on the worker, and lists and follows the runs', async () => {
    const plan = await api.startRun({
      runbookId: 'scale-agent',
      mode: 'plan',
      input: { agent: 'generation-agent', replicas: 3, debug: true },
    });
    expect('run' in plan && plan.plans[0]?.changes).toEqual([
      { target: 'test:agents/generation-agent', field: 'replicas', before: 0, after: 3 },
      { target: 'test:agents/generation-agent', field: 'debug', before: false, after: true },
    ]);
    expect(h.world().agents['generation-agent']).toEqual({ replicas: 0, debug: false });

    const started = await api.startRun({
      runbookId: 'scale-agent',
      mode: 'execute',
      input: { agent: 'generation-agent', replicas: 3, debug: true },
      idempotencyKey: 'client-test-1',
    });
    expect(started).toMatchObject({ replayed: false });
    const runId = (started as { runId: string }).runId;
    await h.waitForRun(runId);
    expect((await api.getRun(runId)).run).toMatchObject({ status: 'succeeded', requestedBy: 'gina' });
    expect(h.world().agents['generation-agent']).toEqual({ replicas: 3, debug: true });

    const page = await api.listRuns({ runbookId: 'scale-agent', limit: 1 });
    expect(page.runs.map((r) => r.id)).toEqual([runId]);
    expect(page.nextCursor).toEqual(expect.any(String));
    const next = await api.listRuns({ runbookId: 'scale-agent', cursor: page.nextCursor ?? '' });
    expect(next.runs.map((r) => r.mode)).toEqual(['plan']);

    const events = await api.runEvents(runId);
    expect(events).toMatchObject({ status: 'succeeded', done: true });
    expect(events.events.map((e) => e.kind)).toContain('run.created');
    const later = await api.runEvents(runId, events.nextAfter);
    expect(later.events).toEqual([]);
  });

  it("approves another's plan as a Grafana Admin; the run continues", async () => {
    const runId = await waitingFailover();
    const { approval } = await api.approve(runId, { reason: 'standby is healthy' });
    expect(approval).toMatchObject({ status: 'approved', decidedBy: 'gina', requestedBy: 'erin' });
    await h.waitForRun(runId, ['succeeded']);
    expect(h.world().database.primary).toBe('db-b');
  });

  it('rejects and cancels waiting runs', async () => {
    const rejected = await waitingFailover();
    expect((await api.reject(rejected, { reason: 'not now' })).approval).toMatchObject({
      status: 'rejected',
    });
    expect((await h.run(rejected)).run.status).toBe('cancelled');

    const cancelled = await waitingFailover();
    expect(await api.cancel(cancelled, { reason: 'fixed by hand' })).toEqual({
      runId: cancelled,
      result: 'cancelled',
    });
    expect((await h.run(cancelled)).run.status).toBe('cancelled');
  });

  it('reads the audit log of a run, verifies the chain, and lists alerts', async () => {
    const [run] = await h.runs();
    const audit = await api.listAudit({ runId: run?.id, limit: 50 });
    expect(audit.entries.length).toBeGreaterThan(0);
    expect(new Set(audit.entries.map((e) => e.entry.runId))).toEqual(new Set([run?.id]));
    expect(await api.verifyAudit()).toMatchObject({ ok: true, problems: [] });
    expect(await api.listAlerts({ status: 'firing' })).toEqual({ alerts: [] });
  });

  describe('errors', () => {
    it("carries the service's code, message and details", async () => {
      const missing = await failure(api.getRun('run_does_not_exist'));
      expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND' });
      const invalid = await failure(api.diagnose('scale-agent', { agent: 'nobody', replicas: 'many' }));
      expect(invalid).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
      expect(invalid.details).toEqual(
        expect.arrayContaining([expect.objectContaining({ path: 'input.agent' })]),
      );
      const own = await failure(
        api
          .startRun({ runbookId: 'failover-database', mode: 'execute', input: { reason: 'x' } })
          .then(async (s) => {
            const runId = (s as { runId: string }).runId;
            await h.waitForRun(runId, ['waiting_approval']);
            return api.approve(runId);
          }),
      );
      expect(own).toMatchObject({ status: 403, code: 'FOUR_EYES' });
    });

    it('refuses an id that would not reach its route as one segment, and sends nothing', async () => {
      const before = h.proxy.forwarded.length;
      // Grafana URL-decodes what a `*` route captured: `%2F` would arrive as a separator, another route.
      const slashed = await failure(api.getRun('run_1/../../audit'));
      expect(slashed).toMatchObject({ status: 0, code: 'INVALID_ID' });
      expect(slashed.message).toContain('"run_1/../../audit" is not a valid run id');
      for (const [name, promise] of [
        ['cancel', api.cancel('a/b')],
        ['approve', api.approve('..')],
        ['reject', api.reject('')],
        ['runEvents', api.runEvents('x?after=1')],
        ['getRunbook', api.getRunbook('scale agent')],
        ['diagnose', api.diagnose('a%2Fb', {})],
        ['getRun', api.getRun('r'.repeat(201))],
      ] as const) {
        expect(await failure(promise), name).toMatchObject({ code: 'INVALID_ID' });
      }
      expect((await failure(api.getRunbook('scale agent'))).message).toContain('runbook id');
      expect(h.proxy.forwarded.length).toBe(before);
      // What the service's ids look like passes, and an unknown one is the service's 404.
      expect(await failure(api.getRun('run_mf3k2x9a.b:c-d'))).toMatchObject({
        status: 404,
        code: 'NOT_FOUND',
      });
    });

    it('sends a cursor in the query string, encoded, and the service reads it back', async () => {
      const page = await api.listRuns({ limit: 1 });
      expect(page.nextCursor).toEqual(expect.any(String));
      const next = await api.listRuns({ limit: 1, cursor: page.nextCursor ?? '' });
      const forwarded = h.proxy.forwarded.at(-1)?.target ?? '';
      expect(new URL(forwarded).searchParams.get('cursor')).toBe(page.nextCursor);
      expect(next.runs[0]?.id).not.toBe(page.runs[0]?.id);
      const bad = await failure(api.listRuns({ cursor: 'not/a?cursor&x=1' }));
      expect(bad).toMatchObject({ status: 400 });
      expect(new URL(h.proxy.forwarded.at(-1)?.target ?? '').searchParams.get('cursor')).toBe(
        'not/a?cursor&x=1',
      );
    });

    it("reports Grafana's own refusal when the user's org role is below the route's", async () => {
      h.setUser({ login: 'eddie', role: 'Editor' });
      try {
        const runId = await waitingFailover();
        const refused = await failure(api.approve(runId));
        expect(refused).toMatchObject({ status: 403, code: 'GRAFANA_FORBIDDEN' });
        expect(refused.message).toContain('plugin proxy route access denied');
        expect((await h.run(runId)).approvals.map((a) => a.status)).toEqual(['pending']);
      } finally {
        h.setUser({ login: 'gina', role: 'Admin' });
      }
    });

    it("maps a wrong token to the service's 401 and an unreachable service to UNREACHABLE", async () => {
      const saved = h.proxy.settings();
      try {
        h.proxy.setSettings({ secureJsonData: { serviceToken: 'not-the-token' } });
        // The service trusts X-Grafana-Context only with the app's token.
        const wrongToken = await failure(api.listRunbooks());
        expect(wrongToken).toMatchObject({ status: 401, code: 'UNTRUSTED_GRAFANA_CONTEXT' });
        expect(wrongToken.message).not.toContain('not-the-token');
        h.proxy.setSettings({
          secureJsonData: saved.secureJsonData,
          jsonData: { serviceUrl: 'http://127.0.0.1:9' },
        });
        expect(await failure(api.listRunbooks())).toMatchObject({ status: 502, code: 'UNREACHABLE' });
      } finally {
        h.proxy.setSettings(saved);
      }
    });
  });
});
