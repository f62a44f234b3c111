import { chiSquareSurvival, kolmogorovSurvival } from './distributions';

/**
 * The statistics the data-drift check judges features by. Pure functions over plain arrays; each matches
 * a reference implementation (numpy / scipy 1.17) to 1e-9, which test/ml/reference checks for fixed samples.
 */

/** Options of {@link psi}. */
export interface PsiOptions {
  /** Quantile bins of the reference sample, for numeric samples. @default 10 */
  bins?: number;
  /** The floor a bin's share is raised to, so an empty bin does not make the index infinite. @default 1e-4 */
  epsilon?: number;
}

/** The population stability index and the bins it was computed over. */
export interface PsiResult {
  /** Σ (current share − reference share) · ln(current share / reference share) over the bins. */
  value: number;
  /** One entry per bin: its label (`≤ 3.5`, `> 7`, or a category) and the two shares before the floor. */
  bins: { label: string; reference: number; current: number }[];
}

/**
 * The population stability index of `current` against `reference`.
 *
 * Numbers are binned by the reference's quantiles: edges at the `k/bins` quantiles (k = 1 … bins−1,
 * numpy's default linear interpolation), duplicates removed; a value goes into the first bin whose upper
 * edge is ≥ it (bins are `(e₍ᵢ₋₁₎, eᵢ]`, numpy `searchsorted(edges, x, side='left')`). Strings are their own
 * bins (the union of both samples' categories). Each share is raised to `epsilon` before the sum.
 * Usual reading: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 significant shift.
 */
export function psi(
  reference: readonly number[] | readonly string[],
  current: readonly number[] | readonly string[],
  options: PsiOptions = {},
): PsiResult {
  const bins = options.bins ?? 10;
  const epsilon = options.epsilon ?? 1e-4;
  assertSample('reference', reference);
  assertSample('current', current);
  if (!Number.isInteger(bins) || bins < 2)
    throw new RangeError(`psi: bins must be an integer ≥ 2, got ${bins}`);
  if (!(epsilon > 0 && epsilon < 1)) throw new RangeError(`psi: epsilon must be in (0, 1), got ${epsilon}`);

  let labels: string[];
  let refCounts: number[];
  let curCounts: number[];
  if (typeof reference[0] === 'string' || typeof current[0] === 'string') {
    const ref = countCategories(reference as readonly string[]);
    const cur = countCategories(current as readonly string[]);
    labels = [...new Set([...ref.keys(), ...cur.keys()])].sort();
    refCounts = labels.map((l) => ref.get(l) ?? 0);
    curCounts = labels.map((l) => cur.get(l) ?? 0);
  } else {
    const sorted = Float64Array.from(reference as readonly number[]).sort();
    const edges = [...new Set(Array.from({ length: bins - 1 }, (_, i) => quantile(sorted, (i + 1) / bins)))];
    const binOf = (x: number) => {
      // Number of edges strictly below x.
      let lo = 0;
      let hi = edges.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((edges[mid] as number) < x) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    refCounts = new Array(edges.length + 1).fill(0);
    curCounts = new Array(edges.length + 1).fill(0);
    const count = (sample: readonly number[], counts: number[]) => {
      for (const x of sample) {
        const bin = binOf(x);
        counts[bin] = (counts[bin] as number) + 1;
      }
    };
    count(reference as readonly number[], refCounts);
    count(current as readonly number[], curCounts);
    labels = refCounts.map((_, i) => (i < edges.length ? `≤ ${edges[i]}` : `> ${edges[edges.length - 1]}`));
  }
  let value = 0;
  const shown: PsiResult['bins'] = [];
  for (let i = 0; i < labels.length; i++) {
    const r = (refCounts[i] as number) / reference.length;
    const c = (curCounts[i] as number) / current.length;
    const rf = Math.max(r, epsilon);
    const cf = Math.max(c, epsilon);
    value += (cf - rf) * Math.log(cf / rf);
    shown.push({ label: labels[i] as string, reference: r, current: c });
  }
  return { value, bins: shown };
}

/** The result of the two-sample Kolmogorov–Smirnov test. */
export interface KsResult {
  /** D: the largest distance between the two empirical distribution functions. */
  statistic: number;
  /** Two-sided p-value: the chance of a D at least this large when both samples come from one distribution. */
  pValue: number;
  /** `exact` (both samples ≤ 10 000 values, as scipy's `method='auto'`) or `asymptotic`. */
  method: 'exact' | 'asymptotic';
}

/**
 * The two-sample Kolmogorov–Smirnov test, two-sided, as `scipy.stats.ks_2samp(reference, current)`:
 * the exact p-value when both samples have at most 10 000 values (the share of lattice paths leaving the
 * band |x/m − y/n| < D, Hodges' "inside" method), the asymptotic Kolmogorov distribution above that (where
 * scipy uses the one-sample `kstwo` at the effective size instead; both agree to a few 1e-4 there).
 */
export function ksTest(reference: readonly number[], current: readonly number[]): KsResult {
  assertSample('reference', reference);
  assertSample('current', current);
  const a = Float64Array.from(reference).sort();
  const b = Float64Array.from(current).sort();
  const n1 = a.length;
  const n2 = b.length;
  const g = gcd(n1, n2);
  // In units of 1/lcm(n1, n2), F₁ − F₂ = (c₁·n₂/g − c₂·n₁/g): integers, so D has no rounding error.
  const n1g = n1 / g;
  const n2g = n2 / g;
  let i = 0;
  let j = 0;
  let h = 0;
  while (i < n1 || j < n2) {
    const x = Math.min(
      i < n1 ? (a[i] as number) : Number.POSITIVE_INFINITY,
      j < n2 ? (b[j] as number) : Number.POSITIVE_INFINITY,
    );
    while (i < n1 && a[i] === x) i++;
    while (j < n2 && b[j] === x) j++;
    h = Math.max(h, Math.abs(i * n2g - j * n1g));
  }
  const lcm = n1g * n2;
  const statistic = h / lcm;
  if (Math.max(n1, n2) <= 10_000) {
    return { statistic, pValue: h === 0 ? 1 : outsideBandShare(n1, n2, g, h), method: 'exact' };
  }
  const en = (n1 * n2) / (n1 + n2);
  return { statistic, pValue: kolmogorovSurvival(Math.sqrt(en) * statistic), method: 'asymptotic' };
}

/**
 * The share of the monotone lattice paths from (0,0) to (m,n) that touch |x·n/g − y·m/g| ≥ h at some point.
 * Column by column, B(x,y) is the share of paths into (x,y) that have touched the band's edge: 1 outside
 * the band, (x·B(x−1,y) + y·B(x,y−1)) / (x+y) inside (a path arrives from the left in x of x+y cases).
 * Only the band's window of each column is computed; it moves up monotonically, and values above it stay 1.
 */
function outsideBandShare(n1: number, n2: number, g: number, h: number): number {
  const m = Math.max(n1, n2);
  const n = Math.min(n1, n2);
  const mg = m / g;
  const ng = n / g;
  const column = new Float64Array(n + 1).fill(1);
  // Column x = 0: inside while y·mg < h.
  for (let y = 0; y <= n && y * mg < h; y++) column[y] = 0;
  for (let x = 1; x <= m; x++) {
    const lo = Math.max(Math.floor((x * ng - h) / mg) + 1, 0);
    const hi = Math.min(Math.ceil((x * ng + h) / mg) - 1, n);
    if (hi < lo) return 1;
    let below = 1; // B(x, lo − 1): outside the band, or no such point (then its weight y is 0)
    for (let y = lo; y <= hi; y++) {
      const value = (x * (column[y] as number) + y * below) / (x + y);
      column[y] = value;
      below = value;
    }
  }
  return column[n] as number;
}

/** The result of a chi-square test of homogeneity. */
export interface ChiSquareResult {
  /** Pearson's statistic Σ (observed − expected)² / expected over the 2 × k table. */
  statistic: number;
  /** Degrees of freedom, k − 1 for k categories. */
  dof: number;
  /** P(χ²(dof) ≥ statistic); 1 when there is a single category. */
  pValue: number;
  /** The categories (sorted) and their counts in each sample. */
  categories: { category: string; reference: number; current: number }[];
}

/**
 * Pearson's chi-square test that two categorical samples share one distribution: the 2 × k contingency table
 * of counts per category (the union of both samples'), as `scipy.stats.chi2_contingency(table, correction=False)`.
 */
export function chiSquareTest(reference: readonly string[], current: readonly string[]): ChiSquareResult {
  assertSample('reference', reference);
  assertSample('current', current);
  const ref = countCategories(reference);
  const cur = countCategories(current);
  const labels = [...new Set([...ref.keys(), ...cur.keys()])].sort();
  const categories = labels.map((category) => ({
    category,
    reference: ref.get(category) ?? 0,
    current: cur.get(category) ?? 0,
  }));
  const dof = labels.length - 1;
  if (dof === 0) return { statistic: 0, dof: 0, pValue: 1, categories };
  const total = reference.length + current.length;
  let statistic = 0;
  for (const c of categories) {
    const column = c.reference + c.current;
    for (const [observed, rowTotal] of [
      [c.reference, reference.length],
      [c.current, current.length],
    ] as const) {
      const expected = (rowTotal * column) / total;
      statistic += ((observed - expected) * (observed - expected)) / expected;
    }
  }
  return { statistic, dof, pValue: chiSquareSurvival(statistic, dof), categories };
}

function countCategories(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** numpy's default (`linear`) quantile of a sorted sample, including its lerp that is exact at both ends. */
function quantile(sorted: Float64Array, q: number): number {
  const index = (sorted.length - 1) * q;
  const below = Math.floor(index);
  const t = index - below;
  const a = sorted[below] as number;
  const b = sorted[Math.min(below + 1, sorted.length - 1)] as number;
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function assertSample(name: string, sample: readonly unknown[]): void {
  if (sample.length === 0)
    throw new RangeError(`The ${name} sample is empty: a drift statistic needs values on both sides.`);
  const kind = typeof sample[0];
  for (const v of sample) {
    if (typeof v !== kind || (typeof v === 'number' && !Number.isFinite(v))) {
      throw new TypeError(
        `The ${name} sample mixes value kinds or holds a non-finite number (${String(v)}): expected all finite numbers or all strings.`,
      );
    }
  }
}
