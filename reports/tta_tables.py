"""The report's tables of time-to-accuracy results, pure functions of the tidy bench frame's time-to-accuracy rows
(`reports.load.load_bench`; the figures were computed when the cases ran, by bench/tta_stats.py, and are only read
here): one row per case, one row per seed, one row per epoch of every seed's curve, and where the clock went.
"""

from __future__ import annotations

import math

import pandas as pd

from .format import DASH, number_h, percent_h, seconds_h

MODE = "time_to_accuracy"   # the `mode` bench/tta.py records on these cases
SETTING = ["arch", "dataset", "device", "dtype", "channels_last", "batch_size", "width", "image_size"]
MATCH = ["arch", "dataset", "device", "batch_size", "width", "image_size", "target"]   # what a plain twin shares


def is_tta(frame: pd.DataFrame) -> pd.Series:
    return frame["mode"] == MODE if "mode" in frame else pd.Series(False, index=frame.index)


def _missing(value) -> bool:
    try:
        return value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def time_h(value) -> str:
    """Seconds, or 'not reached' for a time beyond the epoch cap (recorded as None)."""
    return "not reached" if _missing(value) else seconds_h(value)


def setting_h(row) -> str:
    layout = " channels_last" if row.get("channels_last") == True else ""  # noqa: E712 - numpy bools
    return f"{row['arch']} {row['dtype']}{layout} b{row['batch_size']} w{row['width']:g}"


def _is_plain(row) -> bool:
    return row["dtype"] == "fp32" and row.get("channels_last") != True  # noqa: E712


def speedups(cases: pd.DataFrame) -> pd.Series:
    """Per case: the olympic mean of the plain fp32 case with the same arch, dataset, device, batch, width, size
    and target over this case's olympic mean (> 1: faster than plain fp32); NaN without such a twin or a mean."""
    out = []
    for _, row in cases.iterrows():
        twins = cases[(cases[MATCH] == row[MATCH]).all(axis=1) & cases.apply(_is_plain, axis=1)]
        plain = twins["olympic_mean_s"].iloc[0] if len(twins) else None
        mine = row["olympic_mean_s"]
        out.append(float(plain) / float(mine) if not (_missing(plain) or _missing(mine)) else math.nan)
    return pd.Series(out, index=cases.index, dtype=float)


def cases_table(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per case: setting, target, olympic mean, median and its interval, misses, validity (numbers)."""
    cols = [c for c in [*SETTING, "target", "seeds", "max_epochs", "lr", "schedule", "augment", "olympic_mean_s",
                        "median_s", "tta_low_s", "tta_high_s", "interval_confidence", "median_epochs",
                        "not_converged", "confirmed_runs", "valid", "valid_reason", "train_images_to_target",
                        "median_test_accuracy", "threads", "name"] if c in cases]
    return cases[cols].assign(speedup_vs_fp32=speedups(cases)).reset_index(drop=True)


def cases_display(cases: pd.DataFrame) -> pd.DataFrame:
    """`cases_table` in words: times with units, the interval with its level, misses out of seeds."""
    t = cases_table(cases)
    return pd.DataFrame({
        "setting": [setting_h(r) for _, r in t.iterrows()],
        "dataset": t["dataset"],
        "target": [percent_h(v) for v in t["target"]],
        "olympic mean": [time_h(v) for v in t["olympic_mean_s"]],
        "median [interval]": [f"{time_h(m)} [{time_h(lo)}, {time_h(hi)}] ({c:.1%})" for m, lo, hi, c in
                              zip(t["median_s"], t["tta_low_s"], t["tta_high_s"], t["interval_confidence"])],
        "epochs (median)": [DASH if _missing(v) else f"{v:g}" for v in t["median_epochs"]],
        "not converged": [f"{n} of {s}" for n, s in zip(t["not_converged"], t["seeds"])],
        "confirmed on test": [f"{c} of {s - n}" for c, s, n in zip(t["confirmed_runs"], t["seeds"],
                                                                      t["not_converged"])],
        "valid": ["yes" if v else f"no: {why}" for v, why in zip(t["valid"], t["valid_reason"])],
        "images to target": [number_h(v) for v in t["train_images_to_target"]],
        "test accuracy (median)": [percent_h(v) for v in t.get("median_test_accuracy", [math.nan] * len(t))],
        "vs plain fp32": [DASH if _missing(v) else f"{v:.2f}x" for v in t["speedup_vs_fp32"]],
    })


def seeds_table(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per case and seed: status, seconds and epochs to the target, test accuracy, confirmed."""
    rows = []
    for _, c in cases.iterrows():
        for seed, (status, seconds, epochs, test, ok) in enumerate(zip(
                c["tta_status"], c["tta_seconds"], c["tta_epochs"], c["test_accuracy"], c["confirmed"])):
            rows.append({"setting": setting_h(c), "dataset": c["dataset"], "seed": seed, "status": status,
                         "tta_seconds": seconds, "tta_epochs": epochs, "test_accuracy": test, "confirmed": ok})
    return pd.DataFrame(rows, columns=["setting", "dataset", "seed", "status", "tta_seconds", "tta_epochs",
                                       "test_accuracy", "confirmed"])


def curves(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per case, seed and epoch: the clock's seconds at the end of the epoch's validation and its
    accuracy (the training curves behind every time), with the case's target."""
    rows = []
    for _, c in cases.iterrows():
        for seed, curve in enumerate(c["curves"]):
            for point in curve:
                rows.append({"setting": setting_h(c), "dataset": c["dataset"], "target": c["target"], "seed": seed,
                             **point})
    return pd.DataFrame(rows)


LOOP_PARTS = {"train_share": "training passes", "data_share": "of which data", "eval_share": "evaluations",
              "other_share": "load, build, between epochs"}
STEP_PARTS = {"step_data_s": "data", "step_forward_backward_s": "forward + backward", "step_optimizer_s": "SGD update",
              "step_loop_overhead_s": "loop with a stub model"}


def loop_cost(cases: pd.DataFrame) -> pd.DataFrame:
    """Per case: the shares of the clock (over every timed run) and the per-step parts, readable."""
    rows = []
    for _, c in cases.iterrows():
        cost = c.get("loop_cost")
        if not isinstance(cost, dict):
            continue
        row = {"setting": setting_h(c)}
        row.update({label: percent_h(cost.get(key)) for key, label in LOOP_PARTS.items()})
        row.update({f"step: {label}": seconds_h(cost.get(key)) for key, label in STEP_PARTS.items()})
        rows.append(row)
    return pd.DataFrame(rows)
