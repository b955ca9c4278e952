"""Intervals that stay inside a metric's bounds: pure, vectorised over a leading "studies" axis.

Arrays in, arrays out. A sample is the last axis of a float array, shape (..., seeds); NaN marks a seed that is
absent or set aside (for example one that did not train, see `ablations.stats.failures`), so arms of different sizes
share one array. Every value is in the metric's own units (an error rate is a fraction in [0, 1], not percent).

    bounds, label = metric_bounds("test_top1_error")          # (0.0, 1.0), "bounded in [0, 1] ..."
    mean, low, high = mean_interval(values, bounds)             # values (studies, seeds)
    diff, low, high, p = diff_interval(variant, baseline, bounds)

Why these (docs/statistics.md, section 1; tests/test_robust_stats.py). Simulated beta-distributed error rates
(mean 0.01-0.05, seed sd 0.005-0.015, 20,000 studies) at 3, 5 and 10 seeds:
- the Student-t interval of a mean went below 0 in 52% of studies at 3 seeds (mean 0.03) and covered 93.1-94.7%:
  its misses are nearly all on the high side (5-5.7% above, 1% below), the skew of an error rate near 0.
- a t interval on the logit scale, mapped back, covered 95% at 3 seeds but 92% at 10 (it is an interval for the
  logit-scale mean, not the mean, and that gap does not shrink with seeds); Cox's log-scale interval covered
  95-96% but was 1.5-3x as wide at 3 seeds; a skewness-corrected (Johnson) t gained under 0.005.
- the union of the two, the cut t and the logit t, covered 94.2-95.6% (93.4% at sd 0.02, a coefficient of
  variation of 0.67), about 1.6x as wide as the t at 3 seeds and 1.05-1.1x at 5-10. It covers whenever either
  does and each part stays inside the bounds: that is `mean_interval`.
- Welch's difference interval intersected with what the two mean intervals allow, [low_v - high_b,
  high_v - low_b], covered as Welch does (to 0.002), 95.3-96.9%; a MOVER interval built from the two mean
  intervals stayed in bounds too but covered 96.4-98.9%, wider than it need be. That is `diff_interval`.
A metric with no known bounds (`test_loss`, `train_seconds`) keeps the plain Student-t / Welch intervals, and the
label says so.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .errors import StatsInputError, check_alpha, check_bounds
from .primitives import nan_moments, t_interval, welch
from .levels import ALPHA

UNIT_BOUNDS = (0.0, 1.0)
# Names whose values are fractions in [0, 1] in every record the project writes (vggcore.train.loop `final`).
BOUNDED_METRICS = {"test_top1_error": UNIT_BOUNDS, "test_top5_error": UNIT_BOUNDS, "val_top1_error": UNIT_BOUNDS,
                   "val_top5_error": UNIT_BOUNDS, "train_top1_error": UNIT_BOUNDS}
# A metric named like these is a fraction too, even if it is not listed above.
BOUNDED_SUFFIXES = ("_error", "_accuracy", "_acc")


def metric_bounds(metric: str) -> tuple[tuple[float, float] | None, str]:
    """(bounds, label) of a metric by name. bounds is (low, high) in the metric's units, or None for a metric
    with no known bounds; the label says which, for the report's "how the intervals were made" line."""
    bounds = BOUNDED_METRICS.get(metric)
    if bounds is None and metric.endswith(BOUNDED_SUFFIXES):
        bounds = UNIT_BOUNDS
    return bounds, interval_label(bounds, metric)


EDGE = 1e-4  # for the logit part only, values within EDGE x (high - low) of a bound are moved that far inside


def interval_label(bounds: tuple[float, float] | None, metric: str = "the metric", alpha: float = ALPHA,
                   level_text: str | None = None) -> str:
    """How the intervals of `metric` are made, in words; `level_text` replaces the "95%" (e.g. "1 - alpha" where
    the looks of a study have levels of their own)."""
    level = level_text or f"{(1 - alpha) * 100:.4g}%"
    if bounds is None:
        return (f"{metric} has no known bounds: treated as unbounded, plain {level} Student-t intervals of means "
                "and Welch intervals of differences")
    lo, hi = bounds
    return (f"{metric} is bounded in [{lo:g}, {hi:g}]: {level} interval of each mean = the union of the "
            f"Student-t interval cut to [{lo:g}, {hi:g}] and the t interval on the logit scale; Welch interval of "
            f"each difference cut to what the two mean intervals allow (low_v - high_b, high_v - low_b)")


def bounded_t_interval(values, bounds: tuple[float, float], alpha: float = ALPHA):
    """(low, high): union of the cut Student-t interval and the logit-scale t interval of each sample's mean;
    values (..., seeds) inside `bounds`, NaN absent -> arrays (...), NaN where fewer than 2 seeds."""
    lo, hi = bounds
    n, mean, var = nan_moments(values)
    low, high = (np.clip(x, lo, hi) for x in t_interval(mean, var, n, alpha))
    span = hi - lo
    z = np.clip((np.asarray(values, dtype=float) - lo) / span, EDGE, 1 - EDGE)
    _, zmean, zvar = nan_moments(np.log(z / (1 - z)))
    zlow, zhigh = t_interval(zmean, zvar, n, alpha)
    glow, ghigh = (lo + span * special.expit(x) for x in (zlow, zhigh))
    return np.fmin(low, glow), np.fmax(high, ghigh)


def mean_interval(values, bounds: tuple[float, float] | None = UNIT_BOUNDS, alpha: float = ALPHA):
    """(mean, low, high) of each sample: values (..., seeds) with NaN for absent seeds -> three arrays (...).

    Bounded metric: `bounded_t_interval` (always inside `bounds`). None: unbounded, the plain (1 - alpha)
    Student-t interval. NaN where fewer than 2 seeds."""
    check_alpha(alpha)
    bounds = check_bounds(bounds)
    n, mean, var = nan_moments(values)
    if bounds is None:
        low, high = t_interval(mean, var, n, alpha)
    else:
        _check_inside(values, bounds)
        low, high = bounded_t_interval(values, bounds, alpha)
    return mean, low, high


def _check_inside(values, bounds):
    v = np.asarray(values, dtype=float)
    bad = (v < bounds[0]) | (v > bounds[1])
    if np.any(bad):
        raise StatsInputError(f"value {v[bad].ravel()[0]!r} is outside the metric's bounds "
                              f"[{bounds[0]:g}, {bounds[1]:g}]; give bounds=None for an unbounded metric")


def diff_interval(variant, baseline, bounds: tuple[float, float] | None = UNIT_BOUNDS, alpha: float = ALPHA):
    """(diff, low, high, p) of mean(variant) - mean(baseline); variant and baseline (..., seeds) with NaN for
    absent seeds (the seed counts may differ) -> four arrays (...).

    Welch's (1 - alpha) interval and two-sided p. With `bounds` (lo, hi) the interval is cut to
    [low_v - high_b, high_v - low_b] from the two cut mean intervals at the same level, so it lies within
    [lo - hi, hi - lo] and never claims a change the two means cannot make (an error rate of 0.03 cannot fall by
    0.4). The cut interval still holds the point estimate (each mean interval holds its mean, so
    low_v - high_b <= diff <= high_v - low_b). p is Welch's, uncut; a cut can lift the low end above 0 only
    when the variant's mean interval lies wholly above the baseline's, which Welch's p then also calls (well
    below alpha)."""
    check_alpha(alpha)
    check_bounds(bounds)
    nv, mv, vv = nan_moments(variant)
    nb, mb, vb = nan_moments(baseline)
    diff, low, high, p = welch(mv, vv, nv, mb, vb, nb, alpha)
    if bounds is not None:
        _check_inside(variant, bounds)
        _check_inside(baseline, bounds)
        lv, hv = bounded_t_interval(variant, bounds, alpha)
        lb, hb = bounded_t_interval(baseline, bounds, alpha)
        low, high = np.maximum(low, lv - hb), np.minimum(high, hv - lb)
    return diff, low, high, p
