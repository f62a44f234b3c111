import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { readRows, type SampleSource } from './sample-source';

/** Options of {@link conceptDrift}. */
export const ConceptDriftOptions = z
  .object({
    /** The model, for the summary. @default "the model" */
    model: z.string().min(1).default('the model'),
    /**
     * One statement giving the accuracy of a time window: `$1` is the window's start and `$2` its end
     * (`timestamptz`), the `params` follow as `$3`, `$4`…; it returns a row with `accuracy` (0–1) and
     * optionally `samples` (the labelled predictions counted). E.g.
     * `SELECT avg((prediction = ground_truth)::int) AS accuracy, count(*) AS samples FROM predictions
     * WHERE model_name = $3 AND ground_truth IS NOT NULL AND created_at >= $1 AND created_at < $2`.
     */
    sql: z.string().min(1),
    /** Values of `$3`, `$4`…. @default [] */
    params: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).default([]),
    /** The recent window, ending now. @default "24h" */
    recentWindow: Duration.default('24h'),
    /** The baseline window, ending where the recent one starts. @default "7d" */
    baselineWindow: Duration.default('7d'),
    /** `warn` when accuracy fell by at least this many percent of the baseline. @default 5 */
    warnDropPercent: z.number().min(0).max(100).default(5),
    /** `fail` when accuracy fell by at least this many percent of the baseline. @default 10 */
    failDropPercent: z.number().min(0).max(100).default(10),
    /** `fail` too when the recent accuracy is below this (the manual's alert: 0.85). @default none */
    minAccuracy: z.number().min(0).max(1).optional(),
    /** A window with fewer labelled samples than this is not judged (when the query returns `samples`). @default 30 */
    minSamples: z.number().int().min(1).default(30),
  })
  .refine((o) => o.warnDropPercent <= o.failDropPercent, {
    message: 'warnDropPercent must not exceed failDropPercent',
    path: ['warnDropPercent'],
  });
export type ConceptDriftOptions = z.output<typeof ConceptDriftOptions>;
export type ConceptDriftOptionsInput = z.input<typeof ConceptDriftOptions>;

/** What {@link conceptDrift} found. */
export type ConceptDriftData = {
  model: string;
  baselineAccuracy: number | null;
  recentAccuracy: number | null;
  /** (baseline − recent) / baseline × 100; negative when accuracy improved. `null` when either is missing. */
  accuracyDropPercent: number | null;
  baselineSamples: number | null;
  recentSamples: number | null;
  /** RFC 3339 bounds of the windows. */
  baselineWindow: { from: string; to: string };
  recentWindow: { from: string; to: string };
};

/** A window's accuracy as {@link conceptDrift} measured it. */
export type WindowAccuracy = {
  /** RFC 3339 bounds of the window. */
  from: string;
  to: string;
  accuracy: number | null;
  /** The labelled predictions counted, when the query says. */
  samples: number | null;
};

/**
 * What {@link conceptDrift} measured: the accuracy of the baseline and the recent window. Replaying it with
 * other drop percents, `minAccuracy` or `minSamples` judges the same accuracies again.
 */
export type ConceptDriftObservation = { baseline: WindowAccuracy; recent: WindowAccuracy };

const KIND = 'ml.concept-drift';

/**
 * Concept drift: the model's accuracy on labelled predictions of the recent window against a baseline window
 * just before it (the manual's `concept_drift_checks`: accuracy and `accuracy_drop_percent`).
 *
 * - `fail` when the drop is ≥ `failDropPercent` or the recent accuracy is below `minAccuracy`;
 * - `warn` when the drop is ≥ `warnDropPercent`; `ok` otherwise;
 * - `unknown` when a window has no accuracy or too few samples.
 *
 * Replayable: `read` measures both windows ({@link ConceptDriftObservation}), `judge` applies the limits.
 */
export function conceptDrift(
  source: SampleSource,
  options: ConceptDriftOptionsInput,
): ReplayableCheck<ConceptDriftData, ConceptDriftObservation> {
  const o = parseOptions(KIND, ConceptDriftOptions, options);
  const recentMs = toMillis(o.recentWindow);
  const baselineMs = toMillis(o.baselineWindow);
  return defineCheck({
    kind: KIND,
    description: `Accuracy of ${o.model}: last ${formatMillis(recentMs)} against the ${formatMillis(baselineMs)} before`,
    async read(ctx): Promise<ConceptDriftObservation> {
      const now = Date.now();
      const recent = { from: new Date(now - recentMs), to: new Date(now) };
      const baseline = { from: new Date(now - recentMs - baselineMs), to: recent.from };
      const measure = async (w: { from: Date; to: Date }): Promise<WindowAccuracy> => {
        const rows = await readRows(source, o.sql, [w.from, w.to, ...o.params], ctx.signal);
        const row = rows[0];
        if (row && !('accuracy' in row)) {
          throw new NonRetriableError(
            `conceptDrift: the query returns no "accuracy" column (it returns ${Object.keys(row).join(', ')}). Select the window's accuracy AS accuracy.`,
            { code: 'ML_DRIFT_NO_SUCH_COLUMN' },
          );
        }
        const accuracy = numberOrNull(row?.accuracy);
        const samples = row && 'samples' in row ? numberOrNull(row.samples) : null;
        return { from: w.from.toISOString(), to: w.to.toISOString(), accuracy, samples };
      };
      const b = await measure(baseline);
      const r = await measure(recent);
      return { baseline: b, recent: r };
    },
    judge({ baseline: b, recent: r }) {
      const drop =
        b.accuracy !== null && r.accuracy !== null && b.accuracy > 0
          ? ((b.accuracy - r.accuracy) / b.accuracy) * 100
          : null;
      const data: ConceptDriftData = {
        model: o.model,
        baselineAccuracy: b.accuracy,
        recentAccuracy: r.accuracy,
        accuracyDropPercent: drop === null ? null : Math.round(drop * 100) / 100,
        baselineSamples: b.samples,
        recentSamples: r.samples,
        baselineWindow: { from: b.from, to: b.to },
        recentWindow: { from: r.from, to: r.to },
      };
      const evidence = [
        {
          kind: 'table' as const,
          title: `Accuracy of ${o.model}`,
          columns: ['window', 'from', 'to', 'accuracy', 'samples'],
          rows: [
            ['baseline', data.baselineWindow.from, data.baselineWindow.to, b.accuracy, b.samples],
            ['recent', data.recentWindow.from, data.recentWindow.to, r.accuracy, r.samples],
          ],
        },
      ];
      const few = (s: number | null) => s !== null && s < o.minSamples;
      if (b.accuracy === null || r.accuracy === null || drop === null || few(b.samples) || few(r.samples)) {
        return finding(
          'unknown',
          `Concept drift of ${o.model}: not enough labelled predictions (baseline ${b.samples ?? 0}, recent ${r.samples ?? 0}; need ${o.minSamples} with an accuracy in each window)`,
          data,
          evidence,
        );
      }
      const belowFloor = o.minAccuracy !== undefined && r.accuracy < o.minAccuracy;
      const status: FindingStatus =
        drop >= o.failDropPercent || belowFloor ? 'fail' : drop >= o.warnDropPercent ? 'warn' : 'ok';
      const floor = belowFloor ? `, below the minimum ${o.minAccuracy}` : '';
      return finding(
        status,
        `Concept drift of ${o.model}: accuracy ${fmt(r.accuracy)} in the last ${formatMillis(recentMs)} vs ${fmt(b.accuracy)} before (${drop >= 0 ? `drop ${fmt(drop)}%` : `up ${fmt(-drop)}%`}${floor})`,
        data,
        evidence,
      );
    },
  });
}

function numberOrNull(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function fmt(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
