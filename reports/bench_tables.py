"""Benchmark tables for people: the fastest setting with its speed-up over plain fp32 (and that ratio's interval),
and the per-case table in readable units with unstable cases marked. Pure functions of the tidy bench frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .compare import _within_var, ratio_interval
from .format import bytes_h, flops_h, number_h, percent_h, ratio_interval_h, seconds_h

SETTING = ["device", "dtype", "channels_last", "compiled", "implementation", "batch_size"]


def setting_label(row) -> str:
    # `== True`, not `is True`: a row taken out of a frame holds numpy bools (and NaN for older files)
    parts = [str(row["dtype"]), "channels_last" if row.get("channels_last") == True else "",  # noqa: E712
             "compiled" if row.get("compiled") == True else "",  # noqa: E712
             f"b{row['batch_size']}", str(row["implementation"])]
    return " ".join(p for p in parts if p)


def _is_plain(frame: pd.DataFrame) -> pd.Series:
    return ((frame["dtype"] == "fp32") & (frame["channels_last"] != True) & (frame["compiled"] != True))  # noqa: E712


def fastest_with_speedup(bench: pd.DataFrame) -> pd.DataFrame:
    """Per architecture and mode: the setting with the most images/s, and its speed-up over plain fp32 (same
    device, batch size and implementation) as a ratio of median step times with a 95% interval (within-run
    rounds plus the between-run noise model of `reports.compare`, since the two cases were not interleaved)."""
    ok = bench.dropna(subset=["images_per_s"])
    rows = []
    for (arch, mode), g in ok.groupby(["arch", "mode"], sort=True):
        best = g.loc[g["images_per_s"].idxmax()]
        same = [c for c in ("batch_size", "device", "implementation", "image_size", "width") if c in g]
        match = (g[same] == best[same]) | (g[same].isna() & best[same].isna())  # a field older files lack
        plain = g[_is_plain(g) & match.all(axis=1)]
        if "file" in plain:  # the plain case of the same run first: no between-run drift in the ratio
            plain = plain.iloc[(plain["file"] != best["file"]).to_numpy().argsort(kind="stable")]
        speedup = low = high = float("nan")
        if _is_plain(best.to_frame().T).iloc[0]:
            speedup = 1.0  # the fastest setting is plain fp32 itself: no other setting beat it
        elif not plain.empty:
            p = plain.iloc[0]
            r, lo, hi, _ = ratio_interval([math.log(best["median"])], [_within_var(best)],
                                          [math.log(p["median"])], [_within_var(p)])
            speedup, low, high = r, lo, hi  # plain time / best time: > 1 = the setting is faster
        rows.append({"arch": arch, "mode": mode, "setting": setting_label(best), "device": best["device"],
                     "images_per_s": best["images_per_s"], "speedup_vs_fp32": speedup, "speedup_low": low,
                     "speedup_high": high, "mfu": best.get("mfu"), "peak_memory_bytes": best.get("peak_memory_bytes"),
                     "unstable": bool(best.get("unstable") is True)})
    return pd.DataFrame(rows)


def fastest_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "arch": table["arch"], "mode": table["mode"],
        "fastest setting": [s + (" (unstable)" if u else "") for s, u in zip(table["setting"], table["unstable"])],
        "images/s": table["images_per_s"].map(number_h),
        "speed-up over plain fp32 [95%]": [("1.00x (it is plain fp32)" if r == 1.0 and lo != lo else
                                            ratio_interval_h(r, lo, hi)) if r == r else "— (no plain fp32 case)"
                                           for r, lo, hi in zip(table["speedup_vs_fp32"], table["speedup_low"],
                                                                table["speedup_high"])],
        "MFU": table["mfu"].map(percent_h), "peak memory": table["peak_memory_bytes"].map(bytes_h)})


def cases_display(bench: pd.DataFrame) -> pd.DataFrame:
    """Every case in units people read; the median step with its 95% interval; unstable cases marked."""
    data = bench.sort_values(["arch", "mode", "dtype", "batch_size", "implementation"])
    get = lambda col: data[col] if col in data else pd.Series(np.nan, index=data.index)  # noqa: E731
    unstable = get("unstable").eq(True)  # missing (older files) counts as stable
    step = [f"{seconds_h(m)} [{seconds_h(lo)}, {seconds_h(hi)}]" if lo == lo else seconds_h(m)
            for m, lo, hi in zip(get("median"), get("median_low"), get("median_high"))]
    return pd.DataFrame({
        "case": [f"{a} {m}" for a, m in zip(data["arch"], data["mode"])],
        "setting": [setting_label(r) for _, r in data.iterrows()],
        "step [95%]": step, "rounds": get("rounds").map(_int_h),
        "images/s": get("images_per_s").map(number_h), "achieved": get("achieved_flops").map(flops_h),
        "MFU": get("mfu").map(percent_h), "peak memory": get("peak_memory_bytes").map(bytes_h),
        "stable": ["no: " + str(r) if u else "yes" for u, r in zip(unstable, get("unstable_reason"))],
    })


def _int_h(value) -> str:
    return "—" if value is None or value != value else f"{int(value)}"
