import { describe, expect, it } from 'vitest';
import { ApprovalPolicy, needsApproval } from './approval-policy';

describe('approval policy', () => {
  it('by default asks for high-risk and destructive plans only', () => {
    const policy = ApprovalPolicy.parse({});
    expect(needsApproval(policy, { risk: 'low', destructive: false })).toBe(false);
    expect(needsApproval(policy, { risk: 'medium', destructive: false })).toBe(false);
    expect(needsApproval(policy, { risk: 'high', destructive: false })).toBe(true);
    expect(needsApproval(policy, { risk: 'low', destructive: true })).toBe(true);
  });
  it('can be tightened or loosened', () => {
    expect(needsApproval(ApprovalPolicy.parse({ minRisk: 'low' }), { risk: 'low', destructive: false })).toBe(
      true,
    );
    const loose = ApprovalPolicy.parse({ minRisk: 'never', destructive: false });
    expect(needsApproval(loose, { risk: 'high', destructive: true })).toBe(false);
  });
  it('rejects unknown levels', () => {
    expect(ApprovalPolicy.safeParse({ minRisk: 'extreme' }).success).toBe(false);
  });
});
