"""The distribution-free interval of a median, from the order statistics of the rounds.

Step times on a shared machine are skewed and have outliers, so a normal-theory interval would be too narrow where
it matters; the ranks below bracket the population median with binomial coverage whatever the distribution is,
for i.i.d. rounds. Pure functions, so vggcore's measurements (the per-layer profile) and the benchmark's adaptive
sampling (`bench/sampling.py`) share one rule.

    >>> median_interval([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])
    (1.0, 6.0)
"""

from __future__ import annotations

import math
from typing import Iterable

CONFIDENCE = 0.95
# 6 is the smallest sample whose min..max brackets the median with >= 95% confidence (1 - 2/2^6 = 96.9%).
MIN_ROUNDS_95 = 6


def median_rank_interval(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """0-based ranks (lo, hi) of the sorted sample bracketing the median with at least `confidence`, and the
    exact coverage; for n < 6 the widest one (min..max), whose coverage is below 95%."""
    if n < 1:
        raise ValueError("median_rank_interval needs at least one value")
    best = (0, n - 1, 1 - 2 * 0.5 ** n)
    for k in range(1, n // 2 + 1):  # interval [x(k), x(n-k+1)] in 1-based ranks
        coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
        if coverage < confidence:
            break
        best = (k - 1, n - k, coverage)
    return best


def median_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free interval of the population median from i.i.d. values."""
    ordered = sorted(values)
    lo, hi, _ = median_rank_interval(len(ordered), confidence)
    return ordered[lo], ordered[hi]
