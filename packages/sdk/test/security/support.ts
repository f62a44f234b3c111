import type { Action, Applied } from '../../src/core/step';
import { sealAsEngine, stepContext } from '../support/kubernetes';

/** plan → seal (redacted, as stored) → apply → verify, as the engine drives them; logs collected. */
export async function execute<P, A>(action: Action<P, A>) {
  const logs: string[] = [];
  const c = stepContext({ log: (m) => void logs.push(m) });
  const plan = sealAsEngine(action, await action.plan(c));
  const data = await action.apply(c, plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  const verification = action.verify ? await action.verify(c, applied) : undefined;
  return {
    plan,
    applied,
    data,
    verification,
    logs,
    revert: async () => {
      await action.revert?.(c, applied);
      return logs;
    },
  };
}
