import { z } from 'zod';
import { Duration } from '../core/duration';
import type { Plan, RiskLevel } from '../core/plan';

/** Which plans need a second person's approval before they are applied. */
export const ApprovalPolicy = z.object({
  /** Plans at or above this risk need approval; `"never"` turns risk-based approval off. @default "high" */
  minRisk: z.enum(['low', 'medium', 'high', 'never']).default('high'),
  /** Destructive plans need approval whatever their risk. @default true */
  destructive: z.boolean().default(true),
  /** How long a request waits, and how long a granted approval stays valid for applying. @default "1h" */
  ttl: Duration.default('1h'),
});
/** Parsed {@link ApprovalPolicy}. */
export type ApprovalPolicy = z.infer<typeof ApprovalPolicy>;

const RANK: Record<RiskLevel, number> = { low: 0, medium: 1, high: 2 };

/** Whether `plan` needs an approval under `policy`. */
export function needsApproval(policy: ApprovalPolicy, plan: Pick<Plan, 'risk' | 'destructive'>): boolean {
  if (plan.destructive && policy.destructive) return true;
  return policy.minRisk !== 'never' && RANK[plan.risk] >= RANK[policy.minRisk];
}
