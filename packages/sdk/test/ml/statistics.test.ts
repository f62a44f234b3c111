import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chiSquareSurvival, kolmogorovSurvival, logGamma } from '../../src/ml/drift/distributions';
import { chiSquareTest, ksTest, psi } from '../../src/ml/drift/statistics';

// Reference values computed independently with numpy/scipy 1.17 by reference/drift_reference.py for the fixed
// samples in reference/samples.json (the script states the PSI binning and epsilon).
type Numeric = { reference: number[]; current: number[] };
type Categorical = { reference: string[]; current: string[] };
const samples = JSON.parse(readFileSync(new URL('./reference/samples.json', import.meta.url), 'utf8')) as {
  numeric: Record<string, Numeric>;
  categorical: Record<string, Categorical>;
};
const expected = JSON.parse(readFileSync(new URL('./reference/expected.json', import.meta.url), 'utf8')) as {
  numeric: Record<string, { psi: number; ks: { statistic: number; pValue: number } }>;
  categorical: Record<string, { psi: number; chiSquare: { statistic: number; dof: number; pValue: number } }>;
};

const STATISTIC = 1e-9;
const P_VALUE = 1e-6;

describe('drift statistics against numpy/scipy reference values', () => {
  for (const [name, sample] of Object.entries(samples.numeric)) {
    const want = expected.numeric[name];
    it(`numeric "${name}" (${sample.reference.length} vs ${sample.current.length}): PSI and KS`, () => {
      if (!want) throw new Error(`no expected values for ${name}`);
      expect(Math.abs(psi(sample.reference, sample.current).value - want.psi)).toBeLessThan(STATISTIC);
      const ks = ksTest(sample.reference, sample.current);
      expect(ks.method).toBe('exact');
      expect(Math.abs(ks.statistic - want.ks.statistic)).toBeLessThan(STATISTIC);
      expect(Math.abs(ks.pValue - want.ks.pValue)).toBeLessThan(P_VALUE);
      // The p-value is also close in relative terms, which matters for tiny ones.
      expect(Math.abs(ks.pValue - want.ks.pValue) / want.ks.pValue).toBeLessThan(1e-6);
    });
  }
  for (const [name, sample] of Object.entries(samples.categorical)) {
    const want = expected.categorical[name];
    it(`categorical "${name}": PSI and chi-square`, () => {
      if (!want) throw new Error(`no expected values for ${name}`);
      expect(Math.abs(psi(sample.reference, sample.current).value - want.psi)).toBeLessThan(STATISTIC);
      const chi = chiSquareTest(sample.reference, sample.current);
      expect(chi.dof).toBe(want.chiSquare.dof);
      expect(Math.abs(chi.statistic - want.chiSquare.statistic)).toBeLessThan(STATISTIC);
      expect(Math.abs(chi.pValue - want.chiSquare.pValue)).toBeLessThan(P_VALUE);
    });
  }
});

describe('drift statistics on hand-checkable cases', () => {
  it('KS of two disjoint samples of 3 is D = 1 with p = 2 / C(6,3) = 0.1', () => {
    const ks = ksTest([1, 2, 3], [4, 5, 6]);
    expect(ks.statistic).toBe(1);
    expect(ks.pValue).toBeCloseTo(0.1, 12);
  });

  it('KS of identical samples is D = 0 with p = 1', () => {
    expect(ksTest([3, 1, 2, 2], [2, 1, 3, 2])).toEqual({ statistic: 0, pValue: 1, method: 'exact' });
  });

  it('KS counts ties once: [1,1,2] vs [1,2,2] differ by 1/3 at x = 1', () => {
    expect(ksTest([1, 1, 2], [1, 2, 2]).statistic).toBeCloseTo(1 / 3, 15);
  });

  it('PSI of a sample against itself is 0; one bin moving entirely is (1−ε)·ln(1/ε) twice', () => {
    const same = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(psi(same, same).value).toBe(0);
    // Two categories; everything moves from "a" to "b".
    const moved = psi(['a', 'a'], ['b', 'b']);
    expect(moved.value).toBeCloseTo(2 * (1 - 1e-4) * Math.log(1 / 1e-4), 12);
    expect(moved.bins).toEqual([
      { label: 'a', reference: 1, current: 0 },
      { label: 'b', reference: 0, current: 1 },
    ]);
  });

  it('PSI bins numbers by the reference quantiles: edges of 1..10 in 2 bins is the median 5.5', () => {
    const result = psi([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [6, 7, 8, 9], { bins: 2 });
    expect(result.bins.map((b) => b.label)).toEqual(['≤ 5.5', '> 5.5']);
    // shares: reference 0.5/0.5, current 0/1 → (1e-4−0.5)·ln(1e-4/0.5) + (1−0.5)·ln(1/0.5)
    expect(result.value).toBeCloseTo((1e-4 - 0.5) * Math.log(1e-4 / 0.5) + 0.5 * Math.log(2), 12);
  });

  it('chi-square of a 2×2 table by hand: [[10, 20], [20, 10]] gives 6.667 with 1 dof', () => {
    const ref = [...Array(10).fill('x'), ...Array(20).fill('y')];
    const cur = [...Array(20).fill('x'), ...Array(10).fill('y')];
    const chi = chiSquareTest(ref, cur);
    // expected 15 everywhere: 4 · 25/15
    expect(chi.statistic).toBeCloseTo(20 / 3, 12);
    expect(chi.dof).toBe(1);
    // P(χ²₁ ≥ x) = erfc(√(x/2)); for x = 20/3, 0.0098232…
    expect(chi.pValue).toBeCloseTo(0.009823274507519, 9);
  });

  it('special functions: Γ(5) = 24, χ²₂ survival is e^(−x/2), Kolmogorov Q(1) = 0.26999967', () => {
    expect(Math.exp(logGamma(5))).toBeCloseTo(24, 10);
    expect(chiSquareSurvival(3, 2)).toBeCloseTo(Math.exp(-1.5), 14);
    expect(chiSquareSurvival(50, 2)).toBeCloseTo(Math.exp(-25), 20);
    expect(kolmogorovSurvival(1)).toBeCloseTo(0.2699996716735, 10);
    expect(kolmogorovSurvival(0.5)).toBeCloseTo(0.9639452436648751, 10);
  });

  it('KS above 10 000 values uses the asymptotic Kolmogorov distribution, as scipy switches method there', () => {
    const a = Array.from({ length: 12_000 }, (_, i) => i / 12_000);
    const b = Array.from({ length: 11_000 }, (_, i) => 0.02 + i / 11_000);
    const ks = ksTest(a, b);
    expect(ks.method).toBe('asymptotic');
    // D is exact; p = Q(√(n₁n₂/(n₁+n₂))·D), checked against Q computed here from its series.
    expect(ks.statistic).toBeCloseTo(0.02, 3);
    const lambda = Math.sqrt((12_000 * 11_000) / 23_000) * ks.statistic;
    expect(ks.pValue).toBeCloseTo(kolmogorovSurvival(lambda), 15);
    expect(ks.pValue).toBeGreaterThan(0.005);
    expect(ks.pValue).toBeLessThan(0.05);
  });

  it('refuses empty or mixed samples with a message naming the sample', () => {
    expect(() => ksTest([], [1])).toThrow(/reference sample is empty/);
    expect(() => psi([1, Number.NaN], [1])).toThrow(/reference sample .*non-finite/);
    expect(() => chiSquareTest(['a'], ['a', 1 as unknown as string])).toThrow(/current sample mixes/);
  });
});
