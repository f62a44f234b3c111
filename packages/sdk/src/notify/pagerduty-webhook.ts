import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * A PagerDuty v3 webhook delivery (a webhook subscription's POST): `{ event: { id, event_type, resource_type,
 * occurred_at, agent, data } }`. Only what the escalator reads is checked; PagerDuty adds fields freely.
 */
export const PagerDutyWebhookEvent = z.object({
  event: z.object({
    id: z.string().optional(),
    /** `incident.acknowledged`, `incident.resolved`, `incident.triggered`, `pagey.ping`, … */
    event_type: z.string().min(1, 'expected the event type, such as "incident.acknowledged"'),
    resource_type: z.string().optional(),
    occurred_at: z.string().optional(),
    /** Who did it: a user reference whose `summary` is the person's name. */
    agent: z.looseObject({ summary: z.string().optional(), type: z.string().optional() }).nullish(),
    /** The incident: `incident_key` is the dedup key of the event that opened it; `title` its summary. */
    data: z.looseObject({
      id: z.string().optional(),
      incident_key: z.string().nullish(),
      title: z.string().nullish(),
    }),
  }),
});
export type PagerDutyWebhookEvent = z.infer<typeof PagerDutyWebhookEvent>;

/** The `X-PagerDuty-Signature` value of `body` under `secret`: `v1=<hex HMAC-SHA256>`. */
export function pagerDutySignature(secret: string, body: Buffer | string): string {
  return `v1=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * True when one of the `v1=` signatures in `header` (PagerDuty sends several, comma separated, while a secret
 * rotates) is the HMAC-SHA256 of `body` under `secret`. Compared in constant time.
 */
export function verifyPagerDutySignature(secret: string, body: Buffer, header: string | undefined): boolean {
  if (!header) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  let matched = false;
  for (const part of header.split(',')) {
    const [version, hex] = part.trim().split('=', 2);
    if (version !== 'v1' || !hex || !/^[0-9a-f]+$/i.test(hex)) continue;
    const given = Buffer.from(hex, 'hex');
    // Lengths are public (a SHA-256 is 32 bytes); only equal-length buffers can be compared.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched;
}

/** What a webhook event asks of the escalator: `acknowledge`/`resolve` for the two it acts on, else nothing. */
export function webhookDecision(eventType: string): 'acknowledge' | 'resolve' | undefined {
  if (eventType === 'incident.acknowledged') return 'acknowledge';
  if (eventType === 'incident.resolved') return 'resolve';
  return undefined;
}
