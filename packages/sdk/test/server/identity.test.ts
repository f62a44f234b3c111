import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import type { TokenGrant } from '../../src/server/options';
import { readTokensFile } from '../../src/server/tokens-file';
import { POSTGRES_URL } from '../support/stores';
import { errorBodies } from './http-client';
import { grafanaContext, identityFixture, TOKENS } from './identity-fixture';

// biome-ignore lint/suspicious/noExplicitAny: bodies and audit entries are read loosely; their shape is asserted
type Any = any;

const errorOf = (body: unknown) => (body as Any).error as { code: string; message: string; details: Any };
const GRAFANA = 'x-grafana-context';

/** Audit entries as stored, parsed; `raw` is the exact stored text. */
async function auditEntries(store: {
  readAudit(after?: number, limit?: number): Promise<{ entry: string }[]>;
}) {
  const rows = await store.readAudit(0, 100_000);
  return rows.map((r) => ({ raw: r.entry, ...(JSON.parse(r.entry) as Any) }));
}

/** Refusal entries are written just after the response: wait (by attempts, not by the clock) for `n`. */
async function refusalsAtLeast(store: Parameters<typeof auditEntries>[0], n: number) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const refused = (await auditEntries(store)).filter((e) => e.kind === 'access.refused');
    if (refused.length >= n) return refused;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`fewer than ${n} access.refused entries were written`);
}

describe('identity: bearer tokens and Grafana users (PostgreSQL, real HTTP)', () => {
  const f = identityFixture();
  const runCount = async () => (await f.store.listRuns({ limit: 1000 })).length;
  const asGrafana = (login: string, orgRole: string, token: string = TOKENS.grafana) => ({
    token,
    headers: { [GRAFANA]: grafanaContext(login, orgRole) },
  });
  let refusals = 0;
  /** Expects a refusal and counts it, to check at the end that each one was audited. */
  const refused = (reply: { status: number }, status: number) => {
    expect(reply.status).toBe(status);
    refusals++;
  };

  it('a Grafana Viewer diagnoses under its login, but cannot plan: 403, nothing created, audited', async () => {
    const diagnosed = await f.call('POST', '/api/v1/runbooks/fix-low/diagnose', {
      ...asGrafana('gina', 'Viewer'),
      body: { input: { key: 'g-diag', value: 'on' } },
    });
    expect(diagnosed.status).toBe(200);
    expect((diagnosed.body as Any).run).toMatchObject({ mode: 'diagnose', requestedBy: 'gina' });
    expect((await f.store.getRun((diagnosed.body as Any).run.id))?.requestedBy).toBe('gina');

    const before = await runCount();
    const plan = await f.call('POST', '/api/v1/runs', {
      ...asGrafana('gina', 'Viewer'),
      body: { runbookId: 'fix-low', input: { key: 'g-plan', value: 'x' }, mode: 'plan' },
    });
    refused(plan, 403);
    expect(errorOf(plan.body)).toMatchObject({
      code: 'FORBIDDEN',
      details: { needed: 'editor', role: 'viewer' },
    });
    expect(errorOf(plan.body).message).toContain('Grafana user gina has viewer');
    expect(await runCount()).toBe(before);

    const entries = await refusalsAtLeast(f.store, 1);
    expect(entries.at(-1)).toMatchObject({
      actor: 'gina',
      kind: 'access.refused',
      data: {
        method: 'POST',
        route: '/api/v1/runs',
        status: 403,
        code: 'FORBIDDEN',
        via: 'grafana',
        ip: '127.0.0.1',
        needed: 'editor',
        grafana: { login: 'gina', orgId: 1, userId: 42 },
      },
    });
  });

  it('a Grafana Editor plans and executes as itself: its login is the requester of the run', async () => {
    const plan = await f.call('POST', '/api/v1/runs', {
      ...asGrafana('gus', 'Editor'),
      body: { runbookId: 'fix-low', input: { key: 'g-plan2', value: 'y' }, mode: 'plan' },
    });
    expect(plan.status).toBe(200);
    expect((plan.body as Any).run).toMatchObject({ mode: 'plan', status: 'succeeded', requestedBy: 'gus' });

    const execute = await f.call('POST', '/api/v1/runs', {
      ...asGrafana('gus', 'Editor'),
      body: { runbookId: 'fix-low', input: { key: 'g-exec', value: 'z' }, mode: 'execute' },
    });
    expect(execute.status).toBe(202);
    const run = await f.store.getRun((execute.body as Any).runId);
    expect(run).toMatchObject({ requestedBy: 'gus', status: 'queued' });
    const created = (await auditEntries(f.store)).find(
      (e) => e.kind === 'run.created' && e.runId === run?.id,
    );
    expect(created?.actor).toBe('gus');
  });

  it('a Grafana Admin through an editor-capped app token acts as an editor', async () => {
    const capped = (login: string) => asGrafana(login, 'Admin', TOKENS.grafanaCapped);
    const plan = await f.call('POST', '/api/v1/runs', {
      ...capped('gadmin'),
      body: { runbookId: 'fix-low', input: { key: 'cap', value: '1' }, mode: 'plan' },
    });
    expect(plan.status).toBe(200);
    expect((plan.body as Any).run.requestedBy).toBe('gadmin');

    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'cap-high', value: '1' },
      {
        mode: 'execute',
        actor: 'erin',
      },
    );
    expect((await f.engine.resume(runId)).status).toBe('waiting_approval');
    const approve = await f.call('POST', `/api/v1/runs/${runId}/approve`, { ...capped('gadmin'), body: {} });
    refused(approve, 403);
    expect(errorOf(approve.body)).toMatchObject({
      code: 'FORBIDDEN',
      details: { needed: 'admin', role: 'editor' },
    });
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);

    // The same Grafana Admin through the uncapped app token may approve.
    const approved = await f.call('POST', `/api/v1/runs/${runId}/approve`, {
      ...asGrafana('gadmin', 'Admin'),
      body: { reason: 'checked' },
    });
    expect(approved.status).toBe(200);
    expect((approved.body as Any).approval).toMatchObject({ status: 'approved', decidedBy: 'gadmin' });
  });

  it('token names and Grafana logins are one namespace: four eyes holds across both', async () => {
    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'eyes', value: '1' },
      {
        mode: 'execute',
        actor: 'ada', // requested with ada's personal token
      },
    );
    await f.engine.resume(runId);
    const self = await f.call('POST', `/api/v1/runs/${runId}/approve`, {
      ...asGrafana('ada', 'Admin'),
      body: {},
    });
    refused(self, 403);
    expect(errorOf(self.body)).toMatchObject({ code: 'FOUR_EYES', details: { requestedBy: 'ada' } });
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);
  });

  it('a forged X-Grafana-Context is refused 401 with a personal, no or an unknown token; nothing runs', async () => {
    const before = await runCount();
    const forged = grafanaContext('mallory', 'Admin', { Email: 'forged-marker@example.org' });
    const body = { runbookId: 'fix-low', input: { key: 'forged', value: '1' }, mode: 'execute' };
    const cases: [string, Record<string, string>][] = [
      ['personal token', { authorization: `Bearer ${TOKENS.vera}` }],
      ['no token', {}],
      ['unknown token', { authorization: 'Bearer not-a-known-token-123' }],
      ['malformed authorization', { authorization: `Basic ${TOKENS.grafana}` }],
    ];
    for (const [what, headers] of cases) {
      const reply = await f.call('POST', '/api/v1/runs', {
        body,
        headers: { ...headers, [GRAFANA]: forged },
      });
      refused(reply, 401);
      expect(errorOf(reply.body).code, what).toBe('UNTRUSTED_GRAFANA_CONTEXT');
      expect(errorOf(reply.body).message).toContain(
        "X-Grafana-Context is trusted only together with the Grafana app's token",
      );
    }
    expect(await runCount()).toBe(before);
    expect(f.world.get('forged')).toBeNull();

    const entries = await refusalsAtLeast(f.store, refusals);
    const personal = entries.find((e) => e.data.code === 'UNTRUSTED_GRAFANA_CONTEXT' && e.actor === 'vera');
    expect(personal?.data).toMatchObject({ via: 'token', route: '/api/v1/runs', status: 401 });
    const anonymous = entries.filter(
      (e) => e.data.code === 'UNTRUSTED_GRAFANA_CONTEXT' && e.actor === 'anonymous',
    );
    expect(anonymous).toHaveLength(3);
    // The forged header's content is never stored.
    for (const e of entries) expect(e.raw).not.toMatch(/mallory|forged-marker/);
  });

  it("the Grafana app's token without X-Grafana-Context → 401 saying it is only valid through Grafana", async () => {
    const reply = await f.call('GET', '/api/v1/runbooks', { token: TOKENS.grafana });
    refused(reply, 401);
    expect(errorOf(reply.body).code).toBe('GRAFANA_CONTEXT_REQUIRED');
    expect(errorOf(reply.body).message).toContain("only valid through Grafana's plugin proxy");
  });

  it('a malformed X-Grafana-Context → 401 INVALID_GRAFANA_CONTEXT naming the problem', async () => {
    const before = await runCount();
    const cases: [string, RegExp][] = [
      ['{"Login": "gina", "OrgRole": "Viewer"', /not valid JSON/],
      [JSON.stringify({ UserID: 1, OrgID: 1, OrgRole: 'Viewer' }), /Login: /],
      [grafanaContext('gina', 'SuperAdmin'), /OrgRole: .*Viewer/],
      [grafanaContext('gina', 'Viewer', { UserID: 'one' }), /UserID: .*number/],
      [grafanaContext('   ', 'Viewer'), /Login: /],
      ['[1,2]', /\(root\): .*object/],
      [grafanaContext('gina', 'Viewer', { Padding: 'p'.repeat(9 * 1024) }), /larger than 8192 bytes/],
    ];
    for (const [header, message] of cases) {
      const reply = await f.call('POST', '/api/v1/runs', {
        token: TOKENS.grafana,
        headers: { [GRAFANA]: header },
        body: { runbookId: 'fix-low', input: { key: 'bad-ctx', value: '1' }, mode: 'diagnose' },
      });
      refused(reply, 401);
      expect(errorOf(reply.body).code, header.slice(0, 40)).toBe('INVALID_GRAFANA_CONTEXT');
      expect(errorOf(reply.body).message, header.slice(0, 40)).toMatch(message);
    }
    expect(await runCount()).toBe(before);
  });

  it('a Grafana user with OrgRole None (or none at all) → 403, nothing runs', async () => {
    const before = await runCount();
    for (const orgRole of ['None', '']) {
      const reply = await f.call('POST', '/api/v1/runbooks/scale-check/diagnose', {
        ...asGrafana('nobody', orgRole),
        body: { input: { namespace: 'web' } },
      });
      refused(reply, 403);
      expect(errorOf(reply.body).code).toBe('FORBIDDEN');
      expect(errorOf(reply.body).message).toContain('has no role in Grafana org 1');
    }
    expect(await runCount()).toBe(before);
    const entries = await refusalsAtLeast(f.store, refusals);
    expect(entries.filter((e) => e.actor === 'nobody').map((e) => e.data.via)).toEqual([
      'grafana',
      'grafana',
    ]);
  });

  it('role escalation: viewers cannot execute, approve or cancel, editors cannot approve; nothing changes', async () => {
    const runId = await f.engine.enqueue(
      'fix-high',
      { key: 'esc', value: '1' },
      {
        mode: 'execute',
        actor: 'abe',
      },
    );
    await f.engine.resume(runId);
    const queued = await f.engine.enqueue(
      'fix-low',
      { key: 'esc-q', value: '1' },
      {
        mode: 'execute',
        actor: 'abe',
      },
    );
    const before = await runCount();
    const viewerGrafana = asGrafana('gina', 'Viewer');
    // A Grafana Viewer whose context carries made-up role keys stays a viewer.
    const smuggled = {
      token: TOKENS.grafana,
      headers: { [GRAFANA]: grafanaContext('gina', 'Viewer', { role: 'admin', IsGrafanaAdmin: true }) },
    };
    const attempts: [string, string, { token: string; headers?: Record<string, string> }, unknown][] = [
      [
        'POST',
        '/api/v1/runs',
        { token: TOKENS.vera },
        { runbookId: 'fix-low', input: { key: 'esc2', value: '1' }, mode: 'execute' },
      ],
      [
        'POST',
        '/api/v1/runs',
        viewerGrafana,
        { runbookId: 'fix-low', input: { key: 'esc2', value: '1' }, mode: 'execute' },
      ],
      [
        'POST',
        `/api/v1/runs/${runId}/approve`,
        { token: TOKENS.vera },
        { breakGlass: true, reason: 'let me' },
      ],
      ['POST', `/api/v1/runs/${runId}/approve`, smuggled, { breakGlass: true, reason: 'let me' }],
      ['POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.erin }, { reason: 'lgtm' }],
      ['POST', `/api/v1/runs/${runId}/reject`, asGrafana('gus', 'Editor'), { reason: 'no' }],
      ['POST', `/api/v1/runs/${runId}/cancel`, { token: TOKENS.vera }, { reason: 'stop' }],
      ['POST', `/api/v1/runs/${queued}/cancel`, viewerGrafana, { reason: 'stop' }],
    ];
    for (const [method, path, who, body] of attempts) {
      const reply = await f.call(method, path, { ...who, body });
      refused(reply, 403);
      expect(errorOf(reply.body).code, `${path} ${JSON.stringify(who.headers ?? 'token')}`).toBe('FORBIDDEN');
      expect(errorOf(reply.body).message).toContain('Nothing was changed');
    }
    expect(await runCount()).toBe(before);
    expect((await f.store.getRun(runId))?.status).toBe('waiting_approval');
    expect((await f.store.listApprovals(runId)).map((a) => [a.status, a.decidedBy])).toEqual([
      ['pending', null],
    ]);
    expect((await f.store.getRun(queued))?.status).toBe('queued');
    expect(f.world.get('esc')).toBeNull();
    expect(f.world.get('esc2')).toBeNull();

    const entries = await refusalsAtLeast(f.store, refusals);
    const approveRoute = entries.filter((e) => e.data.route === '/api/v1/runs/:id/approve');
    expect(approveRoute.map((e) => [e.actor, e.data.needed])).toEqual(
      expect.arrayContaining([
        ['vera', 'admin'],
        ['gina', 'admin'],
        ['erin', 'admin'],
      ]),
    );
    // The route pattern is stored, never the URL with the run id.
    for (const e of entries) expect(e.raw).not.toContain(runId);
  });

  it('every refusal is audited with actor and route, and no token appears in the audit, a response or a log', async () => {
    const entries = await refusalsAtLeast(f.store, refusals);
    expect(entries).toHaveLength(refusals);
    for (const e of entries) {
      expect(typeof e.actor).toBe('string');
      expect(e.data.route).toMatch(/^\/api\/v1\//);
      expect(e.data.route).not.toContain('?');
      expect([401, 403, 429]).toContain(e.data.status);
    }
    const secrets = Object.values(TOKENS);
    const texts = [...(await auditEntries(f.store)).map((e) => e.raw), ...errorBodies, ...f.logLines];
    expect(errorBodies.length).toBeGreaterThanOrEqual(refusals);
    for (const text of texts) for (const secret of secrets) expect(text).not.toContain(secret);
    // And the chain over all these entries still verifies.
    expect(await f.engine.verifyAudit()).toMatchObject({ ok: true });
  });
});

describe('refusal audit: flood cap and audit failures', () => {
  const f = identityFixture({ refusalAuditPerMinute: 5 });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes at most the cap per client and actor per minute, then reports how many were suppressed', async () => {
    for (let i = 0; i < 30; i++) {
      const reply = await f.call('GET', '/api/v1/runs', { token: `wrong-token-${i}` });
      expect(reply.status).toBe(401);
    }
    const flood = await refusalsAtLeast(f.store, 5);
    // Give the last responses' hooks time to (not) write more.
    await new Promise((r) => setTimeout(r, 300));
    const afterFlood = (await auditEntries(f.store)).filter((e) => e.kind === 'access.refused');
    expect(afterFlood).toHaveLength(5);
    expect(flood.every((e) => e.actor === 'anonymous' && e.data.suppressed === undefined)).toBe(true);

    // Another actor from the same address has its own budget.
    expect((await f.call('GET', '/api/v1/audit/verify', { token: TOKENS.grafana })).status).toBe(401);
    const other = await refusalsAtLeast(f.store, 6);
    expect(other.at(-1)).toMatchObject({ actor: 'grafana-app', data: { code: 'GRAFANA_CONTEXT_REQUIRED' } });

    // A minute later the next refusal is written, reporting the 25 that were only counted.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 61_000);
    expect((await f.call('GET', '/api/v1/runs', { token: 'wrong-token-again' })).status).toBe(401);
    const next = await refusalsAtLeast(f.store, 7);
    expect(next.at(-1)).toMatchObject({
      actor: 'anonymous',
      data: { suppressed: 25, code: 'UNAUTHENTICATED' },
    });
  });

  it('a slow or failing audit write neither delays nor breaks the refusal; the failure is logged', async () => {
    const [row] = await f.store.driver.query<{ schema: string }>('SELECT current_schema() AS schema');
    const schema = row?.schema;
    expect(schema).toMatch(/^ident_/);
    const count = async () =>
      (await auditEntries(f.store)).filter((e) => e.kind === 'access.refused' && e.actor === 'erin').length;

    // The audit table locked by another session: the refusal is answered at once, written once unlocked.
    const locker = new pg.Client({ connectionString: POSTGRES_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${schema}.audit IN ACCESS EXCLUSIVE MODE`);
      const started = performance.now();
      const reply = await f.call('POST', '/api/v1/runs/run_x/approve', { token: TOKENS.erin, body: {} });
      expect(reply.status).toBe(403);
      expect(performance.now() - started).toBeLessThan(2_000);
      await locker.query('ROLLBACK');
    } finally {
      await locker.end();
    }
    for (let attempt = 0; attempt < 100 && (await count()) < 1; attempt++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await count()).toBe(1);

    // The audit table gone: the refusal is still answered, the failure logged (without the token).
    await f.store.driver.query('ALTER TABLE audit RENAME TO audit_away');
    try {
      const reply = await f.call('POST', '/api/v1/runs/run_x/approve', { token: TOKENS.erin, body: {} });
      expect(reply.status).toBe(403);
      let logged: string | undefined;
      for (let attempt = 0; attempt < 100 && !logged; attempt++) {
        logged = f.logLines.find((l) => l.includes('could not audit a refused request'));
        if (!logged) await new Promise((r) => setTimeout(r, 20));
      }
      expect(logged).toContain('"actor":"erin"');
      expect(logged).not.toContain(TOKENS.erin);
    } finally {
      await f.store.driver.query('ALTER TABLE audit_away RENAME TO audit');
    }
    expect((await f.call('GET', '/api/v1/runbooks', { token: TOKENS.vera })).status).toBe(200);
    expect(await f.engine.verifyAudit()).toMatchObject({ ok: true });
  });
});

describe("token kinds: the Grafana app's token and Alertmanager's token are two tokens", () => {
  const f = identityFixture();
  const both: TokenGrant = {
    name: 'both',
    sha256: hashToken('both-kinds-token'),
    role: 'editor',
    grafana: true,
    alertmanager: true,
  };
  /** The issues `act` is refused with. */
  const issuesOf = (act: () => unknown) => {
    try {
      act();
    } catch (e) {
      if (isInputValidationError(e)) return e.issues;
      throw e;
    }
    throw new Error('accepted');
  };

  it('refuses a grant with "grafana" and "alertmanager" both true, naming the field, in a tokens file and in ServerOptions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runbook-tokens-'));
    try {
      const file = join(dir, 'tokens.json');
      writeFileSync(
        file,
        JSON.stringify({ tokens: [{ ...both, sha256: hashToken('other'), grafana: false }, both] }),
      );
      expect(issuesOf(() => readTokensFile(file))).toEqual([
        {
          path: 'tokens.1.alertmanager',
          message: expect.stringContaining('cannot be true together with "grafana": true'),
        },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(issuesOf(() => createServer({ engine: f.engine, tokens: [both] }))).toEqual([
      { path: 'tokens.0.alertmanager', message: expect.stringContaining('"grafana": true') },
    ]);
    // Either alone is a valid grant.
    for (const one of [{ grafana: false }, { alertmanager: false }]) {
      const app = createServer({ engine: f.engine, tokens: [{ ...both, ...one }] });
      await app.close();
    }
  });
});
