import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { type Cell, type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { readRows, type SampleSource, SqlQuery } from './sample-source';
import { chiSquareTest, ksTest, psi } from './statistics';

/** How a feature is judged. `ks` and `chi-square` judge a p-value (drift below the threshold), `psi` an index (drift at or above it). */
export const DriftMethod = z.enum(['ks', 'psi', 'chi-square']);
export type DriftMethod = z.infer<typeof DriftMethod>;

/** The default threshold of each method: p < 0.05 for the tests, PSI ≥ 0.1 (Evidently's defaults). */
export const DEFAULT_DRIFT_THRESHOLDS: Record<DriftMethod, number> = {
  ks: 0.05,
  'chi-square': 0.05,
  psi: 0.1,
};

/** One feature: a column of both queries' results. */
export const DriftFeature = z
  .object({
    /** The column name in both result sets. */
    name: z.string().min(1),
    /** `numeric` values are numbers (or numeric strings, as pg returns `numeric`); `categorical` values are labels. */
    kind: z.enum(['numeric', 'categorical']),
    /** @default "ks" for numeric, "chi-square" for categorical */
    method: DriftMethod.optional(),
    /** @default 0.05 for ks and chi-square (p-value), 0.1 for psi */
    threshold: z.number().positive().optional(),
  })
  .refine((f) => !(f.kind === 'numeric' && f.method === 'chi-square'), {
    message: 'chi-square judges categorical features; use ks or psi for a numeric one',
    path: ['method'],
  })
  .refine((f) => !(f.kind === 'categorical' && f.method === 'ks'), {
    message: 'ks judges numeric features; use chi-square or psi for a categorical one',
    path: ['method'],
  });
export type DriftFeature = z.input<typeof DriftFeature>;

/** Options of {@link dataDrift}. */
export const DataDriftOptions = z.object({
  /** What the data feeds, for the summary and report (e.g. `generation_model`). @default "the model" */
  model: z.string().min(1).default('the model'),
  /** The reference sample (the training data, or a stable past window). */
  reference: SqlQuery,
  /** The current sample (recent production inputs). */
  current: SqlQuery,
  /** The features to compare. */
  features: z
    .array(DriftFeature)
    .min(1, 'expected at least one feature')
    .refine((fs) => new Set(fs.map((f) => f.name)).size === fs.length, 'feature names must be unique'),
  /** The dataset drifts when more than this share of the judged features drift (the manual: > 20%). @default 0.2 */
  driftShare: z.number().min(0).max(1).default(0.2),
  /** A feature with fewer values than this on either side is not judged. @default 30 */
  minSamples: z.number().int().min(1).default(30),
  /** Quantile bins for numeric PSI. @default 10 */
  psiBins: z.number().int().min(2).max(100).default(10),
});
export type DataDriftOptions = z.output<typeof DataDriftOptions>;
export type DataDriftOptionsInput = z.input<typeof DataDriftOptions>;

/** How one feature compared. */
export type FeatureDrift = {
  name: string;
  kind: 'numeric' | 'categorical';
  method: DriftMethod;
  /** The test statistic: KS's D, chi-square's χ², or the PSI. `null` when not judged. */
  statistic: number | null;
  /** The p-value of ks / chi-square; `null` for psi. */
  pValue: number | null;
  /** What is judged: the p-value, or the PSI. `null` when not judged. */
  score: number | null;
  threshold: number;
  /** `null` when the feature had too few values to judge. */
  drifted: boolean | null;
  referenceCount: number;
  currentCount: number;
};

/** What {@link dataDrift} found. */
export type DataDriftData = {
  model: string;
  /** True when more than `driftShare` of the judged features drifted. */
  datasetDrift: boolean;
  /** Drifted features / judged features (0 when none was judged). */
  shareOfDriftedFeatures: number;
  driftShareThreshold: number;
  numberOfFeatures: number;
  numberOfDriftedFeatures: number;
  driftedFeatures: string[];
  referenceRows: number;
  currentRows: number;
  features: FeatureDrift[];
  /** The report as Markdown, for a ticket or a chat message. */
  report: string;
};

/** One feature as {@link dataDrift} measured it, before its threshold is applied. */
export type FeatureMeasure = {
  name: string;
  kind: 'numeric' | 'categorical';
  method: DriftMethod;
  /** KS's D, chi-square's χ², or the PSI; `null` when either side had fewer than `minSamples` values. */
  statistic: number | null;
  /** The p-value of ks / chi-square; `null` for psi or when not measured. */
  pValue: number | null;
  referenceCount: number;
  currentCount: number;
};

/**
 * What {@link dataDrift} measured: each feature's statistic and sample sizes, and the row counts. Replaying
 * it with other thresholds, `driftShare` or a higher `minSamples` judges the same statistics again; a
 * changed `method` or `psiBins` is not recomputed (the recorded method's statistic is judged), and a feature
 * the recorded run did not measure is not judged.
 */
export type DataDriftObservation = {
  referenceRows: number;
  currentRows: number;
  features: FeatureMeasure[];
};

const KIND = 'ml.data-drift';

/**
 * Data drift, as the manual's weekly Evidently report judges it: each feature of a current sample is compared
 * with a reference sample — numeric features by the two-sample Kolmogorov–Smirnov test (or PSI), categorical
 * ones by Pearson's chi-square (or PSI), each with its threshold — and the dataset drifts when more than
 * `driftShare` (20%) of the features drift. Both samples are read with parameterized SQL.
 *
 * - `fail`: dataset drift; `warn`: some features drift, not enough for dataset drift; `ok`: none drifts;
 *   `unknown`: no feature had `minSamples` values on both sides.
 * - Evidence: one row per feature (method, score, threshold, drifted, sample sizes) and the Markdown report.
 *
 * Replayable: `read` samples and measures ({@link DataDriftObservation}), `judge` applies the thresholds.
 */
export function dataDrift(
  source: SampleSource,
  options: DataDriftOptionsInput,
): ReplayableCheck<DataDriftData, DataDriftObservation> {
  const o = parseOptions(KIND, DataDriftOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Data drift of ${o.features.length} feature(s) of ${o.model}`,
    async read(ctx): Promise<DataDriftObservation> {
      const reference = await readRows(source, o.reference.sql, o.reference.params, ctx.signal);
      const current = await readRows(source, o.current.sql, o.current.params, ctx.signal);
      for (const [side, rows] of [
        ['reference', reference],
        ['current', current],
      ] as const) {
        const missing = rows.length > 0 ? o.features.filter((f) => !(f.name in (rows[0] as object))) : [];
        if (missing.length > 0) {
          throw new NonRetriableError(
            `dataDrift: the ${side} query returns no column ${missing.map((f) => `"${f.name}"`).join(', ')} (it returns ${Object.keys(rows[0] as object).join(', ')}). Select each feature under its name.`,
            { code: 'ML_DRIFT_NO_SUCH_COLUMN' },
          );
        }
      }
      return {
        referenceRows: reference.length,
        currentRows: current.length,
        features: o.features.map((f) => measure(f, reference, current, o)),
      };
    },
    judge(seen) {
      const measured = new Map(seen.features.map((m) => [m.name, m]));
      const features = o.features.map((f) => judge(f, measured.get(f.name), o));
      const judged = features.filter((f) => f.drifted !== null);
      const drifted = judged.filter((f) => f.drifted);
      const share = judged.length === 0 ? 0 : drifted.length / judged.length;
      const datasetDrift = judged.length > 0 && share > o.driftShare;
      const data: DataDriftData = {
        model: o.model,
        datasetDrift,
        shareOfDriftedFeatures: share,
        driftShareThreshold: o.driftShare,
        numberOfFeatures: features.length,
        numberOfDriftedFeatures: drifted.length,
        driftedFeatures: drifted.map((f) => f.name),
        referenceRows: seen.referenceRows,
        currentRows: seen.currentRows,
        features,
        report: '',
      };
      const status: FindingStatus =
        judged.length === 0 ? 'unknown' : datasetDrift ? 'fail' : drifted.length > 0 ? 'warn' : 'ok';
      const summary =
        judged.length === 0
          ? `Data drift of ${o.model}: no feature had ${o.minSamples} values in both samples (reference ${seen.referenceRows} rows, current ${seen.currentRows})`
          : `Data drift of ${o.model}: ${drifted.length} of ${judged.length} features drifted (${percent(share)}${datasetDrift ? ` > ${percent(o.driftShare)}: dataset drift` : `, limit ${percent(o.driftShare)}`})${drifted.length ? `: ${data.driftedFeatures.join(', ')}` : ''}`;
      data.report = markdownReport(data, summary);
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Features of ${o.model}`,
          columns: [
            'feature',
            'kind',
            'method',
            'statistic',
            'p-value',
            'threshold',
            'drifted',
            'reference n',
            'current n',
          ],
          rows: features.map((f): Cell[] => [
            f.name,
            f.kind,
            f.method,
            round(f.statistic),
            round(f.pValue),
            f.threshold,
            f.drifted,
            f.referenceCount,
            f.currentCount,
          ]),
        },
        { kind: 'text', title: 'Data drift report (Markdown)', text: data.report },
      ];
      return finding(status, summary, data, evidence);
    },
  });
}

/** The method a feature is judged by. */
function methodOf(f: z.output<typeof DriftFeature>): DriftMethod {
  return f.method ?? (f.kind === 'numeric' ? 'ks' : 'chi-square');
}

/** A feature's statistic over both samples (none below `minSamples` values on a side). */
function measure(
  f: z.output<typeof DriftFeature>,
  reference: Record<string, unknown>[],
  current: Record<string, unknown>[],
  o: DataDriftOptions,
): FeatureMeasure {
  const method = methodOf(f);
  const ref = f.kind === 'numeric' ? numbers(reference, f.name, 'reference') : labels(reference, f.name);
  const cur = f.kind === 'numeric' ? numbers(current, f.name, 'current') : labels(current, f.name);
  const base = { name: f.name, kind: f.kind, method, referenceCount: ref.length, currentCount: cur.length };
  if (ref.length < o.minSamples || cur.length < o.minSamples) {
    return { ...base, statistic: null, pValue: null };
  }
  if (method === 'psi') {
    const value = psi(ref as number[] | string[], cur as number[] | string[], { bins: o.psiBins }).value;
    return { ...base, statistic: value, pValue: null };
  }
  const test =
    method === 'ks'
      ? ksTest(ref as number[], cur as number[])
      : chiSquareTest(ref as string[], cur as string[]);
  return { ...base, statistic: test.statistic, pValue: test.pValue };
}

/** A feature's measure against its threshold; not judged when it was not measured or has too few values. */
function judge(
  f: z.output<typeof DriftFeature>,
  m: FeatureMeasure | undefined,
  o: DataDriftOptions,
): FeatureDrift {
  // A replay judges the statistic of the method it was measured with: the threshold must be that method's.
  const method = m?.method ?? methodOf(f);
  const threshold =
    method === methodOf(f)
      ? (f.threshold ?? DEFAULT_DRIFT_THRESHOLDS[method])
      : DEFAULT_DRIFT_THRESHOLDS[method];
  const base = {
    name: f.name,
    kind: f.kind,
    method,
    threshold,
    referenceCount: m?.referenceCount ?? 0,
    currentCount: m?.currentCount ?? 0,
  };
  if (!m || m.statistic === null || m.referenceCount < o.minSamples || m.currentCount < o.minSamples) {
    return { ...base, statistic: null, pValue: null, score: null, drifted: null };
  }
  if (method === 'psi') {
    return {
      ...base,
      statistic: m.statistic,
      pValue: null,
      score: m.statistic,
      drifted: m.statistic >= threshold,
    };
  }
  const pValue = m.pValue ?? 1;
  return { ...base, statistic: m.statistic, pValue, score: pValue, drifted: pValue < threshold };
}

function numbers(rows: Record<string, unknown>[], column: string, side: string): number[] {
  const out: number[] = [];
  for (const row of rows) {
    const v = row[column];
    if (v === null || v === undefined) continue;
    const n =
      typeof v === 'number' ? v : typeof v === 'string' || typeof v === 'bigint' ? Number(v) : Number.NaN;
    if (!Number.isFinite(n)) {
      throw new NonRetriableError(
        `dataDrift: numeric feature "${column}" has the value ${JSON.stringify(String(v))} in the ${side} sample; expected a finite number. Cast it in SQL, or declare the feature categorical.`,
        { code: 'ML_DRIFT_BAD_VALUE' },
      );
    }
    out.push(n);
  }
  return out;
}

function labels(rows: Record<string, unknown>[], column: string): string[] {
  const out: string[] = [];
  for (const row of rows) {
    const v = row[column];
    if (v !== null && v !== undefined) out.push(String(v));
  }
  return out;
}

function markdownReport(d: DataDriftData, summary: string): string {
  const lines = [
    `# Data drift report: ${d.model}`,
    '',
    summary.replace(/^Data drift of [^:]+: /, '**Result:** '),
    '',
    `Reference rows: ${d.referenceRows}, current rows: ${d.currentRows}. Dataset drift when more than ${percent(d.driftShareThreshold)} of the features drift.`,
    '',
    '| Feature | Kind | Method | Statistic | p-value | Threshold | Drifted |',
    '| --- | --- | --- | ---: | ---: | ---: | --- |',
    ...d.features.map(
      (f) =>
        `| ${f.name.replace(/\|/g, '\\|')} | ${f.kind} | ${f.method} | ${fmt(f.statistic)} | ${fmt(f.pValue)} | ${f.method === 'psi' ? '≥ ' : 'p < '}${f.threshold} | ${f.drifted === null ? `not judged (n = ${f.referenceCount}/${f.currentCount})` : f.drifted ? '**yes**' : 'no'} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

function fmt(n: number | null): string {
  if (n === null) return '—';
  return n !== 0 && Math.abs(n) < 1e-4 ? n.toExponential(3) : String(round(n));
}

function round(n: number | null): number | null {
  return n === null ? null : Number(n.toPrecision(6));
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}
