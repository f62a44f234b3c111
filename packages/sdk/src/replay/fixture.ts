import { z } from 'zod';
import type { ErrorInfo } from '../core/errors';
import { InputValidationError, NotFoundError } from '../core/errors';
import type { Json } from '../core/json';
import { issuePath } from '../core/parse-options';
import { createRedactor } from '../core/redact';
import { RUN_MODES, type RunMode } from '../core/step';
import {
  RUN_STATUSES,
  type RunRecord,
  type RunStatus,
  STEP_KINDS,
  STEP_STATUSES,
  type StepKind,
  type StepRecord,
  type StepStatus,
} from '../store/records';
import type { RunStore } from '../store/run-store';

/** The format tag of a {@link RunFixture} file; a file with another tag is refused. */
export const FIXTURE_FORMAT = 'runbook-fixture/v1';

/** One recorded step: what the run decided and saw at it, as the store kept it (redacted). */
export interface FixtureStep {
  /** Order of first appearance in the run (1-based). */
  seq: number;
  name: string;
  kind: StepKind;
  status: StepStatus;
  /** The stored result: a finding (with the observation of a replayable check), an act result, a decision. */
  result: Json | null;
  error: ErrorInfo | null;
}

/**
 * A recorded run: its input, every step's result and the outcome. `replayRun` (and `runbook replay`) runs a
 * runbook against it, answering each step from the recording, to show where a new version decides otherwise.
 */
export interface RunFixture {
  format: typeof FIXTURE_FORMAT;
  runbook: string;
  /** When the fixture was written (ISO 8601). */
  recordedAt: string;
  run: {
    id: string;
    mode: RunMode;
    /** The validated input, redacted. */
    input: Json;
    status: RunStatus;
    outcome: Json | null;
    error: ErrorInfo | null;
    startedAt: string | null;
    endedAt: string | null;
  };
  steps: FixtureStep[];
}

/** Options of {@link fixtureFromRun} and {@link recordRun}. */
export interface RecordOptions {
  /** Exact secret values to scrub besides what the store already redacted. @default [] */
  secrets?: readonly string[];
  /** The fixture's `recordedAt`. @default now */
  now?: Date;
}

/**
 * Builds a fixture from a stored run and its steps. Everything passes the redactor again (secret-looking
 * keys, tokens and URL credentials, plus `secrets`). Observations hold what the checks read (log lines,
 * query text): review a fixture before committing it.
 */
export function fixtureFromRun(
  run: RunRecord,
  steps: readonly StepRecord[],
  options: RecordOptions = {},
): RunFixture {
  const redactor = createRedactor(options.secrets ?? []);
  const fixture: RunFixture = {
    format: FIXTURE_FORMAT,
    runbook: run.runbookId,
    recordedAt: (options.now ?? new Date()).toISOString(),
    run: {
      id: run.id,
      mode: run.mode,
      input: run.input,
      status: run.status,
      outcome: run.outcome,
      error: run.error,
      startedAt: run.startedAt?.toISOString() ?? null,
      endedAt: run.endedAt?.toISOString() ?? null,
    },
    steps: [...steps]
      .sort((a, b) => a.seq - b.seq)
      .map((s) => ({
        seq: s.seq,
        name: s.name,
        kind: s.kind,
        status: s.status,
        result: s.result,
        error: s.error,
      })),
  };
  return redactor.redact(fixture as unknown as Json) as unknown as RunFixture;
}

/** Reads a run and its steps from the store and returns its fixture; a NotFoundError names an unknown run. */
export async function recordRun(
  store: RunStore,
  runId: string,
  options: RecordOptions = {},
): Promise<RunFixture> {
  const run = await store.getRun(runId);
  if (!run) {
    throw new NotFoundError(`Run "${runId}"`, 'See `runbook runs` for the stored runs.');
  }
  return fixtureFromRun(run, await store.getSteps(runId), options);
}

const JsonValue: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(JsonValue),
    z.record(z.string(), JsonValue),
  ]),
);
const ErrorInfoSchema = z.object({ name: z.string(), code: z.string(), message: z.string() }).passthrough();

/** The zod schema of a {@link RunFixture} file. */
export const RunFixtureSchema = z.object({
  format: z.literal(FIXTURE_FORMAT, { error: `format must be "${FIXTURE_FORMAT}"` }),
  runbook: z.string().min(1),
  recordedAt: z.string(),
  run: z.object({
    id: z.string().min(1),
    mode: z.enum(RUN_MODES),
    input: JsonValue,
    status: z.enum(RUN_STATUSES),
    outcome: JsonValue.nullable(),
    error: ErrorInfoSchema.nullable(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  }),
  steps: z
    .array(
      z.object({
        seq: z.number().int().min(1),
        name: z.string().min(1),
        kind: z.enum(STEP_KINDS),
        status: z.enum(STEP_STATUSES),
        result: JsonValue.nullable(),
        error: ErrorInfoSchema.nullable(),
      }),
    )
    // A replay finds steps by name: two steps with one name (or one position) would make it guess.
    .superRefine((steps, ctx) => {
      const names = new Set<string>();
      const seqs = new Set<number>();
      for (const [i, step] of steps.entries()) {
        if (names.has(step.name))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `step name "${step.name}" appears twice`,
          });
        if (seqs.has(step.seq))
          ctx.addIssue({ code: 'custom', path: [i, 'seq'], message: `seq ${step.seq} appears twice` });
        names.add(step.name);
        seqs.add(step.seq);
      }
    }),
});

/**
 * Validates a parsed fixture file. Throws an InputValidationError naming each bad field (`steps[2].kind`)
 * and where the fixture came from.
 */
export function parseFixture(value: unknown, source = 'fixture'): RunFixture {
  const parsed = RunFixtureSchema.safeParse(value);
  if (parsed.success) return parsed.data as RunFixture;
  throw new InputValidationError(
    source,
    parsed.error.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message })),
  );
}
