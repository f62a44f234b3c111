import { type Action, type StepContext, sealPlan } from '@aiwebtest/runbooks';

/** A step context for calling a check or an action outside the engine, as an operator's script would. */
export function stepContext(overrides: Partial<StepContext> = {}): StepContext {
  return {
    runId: 'test-run',
    runbookId: 'test',
    step: 'act',
    mode: 'execute',
    attempt: 1,
    actor: 'test',
    signal: AbortSignal.timeout(30_000),
    log: () => {},
    ...overrides,
  };
}

/** Plans an action, seals the plan and applies it: what a run does, without the engine's bookkeeping. */
export async function applyAction<P, A>(action: Action<P, A>): Promise<A> {
  const ctx = stepContext();
  const plan = sealPlan(action, await action.plan(ctx));
  return action.apply(ctx, plan);
}
