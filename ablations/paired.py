"""Paired comparisons over seeds: for variants that score the same trained weights another way (test protocols).

    diff, low, high, p, n = paired_t(a, b)          # a, b: (..., seeds), pair i = a[..., i] and b[..., i]
    table = paired_effects(runs, "test_top1_error")  # one row per protocol variant, against its reference

Why paired: a protocol variant and its reference (the same variant at the protocol factor's baseline level) score
the same network of each seed, so most of the seed-to-seed spread is shared; the difference per seed removes it.
Welch's unpaired interval (`ablations.stats.effects`) stays valid for positively correlated pairs but is wider;
the paired t interval of the mean difference is exact for normal differences, at any correlation:
tests/test_paired.py simulates its coverage and false-positive rate at 3, 5 and 10 seeds.

`paired_effects` columns: study, variant, reference, factors (the protocol factors), n_pairs (seeds with both runs
ok), n_seeds (seeds with either), mean, reference_mean, diff (variant - reference), diff_low, diff_high (its
1 - alpha interval), p_value (two-sided paired t), p_adjusted (across the study's paired comparisons), decision
(as `ablations.stats.decide`: better, worse, equivalent, undecided), test, correction, alpha, min_effect, metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import DECISIONS, adjust, decide
from .stats.primitives import paired_t
from .stats.levels import ALPHA

TEST = "paired t over seeds (the same weights, scored two ways)"
COLUMNS = ["study", "variant", "reference", "factors", "n_pairs", "n_seeds", "mean", "reference_mean", "diff",
           "diff_low", "diff_high", "p_value", "p_adjusted", "decision", "test", "correction", "alpha",
           "min_effect", "metric"]


def _pairs(runs: pd.DataFrame) -> list[tuple[str, str, list[str], pd.DataFrame]]:
    """(variant, reference, protocol factors, rows with value/reference per seed) for one study's runs: the
    protocol factors are those whose level differs between runs of one training (`train_id`); each run off their
    baseline levels is paired with the run of its training at those levels."""
    factors = [c for c in runs.columns if c.startswith("level.")]
    if "train_id" not in runs or not factors or runs["train_id"].isna().all():
        return []
    shared = runs.groupby("train_id").filter(lambda g: len(g) > 1)
    varying = [c for c in factors if shared.groupby("train_id")[c].nunique().gt(1).any()]
    base = runs[runs["variant"] == "baseline"]
    if not varying or base.empty:
        return []
    baseline = base.iloc[0][varying]
    at_base = (runs[varying] == baseline.values).all(axis=1)
    refs = runs[at_base].drop_duplicates("train_id").set_index("train_id")
    out = []
    for variant, group in runs[~at_base].groupby("variant", sort=False):
        mine = group[group["train_id"].isin(refs.index)]
        if mine.empty:
            continue
        ref = refs.loc[mine["train_id"]]
        names = ref["variant"].unique()
        if len(names) != 1:  # one variant's seeds must all compare with one reference variant
            continue
        out.append((variant, names[0], [c[len("level."):] for c in varying],
                    pd.DataFrame({"seed": mine["seed"].to_numpy(), "status": mine["status"].to_numpy(),
                                  "ref_status": ref["status"].to_numpy(), "value": mine["_metric"].to_numpy(),
                                  "ref_value": ref["_metric"].to_numpy()})))
    return out


def paired_effects(runs: pd.DataFrame, metric: str, maximize: bool = False, *, alpha: float = ALPHA,
                   correction: str = "holm", min_effect: float | None = None) -> pd.DataFrame:
    """Per study, each protocol variant against its reference, paired by seed (see the module's docstring)."""
    rows = []
    for study, group in runs.groupby("study", sort=False):
        group = group.assign(_metric=pd.to_numeric(group[metric], errors="coerce"))
        found = []
        for variant, reference, factors, pairs in _pairs(group):
            both = (pairs["status"] == "ok") & (pairs["ref_status"] == "ok")
            a = pairs["value"].where(both).to_numpy(dtype=float)
            b = pairs["ref_value"].where(both).to_numpy(dtype=float)
            diff, low, high, p, n = paired_t(a, b, alpha)
            found.append({"study": study, "variant": variant, "reference": reference, "factors": ",".join(factors),
                          "n_pairs": int(n), "n_seeds": len(pairs), "mean": float(np.nanmean(a)) if n else np.nan,
                          "reference_mean": float(np.nanmean(b)) if n else np.nan, "diff": float(diff),
                          "diff_low": float(low), "diff_high": float(high), "p_value": float(p)})
        if not found:
            continue
        p_adj = adjust(np.array([r["p_value"] for r in found]), correction)
        codes = decide([r["diff_low"] for r in found], [r["diff_high"] for r in found], p_adj, maximize,
                       min_effect, alpha)
        for r, pa, code in zip(found, p_adj, codes):
            rows.append({**r, "p_adjusted": float(pa), "decision": DECISIONS[code], "test": TEST,
                         "correction": correction, "alpha": alpha, "min_effect": min_effect, "metric": metric})
    return pd.DataFrame(rows, columns=COLUMNS)


PAIR_COLUMNS = ["study", "variant", "n_pairs", "correlation", "correlation_low", "correlation_high", "sd_variant",
                "sd_baseline", "sd_paired_diff", "variance_ratio"]


def seed_pairs(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """How correlated each variant's seeds are with the baseline's seed of the same number (the default design
    runs every arm on the same seeds): per (study, variant), the pairs with both runs ok, Pearson's correlation
    with its 95% Fisher-z interval, each arm's sd, the sd of the per-seed differences, and variance_ratio = the
    variance of a paired difference over the sum of the two variances (below 1: pairing removes spread; the
    paired t also gives up n - 1 of its degrees of freedom, which is what docs/statistics.md section 6 weighs)."""
    rows = []
    ok = runs[runs["status"] == "ok"]
    for study, group in ok.groupby("study", sort=False):
        wide = group.pivot_table(index="seed", columns="variant", values=metric, aggfunc="first")
        if "baseline" not in wide:
            continue
        for variant in [c for c in wide.columns if c != "baseline"]:
            both = wide[["baseline", variant]].dropna()
            n = len(both)
            v, b = both[variant].to_numpy(float), both["baseline"].to_numpy(float)
            r = float(np.corrcoef(v, b)[0, 1]) if n > 2 and v.std() > 0 and b.std() > 0 else float("nan")
            half = 1.96 / np.sqrt(n - 3) if n > 3 else float("inf")
            with np.errstate(divide="ignore", invalid="ignore"):
                low, high = np.tanh(np.arctanh(r) - half), np.tanh(np.arctanh(r) + half)
            sv, sb, sd = (float(np.std(x, ddof=1)) if n > 1 else float("nan") for x in (v, b, v - b))
            rows.append({"study": study, "variant": variant, "n_pairs": n, "correlation": r,
                         "correlation_low": float(low), "correlation_high": float(high), "sd_variant": sv,
                         "sd_baseline": sb, "sd_paired_diff": sd, "variance_ratio": sd ** 2 / (sv ** 2 + sb ** 2)})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)
