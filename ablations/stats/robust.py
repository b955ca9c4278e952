"""Comparisons of a variant with its baseline that one seed which did not train cannot dominate.

Pure, vectorised: a sample is the last axis of a float array, shape (..., seeds), NaN for a seed that is absent or
set aside; the leading axes are studies (and variants), so a simulation of 20,000 studies is one call. Values are
in the metric's units (an error rate is a fraction). Every statistic returns (diff, low, high, p): the estimate of
variant minus baseline, its (1 - alpha) interval, and the two-sided p-value of "no difference".

    STATISTICS                         name -> function(variant, baseline, alpha)
    compare(variant, baseline, ok_v, ok_b, statistic=DEFAULT, bounds=(0, 1))   the default comparison

The candidates (docs/statistics.md, section 2, has their simulated figures):
    welch         Welch t on the difference of means, over the seeds given (the statistic before issue 16)
    yuen          Yuen's t on 20%-trimmed means with winsorised variances (no trimming below 5 seeds)
    hodges_lehmann  median of pairwise differences with the Mann-Whitney interval and exact p (with tied
                  values the exact permutation p of the midrank sum). At 3 vs 3 seeds the smallest exact
                  two-sided p is 2/20 = 0.1, and at 4 vs 4 it is 2/70 = 0.029: with Holm over four variants
                  (first step 0.05/4 = 0.0125) a rank test can decide nothing below 5 seeds per arm; its 95%
                  interval at 3 vs 3 is unbounded (cut to the metric's range).
The default, "trained" (DEFAULT): on the seeds that trained (`ablations.stats.failures.did_not_train` on each seed;
the rule never looks at other seeds, so "no difference" keeps its level), Welch t with the interval cut to the
metric's bounds (`ablations.stats.bounded.diff_interval`) while an arm has fewer than RANK_FROM (7) trained seeds, and
the Hodges-Lehmann shift with its exact Mann-Whitney interval from 7 on. Simulated (20,000 studies, four variants,
Holm): family-wise false better/worse 2.2-3.9% at 3, 5 and 10 seeds with and without 10% failed seeds; power for
a +0.02 change (baseline 0.03, sd 0.015) with 10% failed seeds 0.042 / 0.141 / 0.449 at 3 / 5 / 10 seeds, the
most of every candidate (Welch on all seeds: 0.031 / 0.077 / 0.071). Below 7 seeds Welch has more power than the
rank statistic; from 7 on the rank statistic bears a failed seed the rule missed. Figures per candidate:
docs/statistics.md, section 2.
"paired" (PAIRED; `[study] statistic = "paired"`): where the variant's trained seeds are exactly the baseline's
(whole pairs, the default design runs every arm on the same seeds), the mean of the per-seed differences with the
paired t interval and p, the differences' variance at least the metric's grid allows (`paired_floor`: q^2 / 6 for
test errors on a grid of step q = 1 / test images); otherwise, or where equal differences lie on no grid the
values tell, as "trained". `ablations.stats.sequential.look_step` compares a paired t with its own look level
(`sequential.paired_levels`). Not the default: on the
demo's records paired seeds correlated -0.10 to 0.41, and pairing pays in simulation only from about 0.6
(docs/statistics.md, section 6).
The seeds set aside are not lost to the decision: `ablations.stats.sequential.look_step` combines this comparison's
p with a one-sided Fisher test of the variant's rate of seeds that did not train (Bonferroni), and calls a variant
whose seeds fail significantly more often "worse".
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from .bounded import diff_interval
from .errors import StatsInputError, check_alpha, check_bounds
from .primitives import nan_moments, paired_t, satterthwaite, welch
from .levels import ALPHA

TRIM = 0.2


# ------------------------------------------------------------------------------------------------- statistics
def welch_all(variant, baseline, alpha: float = ALPHA):
    """Welch t over every seed given: (diff, low, high, p), shapes (...)."""
    nv, mv, vv = nan_moments(variant)
    nb, mb, vb = nan_moments(baseline)
    return welch(mv, vv, nv, mb, vb, nb, alpha)


def _sorted_with_counts(values):
    v = np.sort(np.asarray(values, dtype=float), axis=-1)   # NaN sort last
    return v, (~np.isnan(v)).sum(-1)


def trimmed_parts(values, trim: float = TRIM):
    """(trimmed mean, d, h) of each sample for Yuen's test: values (..., seeds), NaN absent -> arrays (...).
    g = floor(trim * n) values cut from each end; h = n - 2g kept; d = (n - 1) s_w^2 / (h (h - 1)) with s_w^2 the
    winsorised variance (ddof 1); NaN where h < 2."""
    v, n = _sorted_with_counts(values)
    g = np.floor(trim * n).astype(int)
    h = n - 2 * g
    k = np.arange(v.shape[-1])
    keep = (k >= g[..., None]) & (k < (n - g)[..., None])
    with np.errstate(divide="ignore", invalid="ignore"):
        tmean = np.where(keep, v, 0.0).sum(-1) / h
        lo = np.take_along_axis(v, np.clip(g, 0, v.shape[-1] - 1)[..., None], -1)
        hi = np.take_along_axis(v, np.clip(n - g - 1, 0, v.shape[-1] - 1)[..., None], -1)
        w = np.where(k < n[..., None], np.clip(v, lo, hi), np.nan)
        _, _, wvar = nan_moments(w)
        d = (n - 1) * wvar / (h * (h - 1))
    bad = h < 2
    return np.where(bad, np.nan, tmean), np.where(bad, np.nan, d), h


def yuen(variant, baseline, alpha: float = ALPHA, trim: float = TRIM):
    """Yuen's two-sample t on trimmed means (Welch-type dof): (diff, low, high, p), shapes (...)."""
    ta, da, ha = trimmed_parts(variant, trim)
    tb, db, hb = trimmed_parts(baseline, trim)
    diff = ta - tb
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high, p = satterthwaite(diff, da, db, ha - 1, hb - 1, alpha)
    return diff, low, high, np.where(np.isnan(diff), np.nan, p)


@lru_cache(maxsize=None)
def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n under no difference, U the Mann-Whitney count of (variant > baseline) pairs with
    m variant and n baseline seeds and no ties (exact, by the usual recursion on the largest value)."""
    counts = {(0, j): np.ones(1) for j in range(n + 1)}
    for i in range(1, m + 1):
        counts[(i, 0)] = np.ones(1)
        for j in range(1, n + 1):
            a, b = counts[(i - 1, j)], counts[(i, j - 1)]   # largest value is a variant's (+j pairs) or not
            c = np.zeros(i * j + 1)
            c[j:j + len(a)] += a
            c[:len(b)] += b
            counts[(i, j)] = c
    c = counts[(m, n)]
    return np.cumsum(c) / c.sum()


def hodges_lehmann(variant, baseline, alpha: float = ALPHA):
    """Hodges-Lehmann shift (median of variant - baseline pairwise differences), its Mann-Whitney (1 - alpha)
    interval and two-sided p: (shift, low, high, p), shapes (...). The p is exact with or without ties (with ties,
    the permutation distribution of the midrank sum, `_tied_exact_p`); the interval is the order statistics of the
    pairwise differences at the untied distribution's critical count, exact without ties. An interval the seed
    counts cannot bound is (-inf, inf); NaN where an arm has no seed."""
    check_alpha(alpha)
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    pairs = a[..., :, None] - b[..., None, :]                     # (..., seeds_v, seeds_b)
    pairs = pairs.reshape(*pairs.shape[:-2], -1)
    m, n = (~np.isnan(a)).sum(-1), (~np.isnan(b)).sum(-1)
    d = np.sort(pairs, axis=-1)                                    # NaN last; m*n valid values first
    shift, low, high, p = (np.full(m.shape, np.nan) for _ in range(4))
    u = (pairs > 0).sum(-1) + 0.5 * (pairs == 0).sum(-1)
    ties = _any_cross_ties(a, b)
    for mi, ni in set(zip(m.ravel().tolist(), n.ravel().tolist())):
        if mi == 0 or ni == 0:
            continue
        sel = (m == mi) & (n == ni)
        cdf = u_null_cdf(mi, ni)
        k = int(np.searchsorted(cdf, alpha / 2, side="right"))    # P(U <= k - 1) <= alpha / 2 < P(U <= k)
        ds = d[sel]
        half = mi * ni
        mid = 0.5 * (ds[:, (half - 1) // 2] + ds[:, half // 2])
        shift[sel] = mid
        low[sel] = ds[:, k - 1] if k >= 1 else -np.inf
        high[sel] = ds[:, half - k] if k >= 1 else np.inf
        us = u[sel]
        lo_tail = cdf[np.clip(np.floor(us).astype(int), 0, half)]
        up_tail = 1 - np.concatenate([[0.0], cdf])[np.clip(np.ceil(us).astype(int), 0, half)]
        exact = np.minimum(1.0, 2 * np.minimum(lo_tail, up_tail))
        tied = ties[sel]
        if tied.any():   # only the tied rows pay for the exact count with midranks
            exact[tied] = _tied_exact_p(a[sel][tied], b[sel][tied])
        p[sel] = exact
    return shift, low, high, p


def _any_cross_ties(a, b):
    eq = a[..., :, None] == b[..., None, :]
    return eq.reshape(*eq.shape[:-2], -1).any(-1)


def _tied_exact_p(a, b) -> np.ndarray:
    """Exact two-sided permutation p of the rank sum with midranks, per row (tied rows only): the null
    distribution of the variant's rank sum over every choice of its m seeds among the m + n, by counting subsets
    of the doubled midranks (integers) with each sum. Cheap at these sizes: (m + n) x m x (m + n)^2 cells."""
    out = np.empty(a.shape[0])
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        m = len(x)
        ranks = np.rint(2 * sps.rankdata(np.concatenate([x, y]))).astype(int)   # midranks x 2: integers
        top = int(ranks.sum())
        ways = np.zeros((m + 1, top + 1))   # ways[j, s]: subsets of j seeds whose doubled ranks sum to s
        ways[0, 0] = 1.0
        for r in ranks:
            ways[1:, r:] += ways[:-1, :top + 1 - r].copy()
        dist = ways[m] / ways[m].sum()
        w = int(ranks[:m].sum())
        out[i] = min(1.0, 2 * min(dist[:w + 1].sum(), dist[w:].sum()))
    return out


GRID_DENOMINATOR = 1_000_000   # the largest test split whose grid `grid_step` recognises


def grid_step(values) -> float:
    """The metric's resolution the values tell: 1 / N for the least N <= GRID_DENOMINATOR such that every finite
    value is a whole multiple of 1 / N (a test error of k wrong of N images; the records hold k / N to the last
    bit), else 0 (values off any such grid: a continuous metric). Chance puts a value off a grid within 1e-12 of
    one with a denominator this small in about 1 case of 100; every value of both arms must agree."""
    step = 1
    for x in np.asarray(values, dtype=float).ravel():
        if np.isnan(x):
            continue
        f = Fraction(float(x)).limit_denominator(GRID_DENOMINATOR)
        if abs(float(f) - x) > 1e-12:
            return 0.0
        step = math.lcm(step, f.denominator)
        if step > GRID_DENOMINATOR:
            return 0.0
    return 1.0 / step


def paired_floor(variant, baseline) -> np.ndarray:
    """The least variance a paired difference can carry, per comparison (shape (...)): q^2 / 6 for values on a
    grid of step q (`grid_step` of both arms together), the variance of the difference of two values each
    rounded to the grid (Sheppard: q^2 / 12 each), else 0. Differences of test errors are multiples of 1 / N, so
    at 3 pairs they can be exactly equal (sample variance 0) and at 7 nearly (six of seven equal, variance q^2 /
    7): the floor keeps a paired t from reading more precision than the grid holds. Only comparisons whose
    differences' variance lies below (the largest difference)^2 / 6 are looked at: a nonzero difference on the
    grid is at least q, so the floor cannot bind elsewhere."""
    v, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    d = v - b
    _, _, var = nan_moments(d)
    top = np.nanmax(np.where(np.isnan(d), 0.0, np.abs(d)), axis=-1, initial=0.0)
    floor = np.zeros(np.shape(var))
    for i in np.argwhere(np.atleast_1d(var <= top ** 2 / 6)):
        at = tuple(i)[:var.ndim]
        floor[at] = grid_step(np.concatenate([v[at], b[at]])) ** 2 / 6
    return floor


STATISTICS = {"welch": welch_all, "yuen": yuen, "hodges_lehmann": hodges_lehmann}
DEFAULT = "trained"
PAIRED = "paired"
TRAINED_ONLY = ("trained", "welch_trained", PAIRED)   # statistics that set the seeds that did not train aside
RANK_FROM = 7   # the default uses the rank statistic once both arms have this many trained seeds
PAIRED_FROM = 2   # "paired" uses the paired t from this many whole pairs
LABELS = {
    "trained": (f"on the seeds that trained: Welch t (interval cut to the metric's bounds) while an arm has fewer "
                f"than {RANK_FROM}, else the Hodges-Lehmann shift with its exact Mann-Whitney interval"),
    "welch_trained": "Welch t on the seeds that trained, interval cut to the metric's bounds",
    "welch": "Welch t on every finished seed",
    "yuen": "Yuen t on 20%-trimmed means",
    "hodges_lehmann": "Hodges-Lehmann shift with the exact Mann-Whitney interval",
    PAIRED: ("on the seeds that trained, paired by seed: the mean of the per-seed differences with the paired t "
             "interval while the variant and the baseline have the same trained seeds; where a pair is broken (a "
             "seed failed, diverged, did not train or is missing on one side) or every difference is the same off "
             "any grid the values tell, as 'trained'; the differences' variance at least the metric's grid allows; "
             "each look's level the paired t's own"),
}


# What the `diff` of each method estimates, in words (Comparison.method -> the row's estimand)
ESTIMANDS = {"welch_trained": "difference of means", "welch": "difference of means",
             "hodges_lehmann": "Hodges-Lehmann shift", "paired_t": "mean of paired differences",
             "yuen": "difference of 20%-trimmed means", "bootstrap": "difference of means"}


class Comparison(NamedTuple):
    """One comparison per element of the leading axes; every field an array of shape (...)."""
    diff: np.ndarray      # variant - baseline: difference of means (Welch) or Hodges-Lehmann shift, metric units
    low: np.ndarray       # (1 - alpha) interval, metric units
    high: np.ndarray
    p: np.ndarray         # two-sided p of "no difference"
    method: np.ndarray    # str: which statistic made this element ("welch_trained", "hodges_lehmann", ...)


def compare(variant, baseline, ok_variant=None, ok_baseline=None, statistic: str = DEFAULT,
            bounds: tuple[float, float] | None = (0.0, 1.0), alpha: float = ALPHA,
            rank_from: int = RANK_FROM) -> Comparison:
    """Variant vs baseline by `statistic` (see LABELS): a Comparison of arrays of shape (...).

    variant, baseline: (..., seeds) in metric units, NaN absent (the seed counts may differ); ok_variant,
    ok_baseline: bool masks of the same shapes, True where the seed trained (`ablations.stats.failures.did_not_train`
    negated; None: all trained). "trained" and "welch_trained" set the other seeds aside; "welch", "yuen" and
    "hodges_lehmann" use every seed given. "trained" picks Welch or the rank statistic per element from the
    trained seed counts alone, which under "no difference" are independent of the values: the level holds.
    Intervals lie within [lo - hi, hi - lo] for a bounded metric; Welch's also within what the means allow."""
    check_alpha(alpha)
    bounds = check_bounds(bounds)
    if statistic not in LABELS:
        raise StatsInputError(f"unknown statistic {statistic!r}; choose one of {', '.join(LABELS)}")
    v, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    if statistic in TRAINED_ONLY:
        if ok_variant is not None:
            v = np.where(ok_variant, v, np.nan)
        if ok_baseline is not None:
            b = np.where(ok_baseline, b, np.nan)
    lead = np.broadcast_shapes(v.shape[:-1], b.shape[:-1])   # the seed axes may differ in length
    v, b = np.broadcast_to(v, lead + v.shape[-1:]), np.broadcast_to(b, lead + b.shape[-1:])
    if statistic in TRAINED_ONLY:
        out = diff_interval(v, b, bounds, alpha)
        method = np.full(np.shape(out[0]), "welch_trained", dtype=object)
        if statistic in ("trained", PAIRED):
            rank = np.minimum((~np.isnan(v)).sum(-1), (~np.isnan(b)).sum(-1)) >= rank_from
            if rank.any():
                hl = hodges_lehmann(v[rank], b[rank], alpha)
                out = tuple(np.array(x, dtype=float) for x in out)
                for x, y in zip(out, hl):
                    x[rank] = y
                method[rank] = "hodges_lehmann"
        if statistic == PAIRED and v.shape[-1] == b.shape[-1]:
            both = ~np.isnan(v)
            pairs = (both == ~np.isnan(b)).all(-1) & (both.sum(-1) >= PAIRED_FROM)   # the same trained seeds
            floor = paired_floor(v, b)
            # differences that are all equal off any grid the values tell carry no estimate of their spread: a
            # paired t would say p 0 with a zero-width interval
            _, scale, _ = nan_moments(np.abs(v) + np.abs(b))
            _, _, spread = nan_moments(v - b)
            pairs &= (np.sqrt(np.maximum(spread, floor)) > 1e-9 * scale)
            if pairs.any():
                paired = paired_t(v[pairs], b[pairs], alpha, floor[pairs])[:4]
                out = tuple(np.array(x, dtype=float) for x in out)
                for x, y in zip(out, paired):
                    x[pairs] = y
                method[pairs] = "paired_t"
    else:
        out = STATISTICS[statistic](v, b, alpha)
        method = np.full(np.shape(out[0]), statistic, dtype=object)
    diff, low, high, p = out
    if bounds is not None:
        span = bounds[1] - bounds[0]
        low, high = np.clip(low, -span, span), np.clip(high, -span, span)
    return Comparison(diff, low, high, p, method)
