"""Plots of time-to-accuracy results: each takes frames already computed (`reports.tta_tables`), an optional `ax`,
and returns the ax (no statistics in here)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .tta_tables import setting_h  # noqa: E402


def new_ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    return ax


def _ok(value) -> bool:
    try:
        return value is not None and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def times(cases: pd.DataFrame, ax=None):
    """Per case: every seed's time to the target (dots; a cross at the right edge for a seed that missed it), the
    median (bar) and its interval (whiskers; an open end where it lies beyond the cap)."""
    ax = new_ax(ax)
    labels = []
    reached = [t for ts in cases["tta_seconds"] for t in ts if _ok(t)] or [1.0]
    edge = max(reached) * 1.1
    for i, (_, c) in enumerate(cases.iterrows()):
        labels.append(f"{setting_h(c)} {c['dataset']} to {c['target']:.0%}")
        seeds = [t for t in c["tta_seconds"] if _ok(t)]
        ax.scatter(seeds, [i] * len(seeds), color="tab:blue", zorder=3, s=18)
        missed = sum(not _ok(t) for t in c["tta_seconds"])
        if missed:
            ax.scatter([edge] * missed, [i] * missed, marker="x", color="tab:red", zorder=3)
        if _ok(c["median_s"]):
            low = c["tta_low_s"] if _ok(c["tta_low_s"]) else c["median_s"]
            high = c["tta_high_s"] if _ok(c["tta_high_s"]) else edge
            ax.errorbar([c["median_s"]], [i], xerr=[[c["median_s"] - low], [high - c["median_s"]]], fmt="|",
                        color="k", ms=14, capsize=4)
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", labelsize=7)
    ax.set(xlabel="seconds to target (clock: data load, training and evaluation)",
           title="Time to accuracy per setting: seeds, median and its interval (x: not reached)")
    ax.grid(True, axis="x", alpha=0.3)
    return ax


def curves(points: pd.DataFrame, ax=None):
    """Validation accuracy against the clock, one line per seed, a colour per setting, the target dashed."""
    ax = new_ax(ax)
    colours: dict[str, str] = {}
    for (setting, dataset, _seed), g in points.groupby(["setting", "dataset", "seed"], sort=True):
        key = f"{setting} {dataset}"
        first = key not in colours
        colour = colours.setdefault(key, f"C{len(colours) % 10}")
        ax.plot(g["seconds"], g["val_accuracy"], marker=".", color=colour, alpha=0.8, label=key if first else None)
    for target in sorted(points["target"].unique()):
        ax.axhline(target, color="k", ls="--", lw=1)
    ax.set(xlabel="seconds on the benchmark's clock", ylabel="validation accuracy",
           title="Training curves behind the times (one line per seed; dashed: target)")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax
