import { isBudgetExhaustedError } from '../core/errors';
import type { Escalation } from '../core/runbook';

// Control-flow signals thrown through a runbook's `run` function. They are not errors of the runbook;
// the execution also remembers each one it raised, so a runbook that catches and swallows one cannot
// make the engine skip a suspension or an escalation.

/** The run must wait for an approval. */
export class SuspendSignal extends Error {
  constructor(
    readonly step: string,
    readonly approvalId: string,
  ) {
    super(`Run suspended at step "${step}" waiting for approval ${approvalId}.`);
  }
}

/** The run ends escalated to a human. */
export class EscalateSignal extends Error {
  constructor(
    readonly escalation: Escalation,
    override readonly cause?: unknown,
  ) {
    super(`Escalated: ${escalation.reason}`);
  }
}

/** A replay for revert reached its target or diverged; stop running the function. */
export class StopReplay extends Error {
  constructor() {
    super('replay stopped');
  }
}

/**
 * The engine hands the run over to another process (this one is shutting down): stop at the next safe
 * point without cancelling, and release the run so any engine sharing the store resumes it at once.
 */
export class HandOverSignal extends Error {
  constructor(readonly reason: string) {
    super(`Run handed over to another engine: ${reason}`);
  }
}

export type ControlSignal = SuspendSignal | EscalateSignal | StopReplay | HandOverSignal;

export function isControlSignal(e: unknown): e is ControlSignal {
  return (
    e instanceof SuspendSignal ||
    e instanceof EscalateSignal ||
    e instanceof StopReplay ||
    e instanceof HandOverSignal
  );
}

/** Wraps a final failure of an act step: an escalation when the step asked for one or the budget is spent. */
export function giveUp(e: unknown, onGiveUp: Escalation | undefined): unknown {
  if (onGiveUp) return new EscalateSignal(onGiveUp, e);
  if (isBudgetExhaustedError(e)) return new EscalateSignal({ kind: 'escalate', reason: e.message }, e);
  return e;
}
