import { describe, expect, it } from 'vitest';
import { hashToken } from '../../src/server/identity';
import { personalGrants, serverFixture, TOKENS } from './server-fixture';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely; their schemas are tested via OpenAPI
type Any = any;

const APP_TOKEN = 'grafana-app-token-for-approvals';

/** The headers Grafana's plugin proxy sends for a signed-in user. */
const viaGrafana = (login: string, role: 'Viewer' | 'Editor' | 'Admin') => ({
  authorization: `Bearer ${APP_TOKEN}`,
  'x-grafana-context': JSON.stringify({ UserID: 7, Login: login, OrgID: 1, OrgRole: role }),
});

// `/approvals/:runId/approve|reject` exist because Grafana's plugin proxy routes by method and path prefix:
// under `/runs/:id/…` it could not give approvals (Admin) another role than cancel (Editor).
describe('POST /api/v1/approvals/:runId/approve|reject (PostgreSQL, over HTTP)', () => {
  const f = serverFixture({
    schema: 'alias',
    tokens: [
      ...personalGrants(TOKENS),
      { name: 'grafana-app', sha256: hashToken(APP_TOKEN), role: 'admin', grafana: true },
    ],
  });

  /** A run of fix-high started by `actor`, stopped waiting for approval. */
  async function waitingRun(actor: string, key: string): Promise<string> {
    const runId = await f.engine.enqueue('fix-high', { key, value: 'new' }, { mode: 'execute', actor });
    expect((await f.engine.resume(runId)).status).toBe('waiting_approval');
    return runId;
  }

  it('lets another admin approve a plan, refuses editors and the requester, and the run continues', async () => {
    const runId = await waitingRun('ada', 'approved');

    const editor = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      token: TOKENS.erin,
      body: {},
    });
    expect(editor.status).toBe(403);
    expect((editor.body as Any).error).toMatchObject({ code: 'FORBIDDEN', details: { needed: 'admin' } });
    const own = await f.call('POST', `/api/v1/approvals/${runId}/approve`, { token: TOKENS.ada, body: {} });
    expect(own.status).toBe(403);
    expect((own.body as Any).error.code).toBe('FOUR_EYES');
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);
    expect(f.world.get('approved')).toBeNull();

    const ok = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      token: TOKENS.abe,
      body: { reason: 'plan looks right' },
    });
    expect(ok.status).toBe(200);
    expect((ok.body as Any).approval).toMatchObject({
      status: 'approved',
      requestedBy: 'ada',
      decidedBy: 'abe',
      reason: 'plan looks right',
      breakGlass: false,
    });
    // One decision, whichever path made it: the other path finds nothing pending.
    const again = await f.call('POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.abe });
    expect(again.status).toBe(409);
    expect((again.body as Any).error.code).toBe('NO_PENDING_APPROVAL');

    expect((await f.store.getRun(runId))?.status).toBe('queued');
    await f.engine.resume(runId);
    expect((await f.store.getRun(runId))?.status).toBe('succeeded');
    expect(f.world.get('approved')).toBe('new');
  });

  it('rejects a plan: the run ends cancelled and nothing is applied', async () => {
    const runId = await waitingRun('erin', 'rejected');
    const rejected = await f.call('POST', `/api/v1/approvals/${runId}/reject`, {
      token: TOKENS.ada,
      body: { reason: 'wrong target' },
    });
    expect(rejected).toMatchObject({
      status: 200,
      body: { approval: { status: 'rejected', decidedBy: 'ada', reason: 'wrong target' } },
    });
    expect((await f.store.getRun(runId))?.status).toBe('cancelled');
    expect(f.world.get('rejected')).toBeNull();
  });

  it('acts for the Grafana user: an org Admin approves, an org Editor is refused', async () => {
    const runId = await waitingRun('erin', 'grafana');
    const editor = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      headers: viaGrafana('eddie', 'Editor'),
      body: {},
    });
    expect(editor.status).toBe(403);
    expect((editor.body as Any).error.code).toBe('FORBIDDEN');
    const admin = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      headers: viaGrafana('gina', 'Admin'),
      body: {},
    });
    expect(admin.status).toBe(200);
    expect((admin.body as Any).approval).toMatchObject({ decidedBy: 'gina', requestedBy: 'erin' });
  });

  it('takes the same body as /runs/:id/approve: break-glass needs a reason, unknown fields are refused', async () => {
    const runId = await waitingRun('ada', 'glass');
    const noReason = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      token: TOKENS.ada,
      body: { breakGlass: true },
    });
    expect(noReason.status).toBe(400);
    expect((noReason.body as Any).error.code).toBe('BREAK_GLASS_REASON_REQUIRED');
    const unknownField = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      token: TOKENS.abe,
      body: { reason: 'ok', force: true },
    });
    expect(unknownField.status).toBe(400);
    expect((unknownField.body as Any).error.code).toBe('INVALID_REQUEST');
    expect((await f.store.listApprovals(runId)).map((a) => a.status)).toEqual(['pending']);

    const withReason = await f.call('POST', `/api/v1/approvals/${runId}/approve`, {
      token: TOKENS.ada,
      body: { breakGlass: true, reason: 'outage, nobody else awake' },
    });
    expect(withReason).toMatchObject({
      status: 200,
      body: { approval: { breakGlass: true, decidedBy: 'ada' } },
    });
  });

  it('answers 404 NOT_FOUND for an unknown run, as /runs/:id/approve does', async () => {
    const alias = await f.call('POST', '/api/v1/approvals/run_nope/reject', { token: TOKENS.abe, body: {} });
    const original = await f.call('POST', '/api/v1/runs/run_nope/reject', { token: TOKENS.abe, body: {} });
    expect(alias.status).toBe(404);
    expect((alias.body as Any).error.code).toBe('NOT_FOUND');
    expect(alias.body).toEqual(original.body);
  });
});
