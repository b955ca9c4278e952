"""Plots of per-layer profiles (frames from `reports.profiles`): the roofline, the bandwidth panel for the rows
without FLOPs, and where a step's time goes by part. As in `reports.plots`: no statistics in here, an optional
`ax` in, the ax out."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PASS_COLOURS = {"forward": "tab:blue", "backward": "tab:orange", "update": "tab:green", "step": "tab:gray"}
LABELLED = 3        # the rows losing most time to the roofs get their layer's name on the plot


def _ax(ax, size=(7, 4.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _sizes(rows: pd.DataFrame, total: float) -> pd.Series:
    """Marker areas that grow with a row's share of the step (a row of 1% still shows)."""
    share = rows["time_s"] / total if total > 0 else rows["time_s"] * 0
    return 12 + 600 * share.clip(lower=0) ** 0.75


def _label_worst(ax, rows: pd.DataFrame, x: str, y: str) -> None:
    for _, r in rows.nlargest(LABELLED, "above_bound_s").iterrows():
        ax.annotate(f"{r['layer']} {r['pass'][:3]}", (r[x], r[y]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")


def _by_pass(ax, rows: pd.DataFrame, x: str, y: str, total: float) -> None:
    for pass_, colour in PASS_COLOURS.items():
        for cast, marker in ((False, "o"), (True, "X")):
            part = rows[(rows["pass"] == pass_) & ((rows["kind"] == "cast") == cast)]
            if not part.empty:
                ax.scatter(part[x], part[y], s=_sizes(part, total), c=colour, marker=marker, alpha=0.75,
                           edgecolors="k", linewidths=0.3, label=f"{pass_}{' casts' if cast else ''}")


def roofline(rows: pd.DataFrame, peak_flops: float, bandwidth: float, ax=None, title: str = ""):
    """One profile's rows with FLOPs (convolutions, linear layers) at (intensity, achieved FLOP/s), log-log, under
    the two roofs measured in the same run: the compute peak and bandwidth x intensity. One colour per pass;
    marker area: the row's share of the step; labelled: the rows furthest above their bound."""
    ax = _ax(ax)
    total = rows["time_s"].sum()
    flop_rows = rows[(rows["flops"] > 0) & (rows["time_s"] > 0) & rows["intensity"].notna()]
    ridge = peak_flops / bandwidth
    xs = [*flop_rows["intensity"].astype(float), ridge]
    low, high = min(xs) / 4, max(xs) * 4
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak_flops, x * bandwidth) for x in grid], color="k", lw=1.2,
            label=f"roofs: {peak_flops / 1e9:,.3g} GFLOP/s, {bandwidth / 2 ** 30:,.3g} GiB/s")
    ax.axvline(ridge, color="k", lw=0.6, ls=":")
    _by_pass(ax, flop_rows, "intensity", "achieved_flops", total)
    if not flop_rows.empty:
        _label_worst(ax, flop_rows, "intensity", "achieved_flops")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP / byte, compulsory traffic)",
           ylabel="achieved FLOP/s", title=title or "Roofline")
    bottom = min([*flop_rows["achieved_flops"].astype(float), peak_flops]) / 4
    ax.set_ylim(bottom, peak_flops * 2)
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    return ax


def bandwidth_panel(rows: pd.DataFrame, bandwidth: float, ax=None, title: str = ""):
    """One profile's rows without FLOPs that move bytes (BatchNorm, ReLU, pooling, dropout, casts, the loss, the
    optimizer) at their place in the step against achieved bytes/s, under the bandwidth roof; casts as crosses."""
    ax = _ax(ax)
    total = rows["time_s"].sum()
    byte_rows = rows[(rows["flops"] == 0) & (rows["bytes"] > 0) & (rows["time_s"] > 0)]
    ax.axhline(bandwidth, color="k", lw=1.2, label=f"bandwidth roof: {bandwidth / 2 ** 30:,.3g} GiB/s")
    _by_pass(ax, byte_rows, "order", "achieved_bytes", total)
    if not byte_rows.empty:
        _label_worst(ax, byte_rows, "order", "achieved_bytes")
        bottom = min(byte_rows["achieved_bytes"].min(), bandwidth) / 4
        ax.set_ylim(bottom, bandwidth * 3)
    ax.set(yscale="log", xlabel="position in the step (forward, loss, backward, optimizer)",
           ylabel="achieved bytes/s", title=title or "Rows without FLOPs: bandwidth")
    ax.legend(fontsize=6, loc="best")
    ax.grid(True, which="both", alpha=0.2)
    return ax


def roofline_figure(rows: pd.DataFrame, peak_flops: float, bandwidth: float, title: str = ""):
    """The roofline and the bandwidth panel side by side; returns the roofline's ax (its figure holds both)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    roofline(rows, peak_flops, bandwidth, left, title=f"{title}: FLOP rows" if title else "")
    bandwidth_panel(rows, bandwidth, right, title=f"{title}: rows without FLOPs" if title else "")
    return left


def parts(times: dict[str, pd.Series], ax=None, title: str = "Where the step's time goes"):
    """Stacked horizontal bars, one per profile (label -> seconds per part, `reports.profiles.time_by_part`)."""
    ax = _ax(ax, (8, 1.2 + 0.7 * len(times)))
    names = list(dict.fromkeys(p for series in times.values() for p in series.index))
    cmap = plt.get_cmap("tab20")
    labels = list(times)
    left = [0.0] * len(labels)
    for i, name in enumerate(names):
        widths = [float(times[label].get(name, 0.0)) for label in labels]
        ax.barh(labels, widths, left=left, color=cmap(i % 20), label=name)
        left = [a + b for a, b in zip(left, widths)]
    ax.set(xlabel="seconds per step (sum of the profile's rows)", title=title)
    ax.legend(fontsize=6, ncol=min(4, max(1, math.ceil(len(names) / 3))), loc="upper center",
              bbox_to_anchor=(0.5, -0.35 if len(times) < 3 else -0.2))
    ax.tick_params(axis="y", labelsize=7)
    return ax
