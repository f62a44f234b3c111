import { expect } from 'vitest';
import type { Finding } from '../../src/core/finding';
import { asObservation, type ReplayableCheck, type StepContext } from '../../src/core/step';

/** A step context for calling a check directly, as the engine would. */
export function context(): StepContext {
  return {
    runId: 'run-1',
    runbookId: 'replayable-checks',
    step: 'check',
    mode: 'diagnose',
    attempt: 1,
    actor: 'tester',
    signal: new AbortController().signal,
    log() {},
  };
}

/** What one live run of a replayable check saw and decided. */
export interface Observed<T, O> {
  /** The observation as the engine keeps it (through JSON, as `run` gives it to `judge`). */
  observation: O;
  /** The live finding: what `run` returns, `judge(read())`. */
  finding: Finding<T>;
}

/** Runs a replayable check once for real, keeping its observation, exactly as its `run` does. */
export async function observe<T, O>(check: ReplayableCheck<T, O>): Promise<Observed<T, O>> {
  const observation = asObservation(check.kind, await check.read(context()));
  return { observation, finding: check.judge(observation) };
}

/** The observation as a recorded fixture gives it back: stored as JSON text, parsed again. */
export function stored<O>(observation: O): O {
  return JSON.parse(JSON.stringify(observation)) as O;
}

/**
 * Judges the recorded observation again, with the same check and with `variant` (the check built with
 * another threshold): the same check reproduces the live finding exactly; the variant decides `status`.
 * Returns the variant's finding.
 */
export function rejudge<T, O>(
  live: Observed<T, O>,
  same: ReplayableCheck<T, O>,
  variant: ReplayableCheck<T, O>,
  status: Finding<T>['status'],
): Finding<T> {
  expect(same.judge(stored(live.observation))).toEqual(live.finding);
  const replayed = variant.judge(stored(live.observation));
  expect(replayed.status).not.toBe(live.finding.status);
  expect(replayed.status).toBe(status);
  return replayed;
}
