"""Numbers as people read them in benchmark tables: binary bytes, FLOP/s with SI prefixes, ratios as x, seconds
with a unit, intervals in brackets; never scientific notation. Pure functions of one value (NaN -> an em dash)."""

from __future__ import annotations

import math

DASH = "—"


def _missing(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _sig(value: float, digits: int = 3) -> str:
    """`digits` significant figures, fixed-point (4 significant figures would print 1234.5 as 1234 or 1235)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def bytes_h(value) -> str:
    """1536 -> '1.5 KiB', 3.2e9 -> '2.98 GiB'."""
    if _missing(value):
        return DASH
    value = float(value)
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(value) >= scale:
            return f"{_sig(value / scale)} {unit}"
    return f"{value:.0f} B"


def flops_h(value, per_second: bool = True) -> str:
    """3.29e11 -> '329 GFLOP/s'; 7.6e9 FLOPs with per_second=False -> '7.6 GFLOP'."""
    if _missing(value):
        return DASH
    unit = "FLOP/s" if per_second else "FLOP"
    value = float(value)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{_sig(value / scale)} {prefix}{unit}"
    return f"{_sig(value)} {unit}"


def seconds_h(value) -> str:
    """0.0123 -> '12.3 ms', 2.5 -> '2.50 s'."""
    if _missing(value):
        return DASH
    value = float(value)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(value) >= scale:
            return f"{_sig(value / scale)} {unit}"
    return f"{_sig(value / 1e-9)} ns"


def number_h(value, digits: int = 3) -> str:
    """A plain figure (images/s, MFU) with `digits` significant figures and thousands separators."""
    if _missing(value):
        return DASH
    return _sig(float(value), digits)


def ratio_h(value) -> str:
    """1.234 -> '1.23x'."""
    return DASH if _missing(value) else f"{float(value):.2f}x"


def ratio_interval_h(value, low, high) -> str:
    """'1.03x [0.97x, 1.09x]' (the interval left out when unknown)."""
    if _missing(value):
        return DASH
    if _missing(low) or _missing(high):
        return ratio_h(value)
    return f"{float(value):.2f}x [{float(low):.2f}x, {float(high):.2f}x]"


def percent_h(value) -> str:
    """0.0215 -> '2.2%'; below 0.1%, two significant figures (a bf16 case on a CPU without bf16 units: 2.26e-05
    -> '0.0023%', not '0.0%')."""
    if _missing(value):
        return DASH
    percent = 100 * float(value)
    return f"{_sig(percent, 2)}%" if 0 < abs(percent) < 0.1 else f"{percent:.1f}%"
