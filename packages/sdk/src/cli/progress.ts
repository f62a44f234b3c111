import { shortHash } from '../core/plan';
import type { Engine } from '../engine/engine';
import { type CliIo, writeLines } from './io';
import { renderStepEnd } from './render';

/** Prints one line per engine event while a run executes. Returns a function that stops it. */
export function showProgress(engine: Engine, out: CliIo['stdout']): () => void {
  const subscriptions = [
    engine.onStepStart((e) =>
      writeLines(out, `▶ ${e.step} (${e.kind}${e.attempt > 1 ? `, attempt ${e.attempt}` : ''})`),
    ),
    engine.onStepEnd((e) => writeLines(out, renderStepEnd(e))),
    engine.onRetry((e) =>
      writeLines(
        out,
        `↻ retry ${e.step}: attempt ${e.attempt} failed (${e.error.message}); next in ${e.delayMs}ms`,
      ),
    ),
    engine.onApprovalRequested((e) =>
      writeLines(
        out,
        `⏸ ${e.step} waits for approval of plan ${shortHash(e.plan.hash)} (requested by ${e.requestedBy})`,
      ),
    ),
    engine.onLog((e) => writeLines(out, `  ${e.step ? `[${e.step}] ` : ''}${e.message}`)),
  ];
  return () => {
    for (const s of subscriptions) s.dispose();
  };
}
