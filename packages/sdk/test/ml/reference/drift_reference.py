"""Reference values for the drift statistics of @aiwebtest/runbooks/ml, computed with numpy and scipy.

Run from this folder:  python3 drift_reference.py
It writes samples.json (fixed samples, drawn once from seeded generators) and expected.json (what numpy and
scipy say about them). test/ml/statistics.test.ts checks the TypeScript functions against expected.json.

PSI, as src/ml/drift/statistics.ts defines it:
  numeric samples: edges = np.quantile(reference, k/bins) for k = 1..bins-1 (numpy's default linear method),
  duplicates removed (np.unique); bin of x = np.searchsorted(edges, x, side='left'), i.e. bins (e[i-1], e[i]];
  categorical samples: one bin per category of the union of both samples;
  share = count / sample size, floored at epsilon = 1e-4; PSI = sum((cur - ref) * ln(cur / ref)).
KS: scipy.stats.ks_2samp(reference, current) (two-sided, method='auto': exact for samples of <= 10 000).
Chi-square: scipy.stats.chi2_contingency([ref_counts, cur_counts], correction=False) over the sorted union of
categories.
"""

import json
from pathlib import Path

import numpy as np
from scipy import stats

EPSILON = 1e-4
BINS = 10
HERE = Path(__file__).parent


def psi_numeric(reference, current, bins=BINS, epsilon=EPSILON):
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    return psi_from_counts(ref_counts, cur_counts, len(reference), len(current), epsilon)


def psi_categorical(reference, current, epsilon=EPSILON):
    categories = sorted(set(reference) | set(current))
    ref_counts = np.array([reference.count(c) for c in categories])
    cur_counts = np.array([current.count(c) for c in categories])
    return psi_from_counts(ref_counts, cur_counts, len(reference), len(current), epsilon)


def psi_from_counts(ref_counts, cur_counts, n_ref, n_cur, epsilon):
    ref = np.maximum(ref_counts / n_ref, epsilon)
    cur = np.maximum(cur_counts / n_cur, epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi_square(reference, current):
    categories = sorted(set(reference) | set(current))
    table = [[reference.count(c) for c in categories], [current.count(c) for c in categories]]
    if len(categories) == 1:
        return {"statistic": 0.0, "dof": 0, "pValue": 1.0}
    result = stats.chi2_contingency(table, correction=False)
    return {"statistic": float(result.statistic), "dof": int(result.dof), "pValue": float(result.pvalue)}


def samples():
    rng = np.random.default_rng(20261128)
    r = lambda xs: [round(float(x), 6) for x in xs]  # noqa: E731 - short numbers keep the JSON readable
    numeric = {
        "normal-shifted": (r(rng.normal(0, 1, 500)), r(rng.normal(0.3, 1.2, 400))),
        "normal-same-equal-sizes": (r(rng.normal(5, 2, 300)), r(rng.normal(5, 2, 300))),
        "integers-with-ties": (
            [int(x) for x in rng.poisson(4, 200)],
            [int(x) for x in rng.poisson(5, 250)],
        ),
        "lognormal-large": (r(rng.lognormal(0, 0.5, 2000)), r(rng.lognormal(0.05, 0.5, 1500))),
        "small-hand-sized": ([1, 2, 3, 4, 5, 6, 7, 8], [5, 6, 7, 8, 9, 10, 11]),
    }
    categories = ["chrome", "firefox", "safari", "edge"]
    categorical = {
        "browsers-shifted": (
            list(rng.choice(categories[:3], 400, p=[0.6, 0.3, 0.1])),
            list(rng.choice(categories, 300, p=[0.4, 0.3, 0.1, 0.2])),
        ),
        "browsers-same": (
            list(rng.choice(categories, 500, p=[0.5, 0.2, 0.2, 0.1])),
            list(rng.choice(categories, 450, p=[0.5, 0.2, 0.2, 0.1])),
        ),
        "one-category": (["a"] * 10, ["a"] * 7),
    }
    return {
        "numeric": {k: {"reference": a, "current": b} for k, (a, b) in numeric.items()},
        "categorical": {k: {"reference": [str(x) for x in a], "current": [str(x) for x in b]} for k, (a, b) in categorical.items()},
    }


def main():
    data = samples()
    expected = {"epsilon": EPSILON, "bins": BINS, "numeric": {}, "categorical": {}}
    for name, s in data["numeric"].items():
        ks = stats.ks_2samp(s["reference"], s["current"])
        expected["numeric"][name] = {
            "psi": psi_numeric(s["reference"], s["current"]),
            "ks": {"statistic": float(ks.statistic), "pValue": float(ks.pvalue)},
        }
    for name, s in data["categorical"].items():
        expected["categorical"][name] = {
            "psi": psi_categorical(s["reference"], s["current"]),
            "chiSquare": chi_square(s["reference"], s["current"]),
        }
    (HERE / "samples.json").write_text(json.dumps(data) + "\n")
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
