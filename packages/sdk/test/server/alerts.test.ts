import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { Engine } from '../../src/engine/engine';
import type { AlertRouting } from '../../src/server/alert-routing';
import { createServer } from '../../src/server/app';
import { ALERT_ROUTING, ALERT_TOKENS, alertRunbooks, alertService } from '../support/alertmanager';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';

// The Alertmanager webhook over real HTTP and PostgreSQL: two service instances share one store schema,
// as two replicas behind a Service do.
const schema = uniqueSchema('alerts');
let owner: StoreUnderTest;
let a: Awaited<ReturnType<typeof alertService>>;
let b: Awaited<ReturnType<typeof alertService>>;

beforeAll(async () => {
  owner = await postgresStore(schema);
  a = await alertService(schema);
  b = await alertService(schema);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await owner?.dispose();
});

let seq = 0;
/** A firing alert with a fresh fingerprint unless given. */
function alert(labels: Record<string, string>, extra: Record<string, unknown> = {}) {
  seq++;
  return {
    status: 'firing',
    labels,
    annotations: { summary: `${labels.agent ?? 'something'} is down` },
    startsAt: '2026-11-27T10:00:00.123456789Z',
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus:9090/graph?g0.expr=up%3D%3D0',
    fingerprint: `fp${process.pid}x${seq}`,
    ...extra,
  };
}
function notification(alerts: unknown[], groupKey = `{}:{alertname="AgentDown",n="${seq}"}`) {
  return {
    version: '4',
    groupKey,
    truncatedAlerts: 0,
    status: 'firing',
    receiver: 'runbooks',
    groupLabels: { alertname: 'AgentDown' },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    alerts,
    someFieldOfALaterAlertmanager: { tolerated: true },
  };
}
const post = (body: unknown, token = ALERT_TOKENS.am, server = a) =>
  server.call('POST', '/api/v1/alerts/alertmanager', { token, body });

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  owner.store.driver.query<T>(sql, params);
const count = async (table: 'runs' | 'alerts' | 'audit') =>
  Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0]?.n);
const auditOf = async (kind: string) =>
  (await owner.store.readAudit(0, 100_000)).map((r) => JSON.parse(r.entry)).filter((e) => e.kind === kind);
const alertRow = async (fingerprint: string) =>
  (await q('SELECT * FROM alerts WHERE fingerprint = $1', [fingerprint]))[0];

describe('POST /api/v1/alerts/alertmanager', () => {
  it('queues a run of the matching route with the input from the labels, the alert as context, ask → execute with approval', async () => {
    const critical = alert({ alertname: 'AgentDown', agent: 'requirements_agent', severity: 'critical' });
    const body = notification([critical]);
    const reply = await post(body);
    expect(reply.status).toBe(200);
    const runId = (reply.body as { runs: { runId: string }[] }).runs[0]?.runId as string;
    expect(reply.body).toEqual({
      received: 1,
      runs: [{ fingerprint: critical.fingerprint, route: 'agent-down-critical', runId, created: true }],
      resolved: 0,
      unmatched: 0,
      unroutable: [],
    });

    const run = await owner.store.getRun(runId);
    expect(run).toMatchObject({
      runbookId: 'agent-restart',
      mode: 'execute',
      status: 'queued',
      approval: 'always',
      requestedBy: 'am',
      input: { agent: 'requirements_agent', namespace: 'aiwebtest' },
      idempotencyKey: `alert:${createHash('sha256')
        .update(`${body.groupKey}\n${critical.fingerprint}\n2026-11-27T10:00:00.123Z`)
        .digest('hex')}`,
    });
    expect(run?.context).toEqual({
      source: 'alertmanager',
      receiver: 'runbooks',
      externalURL: 'http://alertmanager:9093',
      groupKey: body.groupKey,
      alert: {
        fingerprint: critical.fingerprint,
        status: 'firing',
        labels: critical.labels,
        annotations: critical.annotations,
        startsAt: '2026-11-27T10:00:00.123Z',
        endsAt: '0001-01-01T00:00:00.000Z',
        generatorURL: critical.generatorURL,
      },
    });
    expect(await alertRow(critical.fingerprint)).toMatchObject({
      status: 'firing',
      route: 'agent-down-critical',
      run_id: runId,
      alertname: 'AgentDown',
      group_key: body.groupKey,
    });
    const routed = (await auditOf('alert.routed')).filter((e) => e.runId === runId);
    expect(routed).toHaveLength(1);
    expect(routed[0]).toMatchObject({
      actor: 'am',
      data: { route: 'agent-down-critical', fingerprint: critical.fingerprint },
    });

    // The diagnosis is one step away: the alert list names the run.
    const list = await a.call('GET', '/api/v1/alerts?limit=5', { token: ALERT_TOKENS.vera });
    expect(list.status).toBe(200);
    expect((list.body as { alerts: unknown[] }).alerts).toContainEqual(
      expect.objectContaining({
        fingerprint: critical.fingerprint,
        runId,
        route: 'agent-down-critical',
        status: 'firing',
      }),
    );

    // A redelivery (Alertmanager retrying after a timeout) or a repeat notification starts nothing new.
    const runs = await count('runs');
    const head = await owner.store.auditHead();
    const again = await post(body);
    expect(again.status).toBe(200);
    expect((again.body as { runs: unknown[] }).runs).toEqual([
      { fingerprint: critical.fingerprint, route: 'agent-down-critical', runId, created: false },
    ]);
    expect(await count('runs')).toBe(runs);
    expect(await owner.store.auditHead()).toEqual(head);
    expect(await q('SELECT * FROM alerts WHERE fingerprint = $1', [critical.fingerprint])).toHaveLength(1);
  });

  it('two replicas receiving the same alert at once start exactly one run', async () => {
    const same = alert({ alertname: 'AgentDown', agent: 'execution_agent' });
    const body = notification([same]);
    const replies = await Promise.all([
      post(body, ALERT_TOKENS.am, a),
      post(body, ALERT_TOKENS.am, b),
      post(body),
    ]);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
    const runs = replies.map((r) => (r.body as { runs: { runId: string; created: boolean }[] }).runs[0]);
    expect(new Set(runs.map((r) => r?.runId)).size).toBe(1);
    expect(runs.filter((r) => r?.created)).toHaveLength(1);
    const runId = runs[0]?.runId;
    expect(
      await q("SELECT id FROM runs WHERE context->'alert'->>'fingerprint' = $1", [same.fingerprint]),
    ).toEqual([{ id: runId }]);
    expect((await owner.store.getRun(runId as string))?.mode).toBe('diagnose');
    expect(await q('SELECT run_id FROM alerts WHERE fingerprint = $1', [same.fingerprint])).toEqual([
      { run_id: runId },
    ]);
    expect((await auditOf('alert.routed')).filter((e) => e.runId === runId)).toHaveLength(1);
  });

  it('records a resolved alert, once, and never starts a run for it', async () => {
    const firing = alert({ alertname: 'AgentDown', agent: 'planning_agent' });
    const groupKey = '{}:{alertname="AgentDown",agent="planning_agent"}';
    const first = await post(notification([firing], groupKey));
    const runId = (first.body as { runs: { runId: string }[] }).runs[0]?.runId;
    const runs = await count('runs');

    const resolvedAlert = { ...firing, status: 'resolved', endsAt: '2026-11-27T10:05:00Z' };
    const resolved = await post({ ...notification([resolvedAlert], groupKey), status: 'resolved' });
    expect(resolved.status).toBe(200);
    expect(resolved.body).toEqual({ received: 1, runs: [], resolved: 1, unmatched: 0, unroutable: [] });
    expect(await count('runs')).toBe(runs);
    const row = await alertRow(firing.fingerprint);
    expect(row).toMatchObject({ status: 'resolved', run_id: runId, route: 'agent-down' });
    expect((row?.resolved_at as Date | undefined)?.toISOString()).toBe('2026-11-27T10:05:00.000Z');
    const audited = (await auditOf('alert.resolved')).filter(
      (e) => e.data.fingerprint === firing.fingerprint,
    );
    expect(audited).toEqual([
      expect.objectContaining({ runId, data: expect.objectContaining({ route: 'agent-down' }) }),
    ]);

    // Redelivered resolution: no new audit entry.
    const head = await owner.store.auditHead();
    expect((await post({ ...notification([resolvedAlert], groupKey), status: 'resolved' })).status).toBe(200);
    expect(await owner.store.auditHead()).toEqual(head);

    // A resolution of an alert never seen firing (the firing notification was lost) is recorded as resolved.
    const unseen = {
      ...alert({ alertname: 'AgentDown', agent: 'code_agent' }),
      status: 'resolved',
      endsAt: '2026-11-27T11:00:00Z',
    };
    expect((await post(notification([unseen]))).status).toBe(200);
    expect(await alertRow(unseen.fingerprint)).toMatchObject({
      status: 'resolved',
      run_id: null,
      route: null,
    });
    expect(await count('runs')).toBe(runs);
  });

  it('starts nothing for a late firing notification of an occurrence already resolved, but does for its next occurrence', async () => {
    // Resolved before its firing notification arrived (Alertmanager retried the firing one late).
    const lost = alert({ alertname: 'AgentDown', agent: 'review_agent' });
    const groupKey = '{}:{alertname="AgentDown",agent="review_agent"}';
    const resolvedLost = { ...lost, status: 'resolved', endsAt: '2026-11-27T10:07:00Z' };
    expect((await post({ ...notification([resolvedLost], groupKey), status: 'resolved' })).status).toBe(200);
    // Fired, routed, then resolved: its firing notification is redelivered after the resolution.
    const seen = alert({ alertname: 'AgentDown', agent: 'test_agent' });
    const first = await post(notification([seen], groupKey));
    const seenRun = (first.body as { runs: { runId: string }[] }).runs[0]?.runId;
    expect(seenRun).toBeDefined();
    const resolvedSeen = { ...seen, status: 'resolved', endsAt: '2026-11-27T10:08:00Z' };
    expect((await post({ ...notification([resolvedSeen], groupKey), status: 'resolved' })).status).toBe(200);

    const runs = await count('runs');
    const head = await owner.store.auditHead();
    const fresh = alert({ alertname: 'AgentDown', agent: 'deploy_agent' });
    const late = await post(notification([lost, seen, fresh], groupKey), ALERT_TOKENS.am, b);
    expect(late.status).toBe(200);
    const freshRun = (late.body as { runs: { runId: string }[] }).runs[0]?.runId as string;
    // Only the alert that is still firing queued a run; the two stale ones count in `received` only.
    expect(late.body).toEqual({
      received: 3,
      runs: [{ fingerprint: fresh.fingerprint, route: 'agent-down', runId: freshRun, created: true }],
      resolved: 0,
      unmatched: 0,
      unroutable: [],
    });
    expect(await count('runs')).toBe(runs + 1);
    expect(
      await q("SELECT count(*)::int AS n FROM runs WHERE context->'alert'->>'fingerprint' = $1", [
        lost.fingerprint,
      ]),
    ).toEqual([{ n: 0 }]);
    // The records stay resolved, and the stale alerts wrote no audit entry (the fresh one wrote one).
    expect(await alertRow(lost.fingerprint)).toMatchObject({ status: 'resolved', run_id: null });
    expect(await alertRow(seen.fingerprint)).toMatchObject({ status: 'resolved', run_id: seenRun });
    const written = await owner.store.readAudit(head.seq);
    expect(written.map((r) => JSON.parse(r.entry))).toEqual([
      expect.objectContaining({ kind: 'run.created', runId: freshRun }),
      expect.objectContaining({ kind: 'alert.routed', runId: freshRun }),
    ]);

    // The same alert firing again later is a new occurrence (another startsAt): it starts a run.
    const again = { ...lost, startsAt: '2026-11-27T12:00:00Z' };
    const next = await post(notification([again], groupKey));
    expect((next.body as { runs: { created: boolean }[] }).runs).toEqual([
      expect.objectContaining({ fingerprint: lost.fingerprint, created: true }),
    ]);
    expect(await count('runs')).toBe(runs + 2);
  });

  it('reports and records unmatched and unroutable alerts without failing the batch', async () => {
    const other = alert({ alertname: 'DiskFull', instance: 'db-1' });
    const noAgent = alert({ alertname: 'AgentDown' });
    const badAgent = alert({ alertname: 'AgentDown', agent: 'Not An Agent!' });
    const good = alert({ alertname: 'AgentDown', agent: 'report_agent' });
    const body = notification([other, noAgent, badAgent, good]);
    const reply = await post(body);
    expect(reply.status).toBe(200);
    const result = reply.body as {
      runs: { fingerprint: string }[];
      unmatched: number;
      unroutable: { fingerprint: string; route: string; reason: string }[];
    };
    expect(result.unmatched).toBe(1);
    expect(result.runs.map((r) => r.fingerprint)).toEqual([good.fingerprint]);
    expect(result.unroutable).toEqual([
      {
        fingerprint: noAgent.fingerprint,
        route: 'agent-down',
        reason: expect.stringContaining('labels.agent'),
      },
      {
        fingerprint: badAgent.fingerprint,
        route: 'agent-down',
        reason: expect.stringContaining('input.agent: must be an agent name'),
      },
    ]);
    expect(await alertRow(other.fingerprint)).toMatchObject({ status: 'firing', route: null, run_id: null });
    expect(await alertRow(noAgent.fingerprint)).toMatchObject({
      status: 'firing',
      route: 'agent-down',
      run_id: null,
    });
    expect(await alertRow(badAgent.fingerprint)).toMatchObject({ route: 'agent-down', run_id: null });
    expect(
      (await auditOf('alert.unmatched')).filter((e) => e.data.fingerprint === other.fingerprint),
    ).toHaveLength(1);
    const unroutable = (await auditOf('alert.unroutable')).filter((e) =>
      [noAgent.fingerprint, badAgent.fingerprint].includes(e.data.fingerprint),
    );
    expect(unroutable).toHaveLength(2);

    const head = await owner.store.auditHead();
    expect((await post(body)).status).toBe(200);
    expect(await owner.store.auditHead()).toEqual(head);

    const unmatchedOnly = await a.call('GET', '/api/v1/alerts?status=firing&limit=200', {
      token: ALERT_TOKENS.vera,
    });
    expect((unmatchedOnly.body as { alerts: unknown[] }).alerts).toContainEqual(
      expect.objectContaining({
        fingerprint: other.fingerprint,
        route: null,
        runId: null,
        alertname: 'DiskFull',
      }),
    );
  });

  it('refuses (403) a token whose role does not allow every run the batch would start, recording nothing', async () => {
    const diagnose = alert({ alertname: 'AgentDown', agent: 'analysis_agent' });
    const restart = alert({ alertname: 'AgentDown', agent: 'analysis_agent', severity: 'critical' });
    const before = {
      runs: await count('runs'),
      alerts: await count('alerts'),
      audit: await owner.store.auditHead(),
    };
    const refused = await post(notification([diagnose, restart]), ALERT_TOKENS.vera);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({
      error: { code: 'FORBIDDEN', details: { needed: 'editor', role: 'viewer' } },
    });
    expect((refused.body as { error: { message: string } }).error.message).toContain(
      'agent-restart in ask mode',
    );
    expect(await count('runs')).toBe(before.runs);
    expect(await count('alerts')).toBe(before.alerts);
    // The refusal itself is audited (access.refused); nothing about the alerts is.
    const written = (await owner.store.readAudit(before.audit.seq)).map((r) => JSON.parse(r.entry).kind);
    expect(written.filter((kind) => kind !== 'access.refused')).toEqual([]);

    // Diagnosing is a viewer's right: the same viewer may post an alert that only diagnoses.
    const allowed = await post(notification([diagnose]), ALERT_TOKENS.vera);
    expect(allowed.status).toBe(200);
    expect((allowed.body as { runs: unknown[] }).runs).toHaveLength(1);
  });

  it('refuses malformed notifications with 400 naming the field, changing nothing', async () => {
    const good = notification([alert({ alertname: 'AgentDown', agent: 'test_agent' })]);
    const before = {
      runs: await count('runs'),
      alerts: await count('alerts'),
      audit: await owner.store.auditHead(),
    };
    const { fingerprint: _dropped, ...noFingerprint } = alert({
      alertname: 'AgentDown',
      agent: 'test_agent',
    });
    const cases: [unknown, string][] = [
      [{ ...good, version: '3' }, 'version'],
      [notification([noFingerprint]), 'alerts[0].fingerprint'],
      [{ ...good, alerts: { 0: good.alerts[0] } }, 'alerts'],
      [notification([{ ...alert({ alertname: 'AgentDown' }), startsAt: 'yesterday' }]), 'alerts[0].startsAt'],
      [
        notification([{ ...alert({ alertname: 'AgentDown' }), labels: { agent: 7 } }]),
        'alerts[0].labels.agent',
      ],
    ];
    for (const [body, field] of cases) {
      const reply = await post(body);
      expect(reply.status, field).toBe(400);
      const error = (reply.body as { error: { code: string; details: { path: string }[] } }).error;
      expect(error.code).toBe('INVALID_REQUEST');
      expect(error.details.map((d) => d.path)).toContain(field);
    }
    const notJson = await a.call('POST', '/api/v1/alerts/alertmanager', {
      token: ALERT_TOKENS.am,
      raw: '{"version":"4",',
    });
    expect(notJson.status).toBe(400);
    expect((notJson.body as { error: { code: string } }).error.code).toBe('INVALID_JSON');
    expect(await count('runs')).toBe(before.runs);
    expect(await count('alerts')).toBe(before.alerts);
    expect(await owner.store.auditHead()).toEqual(before.audit);
  });

  it('documents the webhook and its answer in OpenAPI', async () => {
    const doc = (await a.call('GET', '/api/v1/openapi.json', { token: ALERT_TOKENS.vera })).body as {
      paths: Record<
        string,
        Record<
          string,
          { responses: Record<string, { content: Record<string, { schema: { properties: object } }> }> }
        >
      >;
    };
    const answer =
      doc.paths['/api/v1/alerts/alertmanager']?.post?.responses['200']?.content['application/json'];
    expect(Object.keys(answer?.schema.properties ?? {}).sort()).toEqual([
      'received',
      'resolved',
      'runs',
      'unmatched',
      'unroutable',
    ]);
  });
});

describe('alert routing config', () => {
  const engine = () => new Engine({ store: owner.store, runbooks: alertRunbooks() });
  /** The issues a config is refused with: by the options' schema, or by the routes once they are registered. */
  const refusal = async (alerts: AlertRouting) => {
    try {
      const app = createServer({ engine: engine(), alerts });
      try {
        await app.ready();
      } finally {
        await app.close();
      }
    } catch (e) {
      if (isInputValidationError(e)) return e.issues;
      throw e;
    }
    throw new Error('the server was created');
  };
  const route = ALERT_ROUTING.routes?.[1] as NonNullable<AlertRouting['routes']>[number];

  it('refuses at server creation a route naming an unknown runbook, a bad regex or an unknown placeholder', async () => {
    expect(await refusal({ routes: [{ ...route, runbook: 'agent-reboot' }] })).toEqual([
      {
        path: 'alerts.routes.0.runbook',
        message: expect.stringContaining('no runbook "agent-reboot" is loaded'),
      },
    ]);
    expect(await refusal({ routes: [{ ...route, matchRegex: { agent: '(unclosed' } }] })).toEqual([
      { path: 'alerts.routes.0.matchRegex.agent', message: 'must be a valid regular expression' },
    ]);
    expect(
      await refusal({ routes: [{ ...route, input: { agent: '{{ foo.x }}', namespace: 'aiwebtest' } }] }),
    ).toEqual([
      {
        path: 'alerts.routes.0.input.agent',
        message: expect.stringContaining('{{ foo.x }} is not a known placeholder'),
      },
    ]);
    expect(await refusal({ routes: [route, { ...route }] })).toEqual([
      { path: 'alerts.routes.1.name', message: expect.stringContaining('must be unique') },
    ]);
    expect((await refusal({ routes: [{ ...route, mode: 'yolo' as 'plan' }] }))[0]?.path).toBe(
      'alerts.routes.0.mode',
    );
  });

  it('anchors regexes like Alertmanager and lets `continue` start one run per matching route', async () => {
    const routing: AlertRouting = {
      routes: [
        {
          name: 'diag',
          match: { alertname: 'X' },
          matchRegex: { agent: '.*_agent' },
          runbook: 'agent-diagnose',
          input: { agent: '{{ labels.agent }}', namespace: 'n' },
          continue: true,
        },
        {
          name: 'restart',
          match: { alertname: 'X' },
          runbook: 'agent-restart',
          input: { agent: '{{ labels.agent }}', namespace: '{{ annotations.ns }}' },
          mode: 'plan',
        },
      ],
    };
    const c = await alertService(schema, routing);
    try {
      const substring = alert({ alertname: 'X', agent: 'my_agent_two' }, { annotations: { ns: 'prod' } });
      const both = alert({ alertname: 'X', agent: 'my_agent' }, { annotations: { ns: 'prod' } });
      const reply = await post(notification([substring, both]), ALERT_TOKENS.erin, c);
      expect(reply.status).toBe(200);
      const runs = (reply.body as { runs: { fingerprint: string; route: string; runId: string }[] }).runs;
      expect(runs.map((r) => [r.fingerprint, r.route])).toEqual([
        [substring.fingerprint, 'restart'],
        [both.fingerprint, 'diag'],
        [both.fingerprint, 'restart'],
      ]);
      const restart = await owner.store.getRun(runs[2]?.runId as string);
      expect(restart).toMatchObject({
        runbookId: 'agent-restart',
        mode: 'plan',
        input: { agent: 'my_agent', namespace: 'prod' },
      });
      expect(await alertRow(both.fingerprint)).toMatchObject({ route: 'diag', run_id: runs[1]?.runId });
    } finally {
      await c.close();
    }
  });
});
