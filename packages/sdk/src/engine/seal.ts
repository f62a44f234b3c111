import { canonicalJson, type Json } from '../core/json';
import { type Plan, type PlanDraft, type RiskLevel, sealPlan } from '../core/plan';
import { isSecretName, REDACTED, REDACTED_NEW_VALUE, type Redactor } from '../core/redact';
import type { ResourceRef } from '../core/resource';

/**
 * Seals a plan as the engine stores it and hands it back to apply, verify and revert: redacted (secret
 * values and secret-looking text), then hashed. A change to a secret-named field shows `[REDACTED]` before
 * and, when the value changes, {@link REDACTED_NEW_VALUE} after — judged on the unredacted values — so a
 * fresh plan after a crash never mistakes an unapplied secret change for an applied one.
 */
export function sealRedacted<P>(
  action: { kind: string; target: ResourceRef; risk: RiskLevel; destructive: boolean },
  draft: PlanDraft<P>,
  redactor: Redactor,
): Plan<P> {
  const redacted = redactor.redact(draft as unknown as Json) as unknown as PlanDraft<P>;
  if (Array.isArray(redacted?.changes)) {
    redacted.changes = redacted.changes.map((c, i) => {
      if (!(c && typeof c.field === 'string' && isSecretName(c.field))) return c;
      const original = draft.changes[i];
      const changed = canonicalJson(original?.before ?? null) !== canonicalJson(original?.after ?? null);
      const mask = (v: Json | undefined) => (v === null || v === undefined ? null : REDACTED);
      return {
        ...c,
        before: mask(original?.before),
        after: changed && original?.after != null ? REDACTED_NEW_VALUE : mask(original?.after),
      };
    });
  }
  return sealPlan(action, redacted);
}
