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


def throughput_vs_batch(bench: pd.DataFrame, ax=None, mode: str | None = None):
    """Images/s against batch size (log x), one line per architecture, device, dtype, mode, implementation;
    bars: the 95% interval from the median step's interval; hollow red-ringed markers: unstable cases."""
    ax = _ax(ax)
    data = bench if mode is None else bench[bench["mode"] == mode]
    for key, g in data.sort_values("batch_size").groupby(CASE_KEYS, sort=True):
        if g["median_high"].notna().any():  # files from before adaptive sampling kept no interval
            low = (g["batch_size"] / g["median_high"]).fillna(g["images_per_s"])
            high = (g["batch_size"] / g["median_low"]).fillna(g["images_per_s"])
            err = [(g["images_per_s"] - low).clip(lower=0), (high - g["images_per_s"]).clip(lower=0)]
        else:
            err = None
        line = ax.errorbar(g["batch_size"], g["images_per_s"], yerr=err, marker="o", capsize=3,
                           label=" ".join(map(str, key)))
        shaky = g["unstable"]
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
    """vggcore / torchvision images/s per case (frame from `reports.bench_tables.speed_ratios`); 1 = parity."""
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


DECISION_STYLE = {"better": ("tab:green", "^"), "worse": ("tab:red", "v"), "equivalent": ("tab:blue", "s"),
                  "undecided": ("tab:gray", "o")}


def ablation_effects(effects: pd.DataFrame, ax=None, study: str | None = None):
    """Difference of each variant to the baseline (the decision statistic's estimate) with its interval; colour and
    marker give the decision, the label the seeds compared (n) and those that did not train, dotted lines the
    +/- min_effect band when one is set. A row without a difference (no seed of the variant trained) says its
    decision in words: worse by its failure rate, or no trained seed to compare."""
    ax = _ax(ax)
    data = effects if study is None else effects[effects["study"] == study]
    data = data[data["variant"] != "baseline"].reset_index(drop=True)
    decisions = data["decision"] if "decision" in data else pd.Series(["undecided"] * len(data))
    for decision, (colour, marker) in DECISION_STYLE.items():
        part = data[decisions == decision]
        if part.empty:
            continue
        err = [(part["diff"] - part["diff_low"]).fillna(0), (part["diff_high"] - part["diff"]).fillna(0)]
        ax.errorbar(part["diff"], list(part.index), xerr=err, fmt=marker, color=colour, capsize=4, label=decision)
    n = data["n_used"] if "n_used" in data else data["n_ok"]
    failed = data["n_not_trained"] if "n_not_trained" in data else pd.Series([0] * len(data))
    by = data["decided_by"] if "decided_by" in data else pd.Series([""] * len(data))
    for i in data.index[data["diff"].isna()]:   # no trained seed to place: the row says what it is
        decision = decisions[i]
        text = f"{decision}: decided by {by[i]}" if decision != "undecided" and by[i] else "no trained seed to compare"
        colour = DECISION_STYLE.get(decision, ("k", ""))[0]
        ax.annotate(text, (0.0, i), xytext=(4, 0), textcoords="offset points", va="center", color=colour, fontsize=8)
    ax.set_yticks(list(range(len(data))), [f"{v} (n={k}{f', {f} did not train' if f else ''})"
                                           for v, k, f in zip(data["variant"], n, failed)])
    ax.set_ylim(-0.5, len(data) - 0.5)   # every row, those with no interval to draw included
    ax.axvline(0.0, color="k", lw=1)
    me = data["min_effect"].iloc[0] if "min_effect" in data and len(data) else float("nan")
    if me == me and me:
        for x in (-me, me):
            ax.axvline(x, color="tab:blue", lw=1, ls=":")
    metric = data["metric"].iloc[0] if len(data) else "metric"
    ax.set(xlabel=f"{metric}: variant - baseline", title=f"Effects vs baseline{f' ({study})' if study else ''}")
    if len(data):
        ax.legend(fontsize=7, title="decision", title_fontsize=7)
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


PAPER_SPEEDUP = (4, 3.75)   # the paper (section 3.3): 3.75x on 4 GPUs over one


def scaling(frame: pd.DataFrame, ax=None, metric: str = "speedup"):
    """Speed-up (or `scaling_efficiency`) against world size, one line per case, the ideal and the paper's
    3.75x on 4 GPUs beside it. `frame`: rows of the scaling benchmark with world_size and the metric."""
    ax = _ax(ax)
    keys = [k for k in ["arch", "device", "dtype", "batch_size"] if k in frame]
    data = frame.dropna(subset=[metric]).sort_values("world_size")
    for key, g in data.groupby(keys, sort=True):
        label = " ".join(map(str, key if isinstance(key, tuple) else (key,))) + " per rank"
        ax.plot(g["world_size"], g[metric], marker="o", label=label)
    sizes = sorted({int(n) for n in data["world_size"]} | {1, PAPER_SPEEDUP[0]})
    n, paper = PAPER_SPEEDUP
    if metric == "speedup":
        ax.plot(sizes, sizes, color="k", lw=1, ls="--", label="ideal")
        ax.plot([n], [paper], marker="*", ms=12, color="tab:red", ls="none", label=f"paper: {paper}x on {n} GPUs")
        ax.set(ylabel="speed-up over one rank (global images/s)")
    else:
        ax.axhline(1.0, color="k", lw=1, ls="--", label="ideal")
        ax.plot([n], [paper / n], marker="*", ms=12, color="tab:red", ls="none",
                label=f"paper: {paper / n:.3f} on {n} GPUs")
        ax.set(ylabel="scaling efficiency", ylim=(0, 1.1))
    ax.set_xticks(sizes)
    ax.set(xlabel="world size (ranks)", title="Data-parallel weak scaling" if metric == "speedup"
           else "Scaling efficiency")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax
