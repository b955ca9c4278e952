"""Statistics over seeds: pure functions on tidy frames, seeded, no plotting.

`summarize(runs, metric)`: one row per (study, variant):
    n (all runs), n_ok, n_failed, n_diverged, mean, std, median, ci_low, ci_high, ci_method
    over the runs that finished (`n_ok` of `n`); failed and diverged runs are counted, never dropped silently.
`effects(runs, metric, maximize)`: adds, per non-baseline variant, diff (variant mean - baseline mean),
    diff_low, diff_high (95% interval) and p_better, the probability that the variant beats the baseline
    (bootstrap: share of resamples where it does; t: from the Welch t distribution).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
RESAMPLES = 10_000
METHODS = ("bootstrap", "t")


def bootstrap_means(values: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`."""
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[idx].mean(axis=1)


def mean_interval(values, method: str = "bootstrap", seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of `values` (NaN for fewer than 2 values)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    if method == "t":
        half = sps.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        return float(v.mean() - half), float(v.mean() + half)
    means = bootstrap_means(v, np.random.default_rng(seed))
    return tuple(float(x) for x in np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]))


def diff_interval(a, b, maximize: bool, method: str = "bootstrap", seed: int = 0) -> tuple[float, float, float]:
    """(low, high, p_better) for mean(a) - mean(b): a 95% interval and the probability that a beats b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan"), float("nan")
    sign = 1 if maximize else -1
    if method == "t":
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = np.sqrt(va + vb)
        d = a.mean() - b.mean()
        if se == 0:
            return float(d), float(d), float(0.5 if d == 0 else (sign * d > 0))
        dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
        half = sps.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
        return float(d - half), float(d + half), float(sps.t.cdf(sign * d / se, dof))
    rng = np.random.default_rng(seed)
    diffs = bootstrap_means(a, rng) - bootstrap_means(b, rng)
    low, high = np.quantile(diffs, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    better = np.mean(sign * diffs > 0) + 0.5 * np.mean(diffs == 0)
    return float(low), float(high), float(better)


def summarize(runs: pd.DataFrame, metric: str, method: str = "bootstrap", seed: int = 0) -> pd.DataFrame:
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")
    rows = []
    for (study, variant), group in runs.groupby(["study", "variant"], sort=False):
        ok = group.loc[group["status"] == "ok", metric].dropna().to_numpy(dtype=float)
        low, high = mean_interval(ok, method, seed)
        rows.append({"study": study, "variant": variant, "n": len(group), "n_ok": len(ok),
                     "n_failed": int((group["status"] == "failed").sum()),
                     "n_diverged": int((group["status"] == "diverged").sum()),
                     "mean": float(ok.mean()) if len(ok) else float("nan"),
                     "std": float(ok.std(ddof=1)) if len(ok) > 1 else float("nan"),
                     "median": float(np.median(ok)) if len(ok) else float("nan"),
                     "ci_low": low, "ci_high": high, "ci_method": _method_label(method, seed)})
    return pd.DataFrame(rows)


def effects(runs: pd.DataFrame, metric: str, maximize: bool = False, method: str = "bootstrap",
            seed: int = 0) -> pd.DataFrame:
    """`summarize` plus each variant's difference to its study's baseline, ranked best first."""
    table = summarize(runs, metric, method, seed)
    extra = []
    for _, row in table.iterrows():
        in_study = runs[runs["study"] == row["study"]]
        base = in_study.loc[(in_study["variant"] == "baseline") & (in_study["status"] == "ok"), metric].dropna()
        this = in_study.loc[(in_study["variant"] == row["variant"]) & (in_study["status"] == "ok"), metric].dropna()
        if row["variant"] == "baseline" or base.empty or this.empty:
            extra.append({"diff": 0.0 if row["variant"] == "baseline" else float("nan"),
                          "diff_low": float("nan"), "diff_high": float("nan"), "p_better": float("nan")})
            continue
        low, high, p = diff_interval(this.to_numpy(), base.to_numpy(), maximize, method, seed)
        extra.append({"diff": float(this.mean() - base.mean()), "diff_low": low, "diff_high": high, "p_better": p})
    out = pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1)
    out["metric"] = metric
    order = out["mean"] * (-1 if maximize else 1)
    return out.assign(_order=order).sort_values(["study", "_order"], na_position="last").drop(columns="_order") \
        .reset_index(drop=True)


def _method_label(method: str, seed: int) -> str:
    if method == "t":
        return f"{CONFIDENCE:.0%} Student-t interval over seeds"
    return f"{CONFIDENCE:.0%} percentile bootstrap over seeds ({RESAMPLES:,} resamples, seed {seed})"
