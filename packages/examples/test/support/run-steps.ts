import type { Engine, Finding, Outcome, StepRecord } from '@aiwebtest/runbooks';

/** A run's steps by name, as the engine recorded them. */
export async function stepsOf(engine: Engine, runId: string): Promise<Map<string, StepRecord>> {
  const { steps } = await engine.getRun(runId);
  return new Map(steps.map((s) => [s.name, s]));
}

/** The findings of a run's checks by step name (actions left out). */
export async function findingsOf(engine: Engine, runId: string): Promise<Map<string, Finding>> {
  const { steps } = await engine.getRun(runId);
  return new Map(
    steps.filter((s) => s.kind === 'check').map((s) => [s.name, s.result as unknown as Finding]),
  );
}

/** A step's stored result; throws (failing the test) when the run has no such step. */
export function resultOf<T = Finding>(steps: Map<string, { result: unknown }>, name: string): T {
  const step = steps.get(name);
  if (!step) throw new Error(`the run has no step ${name}`);
  return step.result as T;
}

/** A check step's finding; throws when the run has no such step. */
export function findingOf(steps: Map<string, { result: unknown }>, name: string) {
  return resultOf<Finding<Record<string, unknown>>>(steps, name);
}

/** What a run ended with: its done summary, or `escalated: <reason>`. */
export function said(result: { outcome: Outcome | null }): string {
  const o = result.outcome;
  return o === null ? '' : o.kind === 'done' ? o.summary : `escalated: ${o.reason}`;
}
