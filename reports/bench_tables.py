"""The report's tables of benchmark results, pure functions of the tidy bench frame (`reports.load.load_bench`):
the fastest setting with its speed-up over plain fp32 (and that ratio's interval), the per-case table in readable
units with unstable cases flagged (the reason as a footnote), vggcore's speed against torchvision's, and the paper's Table 2 beside vggcore."""

from __future__ import annotations

import math

import pandas as pd

from .compare import ratio_interval, within_run_variance
from .format import bytes_h, flops_h, number_h, percent_h, ratio_interval_h, seconds_h
from .readable import Flag

SETTING = ["device", "dtype", "channels_last", "compiled", "implementation", "batch_size"]
# Table 2 of the paper: parameters in millions.
PAPER_PARAMS_M = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


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
            r, lo, hi, _ = ratio_interval([math.log(best["median"])], [within_run_variance(best)],
                                          [math.log(p["median"])], [within_run_variance(p)])
            speedup, low, high = r, lo, hi  # plain time / best time: > 1 = the setting is faster
        rows.append({"arch": arch, "mode": mode, "setting": setting_label(best), "device": best["device"],
                     "images_per_s": best["images_per_s"], "speedup_vs_fp32": speedup, "speedup_low": low,
                     "speedup_high": high, "mfu": best.get("mfu"), "peak_memory_bytes": best.get("peak_memory_bytes"),
                     "unstable": bool(best["unstable"]),  # a numpy bool: never test it with `is True`
                     "unstable_reason": best.get("unstable_reason", "")})
    return pd.DataFrame(rows)


def stability(unstable, reason) -> Flag | str:
    """'stable', or the flag 'unstable' with its reason (a footnote and the hover text in the report)."""
    return Flag("unstable", str(reason) if reason else "unstable (no reason recorded)") if unstable else "stable"


def fastest_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "arch": table["arch"], "mode": table["mode"],
        "fastest setting": table["setting"],
        "stability": [stability(u, r) for u, r in zip(table["unstable"], table["unstable_reason"])],
        "images/s": table["images_per_s"].map(number_h),
        "speed-up over plain fp32 [95%]": [("1.00x (it is plain fp32)" if r == 1.0 and lo != lo else
                                            ratio_interval_h(r, lo, hi)) if r == r else "— (no plain fp32 case)"
                                           for r, lo, hi in zip(table["speedup_vs_fp32"], table["speedup_low"],
                                                                table["speedup_high"])],
        "MFU": table["mfu"].map(percent_h), "peak memory": table["peak_memory_bytes"].map(bytes_h)})


def cases_display(bench: pd.DataFrame) -> pd.DataFrame:
    """Every case in units people read; the median step with its 95% interval; unstable cases marked."""
    data = bench.sort_values(["arch", "mode", "dtype", "batch_size", "implementation"])
    step = [f"{seconds_h(m)} [{seconds_h(lo)}, {seconds_h(hi)}]" if lo == lo else seconds_h(m)
            for m, lo, hi in zip(data["median"], data["median_low"], data["median_high"])]
    return pd.DataFrame({
        "case": [f"{a} {m}" for a, m in zip(data["arch"], data["mode"])],
        "setting": [setting_label(r) for _, r in data.iterrows()],
        "step [95%]": step, "rounds": data["rounds"].map(_int_h),
        "images/s": data["images_per_s"].map(number_h), "achieved": data["achieved_flops"].map(flops_h),
        "MFU": data["mfu"].map(percent_h), "peak memory": data["peak_memory_bytes"].map(bytes_h),
        "stability": [stability(u, r) for u, r in zip(data["unstable"], data["unstable_reason"])],
    })


def _int_h(value) -> str:
    return "—" if value is None or value != value else f"{int(value)}"


def speed_ratios(bench: pd.DataFrame) -> pd.DataFrame:
    """vggcore images/s over torchvision's for every case that has both."""
    keys = ["arch", "mode", "device", "dtype", "batch_size", "image_size", "width", "channels_last", "compiled"]
    keys = [k for k in keys if k in bench]
    impl = bench.pivot_table(index=keys, columns="implementation", values="images_per_s", aggfunc="median")
    if not {"vggcore", "torchvision"} <= set(impl.columns):
        return pd.DataFrame(columns=[*keys, "vggcore", "torchvision", "ratio", "case"])
    out = impl.dropna(subset=["vggcore", "torchvision"]).reset_index()
    out["ratio"] = out["vggcore"] / out["torchvision"]
    out["case"] = out.apply(lambda r: f"{r['arch']} {r['mode']} {r['device']} {r['dtype']} b{r['batch_size']}", axis=1)
    return out


def paper_table2() -> pd.DataFrame:
    """The paper's parameter counts beside vggcore's exact analytic counts and GMACs at 224x224."""
    from vggcore import VGGConfig, totals
    from vggcore.model.summary import summary

    rows = []
    for arch, paper in PAPER_PARAMS_M.items():
        t = totals(summary(VGGConfig(arch=arch)))
        rows.append({"arch": arch, "paper_params_M": paper, "vggcore_params": t["params"],
                     "vggcore_params_M": round(t["params"] / 1e6, 1), "vggcore_GMACs_224": round(t["macs"] / 1e9, 3)})
    return pd.DataFrame(rows)
