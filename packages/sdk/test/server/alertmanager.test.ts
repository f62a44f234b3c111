import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALERT_TOKENS,
  alertService,
  eventually,
  startAlertmanager,
  type TestAlertmanager,
} from '../support/alertmanager';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';

// The real Alertmanager (Debian package) with deploy/alertmanager/alertmanager.yml, routed to the service:
// proves the sample config (receiver, route, bearer credentials file, send_resolved) end to end.
const schema = uniqueSchema('am');
let owner: StoreUnderTest;
let service: Awaited<ReturnType<typeof alertService>>;
let alertmanager: TestAlertmanager | undefined;

beforeAll(async () => {
  owner = await postgresStore(schema);
  service = await alertService(schema);
  alertmanager = await startAlertmanager({
    webhookUrl: `${service.base}/api/v1/alerts/alertmanager`,
    // An Alertmanager token ("alertmanager": true): the only kind of token the webhook takes.
    token: ALERT_TOKENS.am,
  });
}, 30_000);
afterAll(async () => {
  await alertmanager?.stop();
  await service?.close();
  await owner?.dispose();
});

describe('Alertmanager → runbook service', () => {
  it('a fired test alert becomes a run, and its resolution marks the alert resolved', async () => {
    const am = alertmanager as TestAlertmanager;
    const labels = {
      alertname: 'AgentDown',
      agent: 'requirements_agent',
      namespace: 'aiwebtest',
      severity: 'warning',
    };
    const startsAt = new Date(Date.now() - 60_000);
    const testAlert = {
      labels,
      annotations: { summary: 'requirements_agent has no ready pod' },
      startsAt: startsAt.toISOString(),
      generatorURL: 'http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22requirements_agent%22%7D%3D%3D0',
    };
    await am.postAlerts([testAlert]);

    const run = await eventually('the run of the alert', async () => {
      const rows = await owner.store.driver.query<{ id: string }>(
        "SELECT id FROM runs WHERE context->'alert'->'labels'->>'agent' = $1",
        [labels.agent],
      );
      return rows[0] ? owner.store.getRun(rows[0].id) : undefined;
    });
    expect(run).toMatchObject({
      runbookId: 'agent-diagnose',
      mode: 'diagnose',
      status: 'queued',
      requestedBy: 'am', // the token in the credentials file
      input: { agent: 'requirements_agent', namespace: 'aiwebtest' },
      context: {
        source: 'alertmanager',
        receiver: 'runbooks',
        externalURL: expect.stringMatching(/^http/),
        alert: {
          status: 'firing',
          labels,
          annotations: testAlert.annotations,
          startsAt: startsAt.toISOString(),
          generatorURL: testAlert.generatorURL,
        },
      },
    });

    const endsAt = new Date(Date.now() - 1_000);
    await am.postAlerts([{ ...testAlert, endsAt: endsAt.toISOString() }]);
    const resolved = await eventually('the alert to be resolved', async () => {
      const rows = await owner.store.driver.query<{ run_id: string; resolved_at: Date; route: string }>(
        "SELECT run_id, resolved_at, route FROM alerts WHERE status = 'resolved' AND labels->>'agent' = $1",
        [labels.agent],
      );
      return rows[0];
    });
    expect(resolved).toMatchObject({ run_id: run?.id, route: 'agent-down' });
    expect(new Date(resolved.resolved_at).toISOString()).toBe(endsAt.toISOString());
    // One run for the alert, whatever Alertmanager re-sent meanwhile.
    expect(
      await owner.store.driver.query("SELECT id FROM runs WHERE context->'alert'->'labels'->>'agent' = $1", [
        labels.agent,
      ]),
    ).toHaveLength(1);
  }, 60_000);
});
