"""The one copy of the elementary tests every statistic here builds on: pure, vectorised, NaN for "absent".

    n, mean, var = nan_moments(values)                  # values (..., seeds), NaN absent
    low, high = t_interval(mean, var, n)                # Student-t interval of a mean
    diff, low, high, p = welch(ma, va, na, mb, vb, nb)  # Welch's t for mean_a - mean_b
    diff, low, high, p, n = paired_t(a, b)              # paired t of a - b over the pairs (last axis)
    low, high = fieller(a, b, paired=True)              # interval of mean(a) / mean(b) - 1 (relative change)
    holm(p), benjamini_hochberg(p), adjust(p, "holm")   # a family's adjusted p-values (NaN left out)
    decide(low, high, p_adjusted, maximize, min_effect) # decision codes, DECISIONS[code]

Arrays in, arrays out, every value in the metric's own units. The modules beside this one (`bounded`, `robust`,
`sequential`, `frames`) import these; none keeps a copy of its own.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .errors import StatsInputError, check_alpha, check_min_effect
from .levels import ALPHA

DECISIONS = ("undecided", "better", "worse", "equivalent")   # codes 0, 1, 2, 3
CORRECTIONS = ("holm", "bh")
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def nan_moments(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, var) over the last axis, NaN left out. values (..., seeds) -> three arrays of shape (...);
    var has ddof 1 and is NaN where n < 2, mean is NaN where n == 0."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    n = ok.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(ok, v, 0.0).sum(-1) / n
        var = np.where(ok, (v - mean[..., None]) ** 2, 0.0).sum(-1) / (n - 1)
    mean = np.where(n > 0, mean, np.nan)
    return n, mean, np.where(n > 1, var, np.nan)


def t_interval(mean, var, n, alpha: float = ALPHA):
    """(low, high) Student-t interval of a mean from its sample mean, variance (ddof 1) and count; arrays of one
    shape, NaN where n < 2."""
    mean, var, n = (np.asarray(x, dtype=float) for x in (mean, var, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        half = sps.t.ppf(1 - alpha / 2, n - 1) * np.sqrt(var / n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def welch(mean_a, var_a, n_a, mean_b, var_b, n_b, alpha: float = ALPHA):
    """(diff, low, high, p) of mean_a - mean_b by Welch's t: interval at 1 - alpha, two-sided p. Arrays of one
    shape; NaN where either side has fewer than 2 values. Two constant samples: zero width, p 1 (equal) or 0."""
    ma, va, na, mb, vb, nb = (np.asarray(x, dtype=float) for x in (mean_a, var_a, n_a, mean_b, var_b, n_b))
    diff = ma - mb
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high, p = satterthwaite(diff, va / na, vb / nb, na - 1, nb - 1, alpha)
    bad = (na < 2) | (nb < 2)
    return diff, np.where(bad, np.nan, low), np.where(bad, np.nan, high), np.where(bad, np.nan, p)


def satterthwaite(diff, se2_a, se2_b, dof_a, dof_b, alpha: float = ALPHA):
    """(low, high, p) of a difference of two independent estimates with squared standard errors se2_a, se2_b
    and degrees of freedom dof_a, dof_b, on Welch-Satterthwaite's pooled dof (Welch's t; Yuen's with trimmed
    parts). Zero standard error: zero width, p 1 when the difference is 0, else 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(se2_a + se2_b)
        dof = (se2_a + se2_b) ** 2 / (se2_a ** 2 / dof_a + se2_b ** 2 / dof_b)
        dof = np.where(se > 0, dof, 1.0)
        half = sps.t.ppf(1 - alpha / 2, dof) * se
        p = 2 * sps.t.sf(np.abs(diff) / se, dof)
    p = np.where(se > 0, p, np.where(diff == 0, 1.0, 0.0))
    return diff - half, diff + half, p


def paired_t(a, b, alpha: float = ALPHA, min_var=0.0):
    """(mean diff, low, high, p, n) of a - b paired along the last axis; a pair with a NaN on either side is left
    out. Arrays ok (leading axes are independent comparisons). NaN where fewer than 2 pairs remain; identical
    differences give a zero-width interval and p 1 (all zero) or 0. min_var (broadcast against the leading axes):
    the least variance of a difference the data can carry (the metric's grid, `robust.grid_step`); the
    differences' sample variance is raised to it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    ok = ~np.isnan(d)
    n = ok.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(ok, d, 0).sum(axis=-1) / n
        var = np.where(ok, (d - mean[..., None]) ** 2, 0).sum(axis=-1) / (n - 1)
        var = np.maximum(var, min_var)
        se = np.sqrt(var / n)
        half = sps.t.ppf(1 - alpha / 2, n - 1) * se
        p = 2 * sps.t.sf(np.abs(mean) / se, n - 1)
    p = np.where(se > 0, p, np.where(mean == 0, 1.0, 0.0))
    few = n < 2
    nan = np.full(np.shape(mean), np.nan)
    return (np.where(n > 0, mean, nan), np.where(few, nan, mean - half), np.where(few, nan, mean + half),
            np.where(few, nan, p), n)


def fieller(a, b, alpha: float = ALPHA, paired: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) Fieller interval at 1 - alpha of mean(a) / mean(b) - 1, the relative change of a against b:
    the set of r with (mean_a - (1 + r) mean_b)^2 <= t^2 Var(mean_a - (1 + r) mean_b). Samples on the last axis,
    NaN absent; independent samples (Welch-Satterthwaite dof at r = 0) or, paired, the pairs with both sides
    (n - 1 dof, their covariance included). (-inf, inf) where mean_b is not clearly away from 0 (the set is then
    unbounded: a ratio to a baseline that may be 0 says nothing); NaN where a side has fewer than 2 values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        both = ~np.isnan(a) & ~np.isnan(b)
        a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
    na, ma, va = nan_moments(a)
    nb, mb, vb = nan_moments(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        if paired:
            cov = np.nansum((a - ma[..., None]) * (b - mb[..., None]), -1) / (na - 1)
            s_aa, s_bb, s_ab, dof = va / na, vb / na, cov / na, na - 1
        else:
            s_aa, s_bb, s_ab = va / na, vb / nb, np.zeros(np.shape(ma))
            dof = (s_aa + s_bb) ** 2 / (s_aa ** 2 / (na - 1) + s_bb ** 2 / (nb - 1))
        t2 = sps.t.ppf(1 - alpha / 2, dof) ** 2
        # (mb^2 - t2 s_bb) q^2 - 2 (ma mb - t2 s_ab) q + (ma^2 - t2 s_aa) <= 0, q = 1 + r
        qa, qb, qc = mb ** 2 - t2 * s_bb, ma * mb - t2 * s_ab, ma ** 2 - t2 * s_aa
        root = np.sqrt(np.maximum(qb ** 2 - qa * qc, 0.0))
        low, high = (qb - root) / qa - 1, (qb + root) / qa - 1
    bounded = qa > 0
    bad = (na < 2) | (nb < 2)
    low = np.where(bad, np.nan, np.where(bounded, low, -np.inf))
    high = np.where(bad, np.nan, np.where(bounded, high, np.inf))
    return low, high


def holm(p, axis: int = -1):
    """Holm's step-down adjustment along `axis` (the family: the variants of one study); NaN entries are left
    out of the family and stay NaN."""
    return _adjust(np.asarray(p, dtype=float), axis, step_down=True)


def benjamini_hochberg(p, axis: int = -1):
    """Benjamini-Hochberg step-up adjustment (false discovery rate) along `axis`; NaN left out."""
    return _adjust(np.asarray(p, dtype=float), axis, step_down=False)


def _adjust(p: np.ndarray, axis: int, step_down: bool) -> np.ndarray:
    p = np.moveaxis(p, axis, -1)
    order = np.argsort(p, axis=-1)            # NaN sort last
    ps = np.take_along_axis(p, order, -1)
    m = np.sum(~np.isnan(p), axis=-1, keepdims=True)
    rank = np.arange(1, p.shape[-1] + 1)
    if step_down:   # Holm: (m - i + 1) p_(i), running maximum
        adj = np.fmax.accumulate(np.minimum((m - rank + 1) * ps, 1.0), axis=-1)
    else:           # BH: m / i * p_(i), running minimum from the largest valid p down
        raw = np.where(np.isnan(ps), np.inf, m / rank * ps)
        adj = np.minimum(np.minimum.accumulate(raw[..., ::-1], axis=-1)[..., ::-1], 1.0)
    adj = np.where(np.isnan(ps), np.nan, adj)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, -1)
    return np.moveaxis(out, -1, axis)


def check_correction(correction: str) -> str:
    if correction not in CORRECTIONS:
        raise StatsInputError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    return correction


def adjust(p, correction: str = "holm", axis: int = -1):
    """`holm` or `benjamini_hochberg` by name."""
    check_correction(correction)
    return holm(p, axis) if correction == "holm" else benjamini_hochberg(p, axis)


def decide(low, high, p_adjusted, maximize: bool, min_effect: float | None, alpha: float = ALPHA,
           bounds: tuple[float, float] | None = None):
    """Decision codes (DECISIONS) per comparison, arrays of one shape -> int array: better/worse when the
    adjusted p is below alpha and the interval lies beyond 0 on that side; equivalent when the interval lies
    inside +/- min_effect; undecided otherwise (an absent interval, NaN, is undecided)."""
    check_alpha(alpha)
    min_effect = check_min_effect(min_effect, bounds)
    low, high, pa = (np.asarray(x, dtype=float) for x in (low, high, p_adjusted))
    reject = pa < alpha
    up, down = reject & (low > 0), reject & (high < 0)
    better, worse = (up, down) if maximize else (down, up)
    code = np.zeros(np.shape(low), dtype=int)
    if min_effect:
        code[(low > -min_effect) & (high < min_effect)] = 3
    code[worse] = 2
    code[better] = 1
    return code
