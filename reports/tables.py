"""Derived benchmark tables (pure functions of the tidy bench frame) and the paper's Table 2 side by side."""

from __future__ import annotations

import pandas as pd

# Table 2 of the paper: parameters in millions.
PAPER_PARAMS_M = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


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
    from vggcore import VGGConfig, summary, totals

    rows = []
    for arch, paper in PAPER_PARAMS_M.items():
        t = totals(summary(VGGConfig(arch=arch)))
        rows.append({"arch": arch, "paper_params_M": paper, "vggcore_params": t["params"],
                     "vggcore_params_M": round(t["params"] / 1e6, 1), "vggcore_GMACs_224": round(t["macs"] / 1e9, 3)})
    return pd.DataFrame(rows)
