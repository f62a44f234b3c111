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

  it('refuses (403) an Alertmanager token whose role does not allow every run the batch would start, recording nothing', async () => {
    const diagnose = alert({ alertname: 'AgentDown', agent: 'analysis_agent' });
    const restart = alert({ alertname: 'AgentDown', agent: 'analysis_agent', severity: 'critical' });
    const before = {
      runs: await count('runs'),
      alerts: await count('alerts'),
      audit: await owner.store.auditHead(),
    };
    const refused = await post(notification([diagnose, restart]), ALERT_TOKENS.amViewer);
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

    // Diagnosing is a viewer's right: the same viewer token may post an alert that only diagnoses.
    const allowed = await post(notification([diagnose]), ALERT_TOKENS.amViewer);
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

/** Routes whose input comes from an annotation that changes every notification (like one holding $value). */
const VALUE_ROUTING: AlertRouting = {
  routes: [
    {
      name: 'latency',
      match: { alertname: 'LatencyHigh' },
      runbook: 'agent-diagnose',
      input: { agent: '{{ labels.agent }}', namespace: '{{ annotations.value }}' },
      mode: 'diagnose',
    },
    ...(ALERT_ROUTING.routes ?? []),
  ],
};

describe('the webhook processes each alert on its own', () => {
  let c: Awaited<ReturnType<typeof alertService>>;
  beforeAll(async () => {
    c = await alertService(schema, VALUE_ROUTING);
  });
  afterAll(async () => {
    await c?.close();
  });
  type Result = { runs: { fingerprint: string; route: string; runId: string; created: boolean }[] };
  const runOf = (reply: { body: unknown }, fingerprint: string) =>
    (reply.body as Result).runs.find((r) => r.fingerprint === fingerprint)?.runId as string;

  it('a repeat whose annotation-templated input changed keeps the first run (200), and the rest of the batch is processed', async () => {
    const slow = alert(
      { alertname: 'LatencyHigh', agent: 'code_agent' },
      { annotations: { value: 'p99 1.52s' } },
    );
    const down = alert({ alertname: 'AgentDown', agent: 'test_agent' });
    const groupKey = `{}:{namespace="aiwebtest",n="${seq}"}`;
    const first = await post(notification([slow, down], groupKey), ALERT_TOKENS.am, c);
    expect(first.status).toBe(200);
    const slowRun = runOf(first, slow.fingerprint);
    const downRun = runOf(first, down.fingerprint);
    const runs = await count('runs');

    // Alertmanager's repeat notification: the annotation has another value, and another alert joined the group.
    const slowAgain = { ...slow, annotations: { value: 'p99 2.71s' } };
    const joined = alert({ alertname: 'AgentDown', agent: 'deploy_agent' });
    const again = await post(notification([slowAgain, down, joined], groupKey), ALERT_TOKENS.am, c);
    expect(again.status).toBe(200);
    const joinedRun = runOf(again, joined.fingerprint);
    expect((again.body as Result).runs).toEqual([
      { fingerprint: slow.fingerprint, route: 'latency', runId: slowRun, created: false },
      { fingerprint: down.fingerprint, route: 'agent-down', runId: downRun, created: false },
      { fingerprint: joined.fingerprint, route: 'agent-down', runId: joinedRun, created: true },
    ]);
    expect(await count('runs')).toBe(runs + 1);
    // The first run keeps the input it was started with; the occurrence has one record, pointing at it.
    expect((await owner.store.getRun(slowRun))?.input).toEqual({
      agent: 'code_agent',
      namespace: 'p99 1.52s',
    });
    expect(await q('SELECT run_id FROM alerts WHERE fingerprint = $1', [slow.fingerprint])).toEqual([
      { run_id: slowRun },
    ]);
    expect(await alertRow(joined.fingerprint)).toMatchObject({ status: 'firing', run_id: joinedRun });
    expect((await auditOf('alert.routed')).filter((e) => e.runId === slowRun)).toHaveLength(1);
  });

  it('a store failure on one alert answers 503 after processing the others; the retry completes it without duplicates', async () => {
    const before = alert({ alertname: 'AgentDown', agent: 'report_agent' });
    const doomed = alert(
      { alertname: 'LatencyHigh', agent: 'plan_agent' },
      { annotations: { value: 'p99 3.10s' }, fingerprint: `doomed-${process.pid}-${seq}` },
    );
    const after = alert({ alertname: 'AgentDown', agent: 'analysis_agent' });
    const groupKey = `{}:{namespace="aiwebtest",n="${seq}"}`;
    const runs = await count('runs');
    // A real PostgreSQL failure, for this alert's record only (a full disk, a lost connection, …).
    await q(`CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.fingerprint LIKE 'doomed-%' THEN RAISE EXCEPTION 'simulated store failure'; END IF;
        RETURN NEW;
      END $$`);
    await q(
      'CREATE TRIGGER refuse_doomed BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION refuse_doomed()',
    );
    let failed: Awaited<ReturnType<typeof post>>;
    try {
      failed = await post(notification([before, doomed, after], groupKey), ALERT_TOKENS.am, c);
    } finally {
      await q('DROP TRIGGER refuse_doomed ON alerts');
      await q('DROP FUNCTION refuse_doomed()');
    }
    // 5xx, so that Alertmanager retries (it never retries a 4xx); the cause is logged, never sent.
    expect(failed.status).toBe(503);
    const error = (
      failed.body as { error: { code: string; message: string; details: Record<string, unknown> } }
    ).error;
    expect(error.code).toBe('ALERTS_INCOMPLETE');
    expect(error.details.failed).toEqual([{ fingerprint: doomed.fingerprint, status: 'firing' }]);
    expect(error.message).toContain(doomed.fingerprint);
    expect(failed.text).not.toContain('simulated store failure');
    // The alerts before and after the failing one were processed: runs queued, records written.
    const [beforeRow, afterRow] = [await alertRow(before.fingerprint), await alertRow(after.fingerprint)];
    expect(beforeRow).toMatchObject({ status: 'firing', route: 'agent-down' });
    expect(afterRow).toMatchObject({ status: 'firing', route: 'agent-down' });
    expect(await alertRow(doomed.fingerprint)).toBeUndefined();
    // The failing alert's run was queued before its record failed.
    const doomedRuns = await q<{ id: string }>(
      "SELECT id FROM runs WHERE context->'alert'->>'fingerprint' = $1",
      [doomed.fingerprint],
    );
    expect(doomedRuns).toHaveLength(1);
    expect(await count('runs')).toBe(runs + 3);

    // Alertmanager's retry, once the store is back: its annotation has meanwhile changed ($value).
    const retried = { ...doomed, annotations: { value: 'p99 3.35s' } };
    const retry = await post(notification([before, retried, after], groupKey), ALERT_TOKENS.am, c);
    expect(retry.status).toBe(200);
    expect((retry.body as Result).runs).toEqual([
      { fingerprint: before.fingerprint, route: 'agent-down', runId: beforeRow?.run_id, created: false },
      { fingerprint: doomed.fingerprint, route: 'latency', runId: doomedRuns[0]?.id, created: false },
      { fingerprint: after.fingerprint, route: 'agent-down', runId: afterRow?.run_id, created: false },
    ]);
    expect(await count('runs')).toBe(runs + 3);
    // The occurrence is now recorded, against the run its first delivery started.
    expect(await alertRow(doomed.fingerprint)).toMatchObject({
      status: 'firing',
      route: 'latency',
      run_id: doomedRuns[0]?.id,
    });
    for (const runId of [beforeRow?.run_id, doomedRuns[0]?.id, afterRow?.run_id]) {
      expect((await auditOf('alert.routed')).filter((e) => e.runId === runId)).toHaveLength(1);
    }
  });

  it('takes a whole large group (1 MiB) on the webhook, while the rest of the API keeps its 256 KiB limit', async () => {
    const noise = Array.from({ length: 64 }, (_, i) =>
      alert(
        { alertname: 'BulkNoise', shard: String(i) },
        { annotations: { description: 'x'.repeat(16_500) } },
      ),
    );
    const body = notification(noise);
    expect(JSON.stringify(body).length).toBeGreaterThan(1024 * 1024);
    const reply = await post(body, ALERT_TOKENS.am, c);
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ received: 64, unmatched: 64, runs: [] });
    expect(await alertRow(noise[63]?.fingerprint as string)).toMatchObject({ alertname: 'BulkNoise' });

    const runs = await count('runs');
    const big = await c.call('POST', '/api/v1/runs', {
      token: ALERT_TOKENS.erin,
      body: {
        runbookId: 'agent-diagnose',
        mode: 'diagnose',
        input: { agent: 'code_agent', namespace: 'x'.repeat(1024 * 1024) },
      },
    });
    expect(big.status).toBe(413);
    expect((big.body as { error: { code: string } }).error.code).toBe('BODY_TOO_LARGE');
    expect(await count('runs')).toBe(runs);
  });

  it('refuses an alertBodyLimit out of bounds, naming the option', () => {
    const engine = new Engine({ store: owner.store, runbooks: alertRunbooks() });
    for (const alertBodyLimit of [100, 65 * 1024 * 1024, 1.5]) {
      try {
        createServer({ engine, alertBodyLimit });
        expect.unreachable('the server was created');
      } catch (e) {
        expect(isInputValidationError(e) && e.issues.map((i) => i.path)).toEqual(['alertBodyLimit']);
      }
    }
  });
});

describe('the webhook and Alertmanager tokens go only together', () => {
  /** Refusal entries are written just after the response: wait (by attempts) for one of `actor` at `route`. */
  const refusalOf = async (actor: string, route: string) => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const found = (await auditOf('access.refused')).filter(
        (e) => e.actor === actor && e.data.route === route,
      );
      if (found.length > 0) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no access.refused entry of ${actor} at ${route}`);
  };

  it('an Alertmanager token is refused (403) everywhere but the webhook, and the refusal is audited', async () => {
    const runs = await count('runs');
    const attempts: [string, string, unknown?][] = [
      ['GET', '/api/v1/runs'],
      ['GET', '/api/v1/alerts'],
      ['GET', '/api/v1/audit'],
      [
        'POST',
        '/api/v1/runs',
        {
          runbookId: 'agent-restart',
          mode: 'execute',
          input: { agent: 'code_agent', namespace: 'aiwebtest' },
        },
      ],
    ];
    for (const [method, path, body] of attempts) {
      const reply = await a.call(method, path, { token: ALERT_TOKENS.am, ...(body ? { body } : {}) });
      expect(reply.status, `${method} ${path}`).toBe(403);
      const error = (reply.body as { error: { code: string; message: string; details: unknown } }).error;
      expect(error.code).toBe('FORBIDDEN');
      expect(error.message).toContain('valid only on POST /api/v1/alerts/alertmanager');
      expect(error.details).toEqual({ token: 'alertmanager', routeTakes: 'personal' });
      expect(reply.text).not.toContain(ALERT_TOKENS.am);
    }
    expect(await count('runs')).toBe(runs);
    const [entry] = await refusalOf('am', '/api/v1/runs');
    expect(entry).toMatchObject({
      kind: 'access.refused',
      data: { method: 'GET', status: 403, code: 'FORBIDDEN', via: 'alertmanager' },
    });
    for (const e of await auditOf('access.refused')) expect(JSON.stringify(e)).not.toContain(ALERT_TOKENS.am);
  });

  it('the webhook refuses (403) a personal admin token and a Grafana user, recording nothing', async () => {
    const critical = alert({ alertname: 'AgentDown', agent: 'code_agent', severity: 'critical' });
    const resolvedOne = { ...alert({ alertname: 'AgentDown', agent: 'code_agent' }), status: 'resolved' };
    const body = notification([critical, resolvedOne]);
    const before = {
      runs: await count('runs'),
      alerts: await count('alerts'),
      audit: await owner.store.auditHead(),
    };
    const grafanaUser = JSON.stringify({ UserID: 7, Login: 'gadmin', OrgID: 1, OrgRole: 'Admin' });
    const senders: [string, { token: string; headers?: Record<string, string> }][] = [
      ['ada', { token: ALERT_TOKENS.ada }],
      ['gadmin', { token: ALERT_TOKENS.grafana, headers: { 'x-grafana-context': grafanaUser } }],
    ];
    for (const [actor, who] of senders) {
      const reply = await a.call('POST', '/api/v1/alerts/alertmanager', { ...who, body });
      expect(reply.status, actor).toBe(403);
      const error = (reply.body as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('FORBIDDEN');
      expect(error.message).toContain('The webhook takes only an Alertmanager token');
      const [entry] = await refusalOf(actor, '/api/v1/alerts/alertmanager');
      expect(entry?.data).toMatchObject({
        method: 'POST',
        status: 403,
        via: actor === 'ada' ? 'token' : 'grafana',
      });
    }
    expect(await count('runs')).toBe(before.runs);
    expect(await count('alerts')).toBe(before.alerts);
    const written = (await owner.store.readAudit(before.audit.seq)).map((r) => JSON.parse(r.entry).kind);
    expect(written.filter((kind) => kind !== 'access.refused')).toEqual([]);
    expect(await alertRow(critical.fingerprint)).toBeUndefined();
    expect(await alertRow(resolvedOne.fingerprint)).toBeUndefined();
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
      const reply = await post(notification([substring, both]), ALERT_TOKENS.am, c);
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
