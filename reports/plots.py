"""Plots: each takes frames already computed (no statistics in here), an optional `ax`, and returns the ax."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

CASE_KEYS = ["arch", "device", "dtype", "mode", "implementation"]


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    return ax


def _batch_axis(ax, sizes) -> None:
    """Log-2 batch-size axis labelled with the sizes that were measured."""
    from matplotlib.ticker import NullLocator, ScalarFormatter

    ticks = sorted({int(s) for s in sizes})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 2, ticks[0] * 2)


def _label(row, keys) -> str:
    return " ".join(str(row[k]) for k in keys)


def _unstable(g: pd.DataFrame) -> pd.Series:
    return g["unstable"].fillna(False).astype(bool) if "unstable" in g else pd.Series(False, index=g.index)


def throughput_vs_batch(bench: pd.DataFrame, ax=None, mode: str | None = None):
    """Images/s against batch size (log x), one line per architecture, device, dtype, mode, implementation;
    bars: the 95% interval from the median step's interval; hollow red-ringed markers: unstable cases."""
    ax = _ax(ax)
    data = bench if mode is None else bench[bench["mode"] == mode]
    for key, g in data.sort_values("batch_size").groupby(CASE_KEYS, sort=True):
        if "median_high" in g:
            low = (g["batch_size"] / g["median_high"]).fillna(g["images_per_s"])
            high = (g["batch_size"] / g["median_low"]).fillna(g["images_per_s"])
            err = [(g["images_per_s"] - low).clip(lower=0), (high - g["images_per_s"]).clip(lower=0)]
        else:
            err = None
        line = ax.errorbar(g["batch_size"], g["images_per_s"], yerr=err, marker="o", capsize=3,
                           label=" ".join(map(str, key)))
        shaky = _unstable(g)
        if shaky.any():
            ax.scatter(g.loc[shaky, "batch_size"], g.loc[shaky, "images_per_s"], s=120, facecolors="none",
                       edgecolors="red", zorder=3, label=None)
            line.set_label(line.get_label() + " (! unstable)")
    _batch_axis(ax, data["batch_size"])
    ax.set(xlabel="batch size", ylabel="images / s", title="Throughput" + (f" ({mode})" if mode else "")
           + " with 95% intervals; red rings: unstable")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax


def memory_vs_batch(bench: pd.DataFrame, ax=None):
    """Peak memory of one step (MiB) against batch size (log x)."""
    ax = _ax(ax)
    for key, g in bench.sort_values("batch_size").groupby(CASE_KEYS, sort=True):
        ax.plot(g["batch_size"], g["peak_memory_bytes"] / 2 ** 20, marker="o", label=" ".join(map(str, key)))
    _batch_axis(ax, bench["batch_size"])
    ax.set(xlabel="batch size", ylabel="peak memory of a step (MiB)", title="Memory")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax


def history(hist: pd.DataFrame, found: pd.DataFrame, ax=None):
    """Each case's median step time over saved runs (relative to its first run), with 95% interval bars; a
    dashed line where a step was detected (frames from `reports.history`)."""
    ax = _ax(ax)
    for name, g in hist.groupby("name", sort=True):
        base = g["median"].iloc[0]
        err = [(g["median"] - g["low"]) / base, (g["high"] - g["median"]) / base]
        line = ax.errorbar(g["run"], g["median"] / base, yerr=err, marker="o", capsize=3, label=name)
        for _, s in found[found["name"] == name].iterrows():
            ax.axvline(s["step_at_run"] - 0.5, color=line[0].get_color(), ls="--", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel="run (time order)", ylabel="median step time / first run",
           title="History (dashed: detected step)")
    ax.legend(fontsize=6)
    ax.grid(True, alpha=0.3)
    return ax


def speed_ratio(ratios: pd.DataFrame, ax=None):
    """vggcore / torchvision images/s per case (frame from `reports.tables.speed_ratios`); 1 = parity."""
    ax = _ax(ax)
    labels = ratios["case"].tolist()
    ax.barh(labels, ratios["ratio"], color="tab:blue")
    ax.axvline(1.0, color="k", lw=1)
    ax.set(xlabel="vggcore / torchvision throughput", title="vggcore vs torchvision")
    ax.tick_params(axis="y", labelsize=7)
    return ax


def mfu(bench: pd.DataFrame, ax=None):
    """Model FLOP utilisation of every case against the machine's measured peak."""
    ax = _ax(ax)
    data = bench.sort_values(CASE_KEYS + ["batch_size"])
    labels = [_label(r, CASE_KEYS) + f" b{r['batch_size']}" for _, r in data.iterrows()]
    ax.barh(labels, data["mfu"], color="tab:orange")
    ax.set(xlabel="MFU (achieved / measured peak FLOP/s)", title="Model FLOP utilisation")
    ax.tick_params(axis="y", labelsize=6)
    return ax


def ablation_effects(effects: pd.DataFrame, ax=None, study: str | None = None):
    """Difference of each variant's mean metric to the baseline, with its interval."""
    ax = _ax(ax)
    data = effects if study is None else effects[effects["study"] == study]
    data = data[data["variant"] != "baseline"]
    y = range(len(data))
    err = [(data["diff"] - data["diff_low"]).fillna(0), (data["diff_high"] - data["diff"]).fillna(0)]
    ax.errorbar(data["diff"], list(y), xerr=err, fmt="o", capsize=4)
    ax.set_yticks(list(y), data["variant"])
    ax.axvline(0.0, color="k", lw=1)
    metric = data["metric"].iloc[0] if len(data) else "metric"
    ax.set(xlabel=f"{metric}: variant - baseline", title=f"Effects vs baseline{f' ({study})' if study else ''}")
    return ax


def learning_curves(history: pd.DataFrame, ax=None, metric: str = "val_top1_error", study: str | None = None):
    """Mean over seeds per variant and epoch, with a band from the lowest to the highest seed."""
    ax = _ax(ax)
    data = history if study is None else history[history["study"] == study]
    for variant, g in data.groupby("variant", sort=False):
        curve = g.groupby("epoch")[metric].agg(["mean", "min", "max"])
        ax.plot(curve.index, curve["mean"], label=variant)
        ax.fill_between(curve.index, curve["min"], curve["max"], alpha=0.2)
    ax.set(xlabel="epoch", ylabel=metric, title=f"Learning curves{f' ({study})' if study else ''}")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax


def lr_trace(history: pd.DataFrame, ax=None, study: str | None = None):
    """The learning rate each variant used, epoch by epoch (first seed)."""
    ax = _ax(ax)
    data = history if study is None else history[history["study"] == study]
    for variant, g in data.groupby("variant", sort=False):
        first = g[g["seed"] == g["seed"].min()].sort_values("epoch")
        ax.step(first["epoch"], first["lr"], where="post", label=variant)
    ax.set(yscale="log", xlabel="epoch", ylabel="learning rate", title=f"Learning-rate trace{f' ({study})' if study else ''}")
    ax.legend(fontsize=7)
    return ax
