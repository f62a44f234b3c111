import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Escalator, pagerDuty, pagerDutySignature } from '../../src/notify';
import { createServer } from '../../src/server/app';
import { hashToken } from '../../src/server/identity';
import { type PagerDutyDouble, startPagerDutyDouble } from '../../src/testing/notify';
import { engineFixture } from '../support/engine-fixture';
import { DRIVERS } from '../support/stores';

// PagerDuty (the double) posts signed v3 webhooks over real HTTP to the service's
// POST /api/v1/incidents/pagerduty when someone acknowledges or resolves a page there; the escalator stops
// paging the next levels as if the acknowledgement had been made through the service.
const KEYS = { primary: 'p'.repeat(32), backup: 'b'.repeat(32), senior: 's'.repeat(32) };
const SECRET = 'whsec-pagerduty-subscription-0123456789';
const MIN = 60_000;
const POLICY = {
  name: 'test',
  acknowledgeWithin: '5m',
  levels: [
    {
      name: 'primary',
      team: 'primary',
      after: 0,
      severities: ['P1' as const],
      stopsOn: 'acknowledge' as const,
    },
    {
      name: 'backup',
      team: 'backup',
      after: '15m',
      severities: ['P1' as const],
      stopsOn: 'acknowledge' as const,
    },
    {
      name: 'senior',
      team: 'senior',
      after: '30m',
      severities: ['P1' as const],
      stopsOn: 'acknowledge' as const,
    },
  ],
  statusUpdates: { every: '30m', severities: [] },
};

describe('PagerDuty v3 webhooks into the escalator (real HTTP both ways)', () => {
  const fx = engineFixture(DRIVERS.pglite);
  let pd: PagerDutyDouble;
  let app: FastifyInstance;
  let escalator: Escalator;
  let hook: string;

  beforeAll(async () => {
    pd = await startPagerDutyDouble({ routingKeys: KEYS });
    escalator = new Escalator({
      policy: POLICY,
      pagerDuty: pagerDuty({ url: pd.url, routingKeys: KEYS }),
      pagerDutyWebhookSecret: SECRET,
    });
    app = createServer({
      engine: fx.engine([]),
      tokens: [{ name: 'ops', sha256: hashToken('ops-token'), role: 'admin' }],
      escalator,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no TCP address');
    hook = `http://127.0.0.1:${address.port}/api/v1/incidents/pagerduty`;
    pd.subscribe({ url: hook, secret: SECRET });
  });
  afterAll(async () => {
    await app.close();
    await pd.close();
  });
  beforeEach(() => pd.clear());

  const triggered = () => pd.events.filter((e) => e.action === 'trigger').map((e) => e.routedTo);
  const post = (body: string, headers: Record<string, string>) =>
    fetch(hook, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('an acknowledgement in PagerDuty stops the escalation: the backup and senior are never paged', async () => {
    const key = fx.key('run-ack');
    const opened = Date.now();
    await escalator.open({ key, severity: 'P1', summary: 'agent down' });
    expect(triggered()).toEqual(['primary']);

    const answers = await pd.act(`${key}:primary`, 'acknowledge', { by: 'Alice Oncall' });
    expect(answers).toEqual([
      { status: 200, body: { status: 'acknowledged', incident: key, level: 'primary' } },
    ]);
    expect(escalator.incident(key)).toMatchObject({ acknowledgedBy: 'pagerduty:Alice Oncall' });

    await escalator.tick(opened + 60 * MIN);
    expect(triggered()).toEqual(['primary']);
    // The decision is in the run's audit, like one made with POST /incidents/:key/acknowledge.
    const audit = await fx.sut.store.readRunAudit(key);
    const entries = audit.map((row) => JSON.parse(row.entry) as { kind: string; actor: string });
    expect(entries.map((entry) => [entry.kind, entry.actor])).toEqual([
      ['escalation.acknowledged', 'pagerduty:Alice Oncall'],
    ]);

    // PagerDuty sends the event again (at-least-once delivery): nothing changes.
    const again = await pd.act(`${key}:primary`, 'acknowledge');
    expect(again[0]).toMatchObject({ status: 202, body: { status: 'ignored' } });
  });

  it('a resolution without incident_key is matched by the title, and resolves every page', async () => {
    const key = fx.key('run-resolve');
    const opened = Date.now();
    await escalator.open({ key, severity: 'P1', summary: 'agent down' });
    await escalator.tick(opened + 16 * MIN);
    expect(triggered()).toEqual(['primary', 'backup']);
    const answers = await pd.act(`${key}:backup`, 'resolve', { by: 'Bob', withoutIncidentKey: true });
    expect(answers[0]).toEqual({
      status: 200,
      body: { status: 'resolved', incident: key, level: 'backup' },
    });
    expect(pd.incident(`${key}:primary`)?.status).toBe('resolved');
    expect(escalator.incident(key)?.resolvedBy).toBe('pagerduty:Bob');
    await escalator.tick(opened + 60 * MIN);
    expect(triggered()).toEqual(['primary', 'backup']);
  });

  it('refuses unsigned and wrongly signed deliveries with 401 and changes nothing', async () => {
    const key = fx.key('run-forged');
    await escalator.open({ key, severity: 'P1', summary: 'agent down' });
    const body = JSON.stringify({
      event: {
        event_type: 'incident.acknowledged',
        agent: { summary: 'Mallory' },
        data: { incident_key: `${key}:primary` },
      },
    });
    const unsigned = await post(body, {});
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { error: { message: string } }).error.message).toContain(
      'must be signed',
    );
    const forged = await post(body, { 'x-pagerduty-signature': pagerDutySignature('not-the-secret', body) });
    expect(forged.status).toBe(401);
    // Signed, but the body was changed after signing.
    const tampered = await post(body.replace('Mallory', 'Malory'), {
      'x-pagerduty-signature': pagerDutySignature(SECRET, body),
    });
    expect(tampered.status).toBe(401);
    expect(escalator.incident(key)?.acknowledgedAt).toBeUndefined();
    // A bearer token is no substitute for the signature.
    const withToken = await post(body, { authorization: 'Bearer ops-token' });
    expect(withToken.status).toBe(401);

    // During a secret rotation PagerDuty sends two signatures: one valid is enough.
    const rotated = await post(body, {
      'x-pagerduty-signature': `${pagerDutySignature('old-secret', body)},${pagerDutySignature(SECRET, body)}`,
    });
    expect(rotated.status).toBe(200);
    expect(escalator.incident(key)?.acknowledgedBy).toBe('pagerduty:Mallory');
  });

  it('ignores (202) other event types and incidents it did not page; 400 names a bad field', async () => {
    const signed = (event: unknown) => {
      const body = JSON.stringify(event);
      return post(body, { 'x-pagerduty-signature': pagerDutySignature(SECRET, body) });
    };
    const ping = await signed({ event: { event_type: 'pagey.ping', data: {} } });
    expect(ping.status).toBe(202);
    expect(await ping.json()).toEqual({
      status: 'ignored',
      reason: 'event type pagey.ping does not change an escalation',
    });
    const stranger = await signed({
      event: { event_type: 'incident.acknowledged', data: { incident_key: 'someone-else:primary' } },
    });
    expect(stranger.status).toBe(202);
    const bad = await signed({ event: { data: {} } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain(
      'event.event_type',
    );
  });
});
