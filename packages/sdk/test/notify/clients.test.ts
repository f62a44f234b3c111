import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  isNotificationError,
  PAGERDUTY_SUMMARY_LIMIT,
  pagerDuty,
  slackWebhook,
  statusPage,
} from '../../src/notify';
import {
  type PagerDutyDouble,
  type SlackDouble,
  type StatusPageDouble,
  startPagerDutyDouble,
  startSlackDouble,
  startStatusPageDouble,
} from '../../src/testing/notify';

const KEYS = { default: 'a'.repeat(32), security: 'b'.repeat(32) };
const fast = { maxAttempts: 3, baseDelay: 10, maxDelay: 2_000 };

describe('PagerDuty Events v2 client against the double', () => {
  let double: PagerDutyDouble;
  beforeAll(async () => {
    double = await startPagerDutyDouble({ routingKeys: KEYS });
  });
  afterAll(() => double.close());
  beforeEach(() => double.clear());

  it('triggers, acknowledges and resolves one incident by dedup key', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS, retry: fast });
    const accepted = await pd.trigger({ dedupKey: 'run:1', summary: 'Agent down', severity: 'P1' });
    expect(accepted).toEqual({ status: 'success', message: 'Event processed', dedupKey: 'run:1' });
    await pd.trigger({ dedupKey: 'run:1', summary: 'Agent down again', severity: 'P1' });
    expect(double.incident('run:1')).toMatchObject({
      status: 'triggered',
      triggers: 2,
      severity: 'error',
      routedTo: 'default',
    });
    await pd.acknowledge({ dedupKey: 'run:1' });
    expect(double.incident('run:1')?.status).toBe('acknowledged');
    await pd.resolve({ dedupKey: 'run:1' });
    expect(double.incident('run:1')?.actions).toEqual(['trigger', 'trigger', 'acknowledge', 'resolve']);
    expect(double.incident('run:1')?.status).toBe('resolved');
  });

  it('maps P0–P3 to critical/error/warning/info and routes by team', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS, retry: fast });
    for (const severity of ['P0', 'P1', 'P2', 'P3'] as const) {
      await pd.trigger({ team: 'security', dedupKey: `s-${severity}`, summary: severity, severity });
    }
    expect(double.events.map((e) => [e.routedTo, e.severity])).toEqual([
      ['security', 'critical'],
      ['security', 'error'],
      ['security', 'warning'],
      ['security', 'info'],
    ]);
  });

  it('cuts summaries to 1024 characters', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS, retry: fast });
    await pd.trigger({ dedupKey: 'long', summary: 'x'.repeat(5000), severity: 'P2' });
    const summary = double.incident('long')?.summary ?? '';
    expect(summary).toHaveLength(PAGERDUTY_SUMMARY_LIMIT);
    expect(summary.endsWith('…')).toBe(true);
  });

  it('does not retry a 400 and says what PagerDuty refused, without the routing key', async () => {
    const badKey = 'short-secret-key';
    const pd = pagerDuty({ url: double.url, routingKeys: { default: badKey }, retry: fast });
    const error = await pd.trigger({ dedupKey: 'x', summary: 's', severity: 'P1' }).catch((e: unknown) => e);
    expect(isNotificationError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain('answered 400: Event object is invalid');
    expect(message).toContain("Length of 'routing_key' is incorrect");
    expect(message).not.toContain(badKey);
    expect((error as { retriable: boolean }).retriable).toBe(false);
    expect(double.events).toHaveLength(1);
    expect(JSON.stringify(double.events)).not.toContain(badKey);
  });

  it('retries 429 honouring Retry-After and 5xx with backoff, then delivers once', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS, retry: fast });
    double.fail({ status: 429, retryAfterSeconds: 0.3 });
    double.fail({ status: 503 });
    const started = Date.now();
    await pd.trigger({ dedupKey: 'retry', summary: 'retried', severity: 'P0' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(double.events.map((e) => e.status)).toEqual([429, 503, 202]);
    expect(double.incident('retry')?.triggers).toBe(1);
  });

  it('gives up after maxAttempts with a retriable error', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS, retry: { ...fast, maxAttempts: 2 } });
    double.fail({ status: 500, times: 2 });
    const error = await pd
      .trigger({ dedupKey: 'down', summary: 's', severity: 'P0' })
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/answered 500.*Gave up after 2 attempt/);
    expect((error as { retriable: boolean }).retriable).toBe(true);
    expect(JSON.stringify(error)).not.toContain(KEYS.default);
  });

  it('refuses a team without a routing key, naming the configured teams', async () => {
    const pd = pagerDuty({ url: double.url, routingKeys: KEYS });
    await expect(pd.trigger({ team: 'dba', dedupKey: 'x', summary: 's', severity: 'P1' })).rejects.toThrow(
      /No PagerDuty routing key for team "dba": configured teams are "default", "security"/,
    );
  });

  it('validates its options, naming the field', () => {
    expect(() => pagerDuty({ url: 'not a url' })).toThrow(/url/);
  });
});

describe('Slack webhook client against the double', () => {
  let double: SlackDouble;
  beforeAll(async () => {
    double = await startSlackDouble({ channels: ['#incidents', '#ops'] });
  });
  afterAll(() => double.close());

  it('posts text and blocks to the channel of the webhook', async () => {
    const slack = slackWebhook({ url: double.webhookUrl('#ops'), channel: '#ops' });
    await slack.post({
      text: 'hello',
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: '*hi*' } }],
    });
    expect(double.posted('#ops')).toMatchObject([{ text: 'hello', blocks: [{ type: 'section' }] }]);
    expect(double.posted('#incidents')).toEqual([]);
  });

  it('fails clearly on an archived channel, never showing the webhook URL', async () => {
    const url = double.webhookUrl('#incidents');
    double.archive('#incidents');
    const error = await slackWebhook({ url, channel: '#incidents', retry: fast })
      .post({ text: 'x' })
      .catch((e: unknown) => e);
    expect((error as Error).message).toContain(
      'Slack webhook for #incidents answered 410: channel_is_archived',
    );
    expect((error as Error).message).not.toContain(new URL(url).pathname);
  });
});

describe('Statuspage client against the double', () => {
  let double: StatusPageDouble;
  beforeAll(async () => {
    double = await startStatusPageDouble({ pageId: 'pg1', apiKey: 'sp-secret-key-123' });
  });
  afterAll(() => double.close());

  it('opens an incident and posts updates through to resolved', async () => {
    const page = statusPage({
      url: double.url,
      pageId: 'pg1',
      apiKey: 'sp-secret-key-123',
      componentIds: ['c1'],
    });
    const created = await page.createIncident({ name: 'API errors', body: 'Investigating', impact: 'major' });
    expect(created).toMatchObject({ name: 'API errors', status: 'investigating', impact: 'major' });
    await page.updateIncident(created.id, { status: 'identified', body: 'Found it' });
    await page.updateIncident(created.id, { status: 'resolved', body: 'Fixed' });
    const [stored] = double.incidents();
    expect(stored?.component_ids).toEqual(['c1']);
    expect(stored?.status).toBe('resolved');
    expect(stored?.incident_updates.map((u) => [u.status, u.body])).toEqual([
      ['resolved', 'Fixed'],
      ['identified', 'Found it'],
      ['investigating', 'Investigating'],
    ]);
  });

  it('reports a wrong key as a 401 without the key, and does not retry it', async () => {
    const page = statusPage({ url: double.url, pageId: 'pg1', apiKey: 'wrong-key-456', retry: fast });
    const before = double.requests.length;
    const error = await page.createIncident({ name: 'x', body: 'y' }).catch((e: unknown) => e);
    expect((error as Error).message).toContain('Status page answered 401: Could not authenticate');
    expect((error as Error).message).not.toContain('wrong-key-456');
    expect(double.requests.length - before).toBe(1);
  });

  it('surfaces the 422 validation errors', async () => {
    const page = statusPage({ url: double.url, pageId: 'pg1', apiKey: 'sp-secret-key-123' });
    await expect(page.createIncident({ name: ' ', body: 'y' })).rejects.toThrow(/422.*Name can't be blank/);
  });
});
