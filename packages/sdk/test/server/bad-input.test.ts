import { describe, expect, it } from 'vitest';
import { InputValidationError } from '../../src/core/errors';
import { Engine } from '../../src/engine/engine';
import { createServer } from '../../src/server/app';
import { errorBodies } from './http-client';
import { addBoomRoute, serverFixture, TOKENS } from './server-fixture';

// biome-ignore lint/suspicious/noExplicitAny: error bodies are read loosely; their shape is asserted
type Any = any;

const errorOf = (body: unknown) => (body as Any).error as { code: string; message: string; details: Any };

describe('bad input over HTTP: each gets a 4xx with a clear message and changes nothing', () => {
  const f = serverFixture({ setup: addBoomRoute });
  const runCount = async () => (await f.store.listRuns({ limit: 1000 })).length;

  it('malformed JSON → 400 INVALID_JSON', async () => {
    const before = await runCount();
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      raw: '{"runbookId": "fix-low",',
    });
    expect(status).toBe(400);
    expect(errorOf(body)).toMatchObject({ code: 'INVALID_JSON', details: null });
    const poisoned = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      raw: '{"runbookId":"fix-low","mode":"plan","input":{},"__proto__":{"admin":true}}',
    });
    expect(poisoned.status).toBe(400);
    expect(errorOf(poisoned.body).code).toBe('INVALID_JSON');
    const empty = await f.call('POST', '/api/v1/runs', { token: TOKENS.erin, raw: '' });
    expect(errorOf(empty.body).code).toBe('INVALID_JSON');
    expect(await runCount()).toBe(before);
  });

  it('wrong types → 400 INVALID_REQUEST naming each field by its path', async () => {
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 5, input: 'all', mode: 'destroy' },
    });
    expect(status).toBe(400);
    const error = errorOf(body);
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.details.map((d: Any) => d.path).sort()).toEqual(['input', 'mode', 'runbookId']);
    expect(error.message).toContain('runbookId');

    const unknownField = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: {}, mode: 'plan', priority: 'high' },
    });
    expect(unknownField.status).toBe(400);
    expect(errorOf(unknownField.body).message).toContain('priority');

    const query = await f.call('GET', '/api/v1/runs?limit=500&status=bogus', { token: TOKENS.vera });
    expect(query.status).toBe(400);
    expect(
      errorOf(query.body)
        .details.map((d: Any) => d.path)
        .sort(),
    ).toEqual(['limit', 'status']);
  });

  it("a runbook's bad input → 400 INVALID_INPUT with paths inside `input`, and no run", async () => {
    const before = await runCount();
    const wrongType = await f.call('POST', '/api/v1/runbooks/scale-check/diagnose', {
      token: TOKENS.vera,
      body: { input: { namespace: 7, replicas: 'two' } },
    });
    expect(wrongType.status).toBe(400);
    expect(errorOf(wrongType.body).code).toBe('INVALID_INPUT');
    expect(
      errorOf(wrongType.body)
        .details.map((d: Any) => d.path)
        .sort(),
    ).toEqual(['input.namespace', 'input.replicas']);
    const misspelt = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.vera,
      body: { runbookId: 'scale-check', input: { namespce: 'web' }, mode: 'diagnose' },
    });
    expect(misspelt.status).toBe(400);
    expect(errorOf(misspelt.body).details).toContainEqual(
      expect.objectContaining({ path: 'input.namespce', message: expect.stringContaining('unknown field') }),
    );
    expect(await runCount()).toBe(before);
  });

  it('oversized body → 413 BODY_TOO_LARGE', async () => {
    const before = await runCount();
    const { status, body } = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', mode: 'plan', input: { key: 'big', value: 'x'.repeat(300 * 1024) } },
    });
    expect(status).toBe(413);
    expect(errorOf(body).code).toBe('BODY_TOO_LARGE');
    expect(await runCount()).toBe(before);
  });

  it('unknown runbook, run and route → 404 NOT_FOUND', async () => {
    const runbook = await f.call('POST', '/api/v1/runbooks/no-such/diagnose', {
      token: TOKENS.vera,
      body: { input: {} },
    });
    expect(runbook.status).toBe(404);
    expect(errorOf(runbook.body).code).toBe('NOT_FOUND');
    const viaRuns = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'no-such', input: {}, mode: 'execute' },
    });
    expect(viaRuns.status).toBe(404);
    for (const path of ['/api/v1/runs/run_nope', '/api/v1/nothing-here', '/nothing']) {
      const { status, body } = await f.call('GET', path, { token: TOKENS.vera });
      expect(status, path).toBe(404);
      expect(errorOf(body).code).toBe('NOT_FOUND');
    }
    for (const action of ['approve', 'reject', 'cancel']) {
      const { status } = await f.call('POST', `/api/v1/runs/run_nope/${action}`, { token: TOKENS.ada });
      expect(status, action).toBe(404);
    }
  });

  it('missing, unknown or malformed credentials → 401 UNAUTHENTICATED, and nothing runs', async () => {
    const before = await runCount();
    const body = { runbookId: 'fix-low', input: { key: 'anon', value: '1' }, mode: 'diagnose' };
    const cases: (Record<string, string> | undefined)[] = [
      undefined,
      { authorization: 'Bearer not-a-known-token' },
      { authorization: `Basic ${TOKENS.ada}` },
      { authorization: 'Bearer' },
    ];
    for (const headers of cases) {
      const reply = await f.call('POST', '/api/v1/runs', { body, ...(headers ? { headers } : {}) });
      expect(reply.status, JSON.stringify(headers)).toBe(401);
      expect(errorOf(reply.body).code).toBe('UNAUTHENTICATED');
    }
    expect((await f.call('GET', '/api/v1/runbooks')).status).toBe(401);
    expect((await f.call('GET', '/api/v1/openapi.json')).status).toBe(401);
    expect(await runCount()).toBe(before);
  });

  it('a viewer cannot plan, execute, approve or cancel: 403 naming the role, and nothing changes', async () => {
    const before = await runCount();
    for (const mode of ['plan', 'execute']) {
      const reply = await f.call('POST', '/api/v1/runs', {
        token: TOKENS.vera,
        body: { runbookId: 'fix-low', input: { key: 'escalate', value: '1' }, mode },
      });
      expect(reply.status, mode).toBe(403);
      expect(errorOf(reply.body)).toMatchObject({
        code: 'FORBIDDEN',
        details: { needed: 'editor', role: 'viewer' },
      });
      expect(errorOf(reply.body).message).toContain('editor role');
    }
    // Even for a runbook that does not exist, the role is refused first: no catalog probing.
    const probe = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.vera,
      body: { runbookId: 'no-such', input: {}, mode: 'execute' },
    });
    expect(probe.status).toBe(403);
    expect(await runCount()).toBe(before);
    expect(f.world.applies).toEqual([]);

    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'guarded', value: '1' },
      { mode: 'execute', actor: 'erin' },
    );
    await f.engine.resume(runId);
    for (const [action, token] of [
      ['approve', TOKENS.vera],
      ['reject', TOKENS.vera],
      ['approve', TOKENS.erin],
      ['cancel', TOKENS.vera],
    ] as const) {
      const reply = await f.call('POST', `/api/v1/runs/${runId}/${action}`, {
        token,
        body: { breakGlass: true, reason: 'let me' },
      });
      expect(reply.status, `${action} with ${token}`).toBe(403);
      expect(errorOf(reply.body).code).toBe('FORBIDDEN');
    }
    expect((await f.store.getRun(runId))?.status).toBe('waiting_approval');
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);
  });

  it('a forged X-Grafana-Context → 401 UNTRUSTED_GRAFANA_CONTEXT with or without a token, and nothing runs', async () => {
    const before = await runCount();
    const forged = JSON.stringify({ UserID: 1, Login: 'admin', OrgID: 1, OrgRole: 'Admin' });
    for (const token of [TOKENS.vera, undefined]) {
      const reply = await f.call('POST', '/api/v1/runs', {
        ...(token ? { token } : {}),
        headers: { 'x-grafana-context': forged },
        body: { runbookId: 'fix-low', input: { key: 'forged', value: '1' }, mode: 'execute' },
      });
      expect(reply.status).toBe(401);
      expect(errorOf(reply.body).code).toBe('UNTRUSTED_GRAFANA_CONTEXT');
      expect(errorOf(reply.body).message).toContain("trusted only together with the Grafana app's token");
    }
    expect(await runCount()).toBe(before);
    expect(f.world.get('forged')).toBeNull();
  });

  it('an unexpected failure → 500 INTERNAL with a generic message; the details go to the log only', async () => {
    const { status, body, text } = await f.call('GET', '/boom');
    expect(status).toBe(500);
    expect(errorOf(body)).toEqual({
      code: 'INTERNAL',
      message: expect.stringContaining('failed to handle the request'),
      details: null,
    });
    expect(text).not.toContain('hunter2');
    const logged = f.logLines.find((line) => line.includes('request failed'));
    expect(logged).toContain('hunter2');
    expect(logged).toContain('"stack"');
  });

  it('no error body carries a stack trace or a secret', () => {
    expect(errorBodies.length).toBeGreaterThan(20);
    for (const text of errorBodies) {
      expect(text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+|"stack"|hunter2/);
      expect(Object.keys(JSON.parse(text))).toEqual(['error']);
      expect(Object.keys(JSON.parse(text).error).sort()).toEqual(['code', 'details', 'message']);
    }
  });
});

describe('server options', () => {
  it('refuses a token given in clear instead of its SHA-256, naming the field', () => {
    const engine = new Engine({ store: {} as never, runbooks: [] });
    expect(() =>
      createServer({ engine, tokens: [{ name: 'ops', sha256: 'secret', role: 'admin' }] }),
    ).toThrow(InputValidationError);
    expect(() =>
      createServer({ engine, tokens: [{ name: 'ops', sha256: 'secret', role: 'admin' }] }),
    ).toThrow(/tokens\.0\.sha256/);
    expect(() => createServer({ engine, bodyLimit: 10 })).toThrow(/bodyLimit/);
  });
});
