import { RunbookError } from './errors';
import type { Json } from './json';
import { canonicalJson, sha256 } from './json';
import type { ResourceRef } from './resource';

/** How risky an action is; the approval policy decides which levels need a second person. */
export type RiskLevel = 'low' | 'medium' | 'high';

/** One change an action will make: a field of a resource, from `before` to `after`. */
export interface Change {
  /** The resource changed. */
  target: ResourceRef;
  /** What about it changes, e.g. `spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]`. */
  field: string;
  /** The value now (`null` when it does not exist yet). */
  before: Json;
  /** The value after the apply (`null` when it will be removed). */
  after: Json;
}

/** What an action's `plan()` returns: a summary, the exact changes, and the parameters `apply()` will use. */
export interface PlanDraft<P = Json> {
  /** One line: what will happen. */
  summary: string;
  /** Every change, before → after. An empty list means there is nothing to do. */
  changes: Change[];
  /** Everything `apply()` needs, decided now so that the approved plan is exactly what is applied. */
  params: P;
}

/** A plan as the engine records it: the draft plus the action's identity, risk and a stable hash. */
export interface Plan<P = Json> extends PlanDraft<P> {
  /** The action kind, e.g. `k8s.rollout-restart`. */
  action: string;
  target: ResourceRef;
  risk: RiskLevel;
  destructive: boolean;
  /** SHA-256 over action, target, risk, destructive, changes and params. Approvals are bound to it. */
  hash: string;
}

/**
 * Completes a draft into a {@link Plan} with its hash. Equal drafts of the same action always hash equal.
 * Throws a {@link RunbookError} `INVALID_PLAN` naming the action when `plan()` returned something else.
 */
export function sealPlan<P>(
  action: { kind: string; target: ResourceRef; risk: RiskLevel; destructive: boolean },
  draft: PlanDraft<P>,
): Plan<P> {
  assertDraft(action.kind, draft);
  const identity = {
    action: action.kind,
    target: action.target,
    risk: action.risk,
    destructive: action.destructive,
  };
  const hash = sha256(canonicalJson({ ...identity, changes: draft.changes, params: draft.params }));
  return { ...identity, summary: draft.summary, changes: draft.changes, params: draft.params, hash };
}

function assertDraft(kind: string, draft: unknown): asserts draft is PlanDraft<unknown> {
  const d = draft as Partial<PlanDraft<unknown>> | null | undefined;
  const problem =
    !d || typeof d !== 'object'
      ? 'it returned no object'
      : typeof d.summary !== 'string'
        ? '`summary` is not a string'
        : !Array.isArray(d.changes)
          ? '`changes` is not an array'
          : d.changes.some(
                (c) =>
                  !c || typeof c !== 'object' || typeof c.field !== 'string' || typeof c.target !== 'string',
              )
            ? 'every change needs a `target` and a `field`'
            : d.params === undefined
              ? '`params` is missing (use null for none)'
              : undefined;
  if (problem) {
    throw new RunbookError(
      'INVALID_PLAN',
      `The plan() of action ${kind} returned an invalid plan: ${problem}. It must return { summary, changes: [{ target, field, before, after }], params }.`,
      { retriable: false },
    );
  }
}

/** A short, stable prefix of a plan hash for people to read and type. */
export function shortHash(hash: string): string {
  return hash.slice(0, 12);
}
