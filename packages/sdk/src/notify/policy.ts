import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';

/** A runbook severity. */
export const SeverityName = z.enum(['P0', 'P1', 'P2', 'P3']);

/** One level of an escalation path: who is paged, for which severities, how long after the incident opened. */
export const EscalationLevel = z.object({
  /** A stable name, unique in the policy; part of the PagerDuty dedup key (`<incident>:<name>`). */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a lowercase name such as "backup"'),
  /** Who this is, for people: "Backup on-call engineer". @default the name */
  title: z.string().min(1).optional(),
  /** The PagerDuty team (routing key name) that pages this level. */
  team: z.string().min(1),
  /** How long after the incident opened this level is paged. @default 0 */
  after: Duration.default(0),
  /** The severities this level is paged for. @default all */
  severities: z.array(SeverityName).min(1).default(['P0', 'P1', 'P2', 'P3']),
  /**
   * What cancels this level's page while it is still pending: `acknowledge` ("page the backup if nobody
   * responded") or only `resolve` ("tell the manager when a P0 is still open after 2 h", acknowledged or not).
   * @default "acknowledge"
   */
  stopsOn: z.enum(['acknowledge', 'resolve']).default('acknowledge'),
});
export type EscalationLevel = z.infer<typeof EscalationLevel>;
/** {@link EscalationLevel} as written by users. */
export type EscalationLevelInput = z.input<typeof EscalationLevel>;

/** An on-call escalation policy: the path, the acknowledgement deadline, the status update cadence. */
export const EscalationPolicy = z
  .object({
    /** @default "on-call" */
    name: z.string().min(1).default('on-call'),
    /** When no one acknowledged by then, the incident is marked overdue (and the channels are told). @default "5m" */
    acknowledgeWithin: Duration.default('5m'),
    /** The escalation path, in order. */
    levels: z.array(EscalationLevel).min(1, 'an escalation policy needs at least one level'),
    /** Status updates (Slack + status page) while an incident of these severities is open. */
    statusUpdates: z
      .object({
        /** @default "30m" */
        every: Duration.default('30m'),
        /** @default ["P0", "P1"] */
        severities: z.array(SeverityName).default(['P0', 'P1']),
      })
      .default({ every: '30m', severities: ['P0', 'P1'] }),
  })
  .superRefine((policy, ctx) => {
    const seen = new Set<string>();
    policy.levels.forEach((level, i) => {
      if (seen.has(level.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['levels', i, 'name'],
          message: `duplicate level name "${level.name}": each level is paged once per incident by its name`,
        });
      }
      seen.add(level.name);
    });
    if (toMillisSafe(policy.statusUpdates.every) === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['statusUpdates', 'every'],
        message: 'expected a positive duration',
      });
    }
  });
export type EscalationPolicy = z.infer<typeof EscalationPolicy>;
/** {@link EscalationPolicy} as written by users. */
export type EscalationPolicyInput = z.input<typeof EscalationPolicy>;

function toMillisSafe(d: Duration): number {
  try {
    return toMillis(d);
  } catch {
    return Number.NaN;
  }
}

/**
 * The operations manual's on-call procedure as a policy. Pages go to PagerDuty teams `primary`, `backup`,
 * `senior`, `manager`, `cto` (routing keys by those names):
 *
 * - level 1, primary on-call: every severity, at once; acknowledge within 5 minutes;
 * - level 2, backup on-call: every severity, at 15 minutes if nobody acknowledged ("page backup on-call if not
 *   responding within 15 minutes");
 * - level 3, senior engineer: P0 and P1, at 30 minutes if still unacknowledged (primary and backup both silent);
 * - level 4, engineering manager: P0 still open after 2 hours, acknowledged or not;
 * - level 5, CTO: P0 still open after 4 hours, acknowledged or not.
 *
 * Status updates every 30 minutes while a P0 or P1 is open.
 */
export const ON_CALL_POLICY: EscalationPolicy = EscalationPolicy.parse({
  name: 'on-call',
  acknowledgeWithin: '5m',
  levels: [
    { name: 'primary', title: 'Primary on-call engineer', team: 'primary', after: 0 },
    { name: 'backup', title: 'Backup on-call engineer', team: 'backup', after: '15m' },
    {
      name: 'senior',
      title: 'Senior engineer',
      team: 'senior',
      after: '30m',
      severities: ['P0', 'P1'],
    },
    {
      name: 'manager',
      title: 'Engineering manager',
      team: 'manager',
      after: '2h',
      severities: ['P0'],
      stopsOn: 'resolve',
    },
    { name: 'cto', title: 'CTO', team: 'cto', after: '4h', severities: ['P0'], stopsOn: 'resolve' },
  ],
  statusUpdates: { every: '30m', severities: ['P0', 'P1'] },
});
