"""The one error the statistics modules raise for bad input, and the checks that raise it.

`StatsInputError` is a `vggcore.errors.UserError` (the command lines print it on one line and exit 2) and a
`ValueError` (what a Python caller of a numeric function expects). Every message names the value and what is
allowed. Only bad input raises: NaN inside a sample is the documented "absent seed" marker, never an error.
"""

from __future__ import annotations

import math
import numbers

from vggcore.errors import UserError


class StatsInputError(UserError, ValueError):
    """An argument of a statistics function is outside what the function is defined for."""


def _number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def check_alpha(alpha) -> float:
    if not (_number(alpha) and 0 < alpha < 1):
        raise StatsInputError(f"alpha must be a number between 0 and 1 (exclusive), got {alpha!r}")
    return float(alpha)


def check_bounds(bounds):
    """None (unbounded) or (low, high) finite numbers with low < high."""
    if bounds is None:
        return None
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise StatsInputError(f"bounds must be None (unbounded) or a pair (low, high), got {bounds!r}") from None
    if not (_number(lo) and _number(hi) and lo < hi):
        raise StatsInputError(f"bounds must be finite numbers with low < high, got {bounds!r}")
    return float(lo), float(hi)


def check_min_effect(min_effect, bounds=None, metric: str = "the metric"):
    """None (no equivalence margin) or a number in (0, high - low]; 0 is allowed and means no margin too."""
    if min_effect is None:
        return None
    if not _number(min_effect) or min_effect < 0:
        raise StatsInputError(f"min_effect must be a non-negative finite number in {metric}'s units, "
                              f"got {min_effect!r}")
    bounds = check_bounds(bounds)
    if bounds is not None and min_effect > bounds[1] - bounds[0]:
        raise StatsInputError(f"min_effect {min_effect!r} is larger than {metric}'s whole range "
                              f"[{bounds[0]:g}, {bounds[1]:g}]; give at most {bounds[1] - bounds[0]:g}")
    return float(min_effect)


def check_rate(rate, name: str) -> float:
    if not (_number(rate) and 0 <= rate < 1):
        raise StatsInputError(f"{name} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_count(n, name: str, least: int) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < least:
        raise StatsInputError(f"{name} must be a whole number of at least {least}, got {n!r}")
    return int(n)
