/**
 * The operations manual's "On-Call Procedures" for AI-Web-Test as data: the severities P0–P3 with their response
 * times, the escalation path with its timers, and the notification channels the pack's runbooks use. The SDK's
 * `Escalator` runs the policy; `runbook serve` runs it for escalated runs when the service config has
 * `notify.escalation`.
 */

import { toMillis } from '@aiwebtest/runbooks';
import {
  EscalationPolicy,
  type EscalationPolicyInput,
  ON_CALL_POLICY,
  SEVERITY_LEVELS,
} from '@aiwebtest/runbooks/notify';

/** The alert severity levels of the manual (P0 Critical 5 min … P3 Low 1 hour). */
export const AIWEBTEST_SEVERITIES = SEVERITY_LEVELS;

/**
 * The notification channels of the pack: `pager` (on-call, through the escalation), `pager:security` (the
 * security team, paged directly), `slack:#incidents` (stakeholders), `statuspage` (status.aiwebtest.com).
 */
export const ON_CALL_CHANNELS = {
  onCall: 'pager',
  security: 'pager:security',
  incidents: 'slack:#incidents',
  statusPage: 'statuspage',
} as const;

/** The PagerDuty teams the policy pages (a routing key each), plus the security team's. */
export const ON_CALL_TEAMS = ['primary', 'backup', 'senior', 'manager', 'cto', 'security'] as const;

/**
 * The AI-Web-Test escalation path: primary on-call at once (acknowledge within 5 minutes), the backup at 15 minutes
 * without an acknowledgement, the senior engineer for P0/P1 at 30 minutes, the engineering manager when a P0 is
 * open for 2 hours and the CTO at 4 hours; status updates (Slack #incidents and the status page) every 30 minutes
 * while a P0 or P1 is open. See NOTIFY.md of the SDK for why each level reads the manual the way it does.
 */
export const AIWEBTEST_ON_CALL_POLICY: EscalationPolicy = EscalationPolicy.parse({
  ...ON_CALL_POLICY,
  name: 'aiwebtest-on-call',
});

/**
 * The policy with every duration divided by `factor`, for drills and tests that cannot wait 15 minutes for the
 * backup: `compressedOnCallPolicy(900)` pages the backup after 1 s.
 */
export function compressedOnCallPolicy(
  factor: number,
  policy: EscalationPolicy = AIWEBTEST_ON_CALL_POLICY,
): EscalationPolicy {
  if (!(factor >= 1)) throw new RangeError(`compressedOnCallPolicy: factor ${factor} must be at least 1.`);
  const scale = (d: EscalationPolicy['acknowledgeWithin']) => Math.max(1, Math.round(toMillis(d) / factor));
  const input: EscalationPolicyInput = {
    name: `${policy.name} (time / ${factor})`,
    acknowledgeWithin: scale(policy.acknowledgeWithin),
    levels: policy.levels.map((level) => ({ ...level, after: level.after === 0 ? 0 : scale(level.after) })),
    statusUpdates: { ...policy.statusUpdates, every: scale(policy.statusUpdates.every) },
  };
  return EscalationPolicy.parse(input);
}
