"""Benchmark sections: the single-process grid, its history over saved runs, data-parallel scaling."""

from __future__ import annotations

import pandas as pd

from .. import plots
from ..ab_tables import ab_comparisons, ab_display, ab_rows, is_ab
from ..bench_tables import cases_display, speed_ratios
from ..document import Report, slug
from ..format import ratio_interval_h
from ..history import history, machines, steps
from . import Inputs


def add(r: Report, inp: Inputs) -> None:
    if inp.bench is not None:
        ab = is_ab(inp.bench)   # interleaved A/B cases: their ratio is the result, in a table of their own
        if not ab.all():
            grid(r, inp.bench[~ab])
        if ab.any():
            ab_section(r, inp.bench)
        history_section(r, inp.bench_all, inp.machine)
    if inp.scaling is not None:
        scaling(r, inp.scaling)


def grid(r: Report, bench: pd.DataFrame) -> None:
    r.add("h2", "Benchmarks")
    r.add("text", "Throughput from the median step time; MFU against the peak measured in the same run; "
                  "memory is the step's measured peak.")
    cols = [c for c in ["arch", "mode", "device", "dtype", "implementation", "batch_size", "images_per_s",
                        "median", "rounds", "mfu", "peak_memory_bytes", "activation_bytes", "threads"] if c in bench]
    r.table("benchmarks", bench.sort_values(["arch", "mode", "batch_size"])[cols], display=cases_display(bench))
    shaky = bench[bench["unstable"]]
    if not shaky.empty:
        r.add("text", f"{len(shaky)} unstable case(s), flagged above (the reason in the footnote) and ringed in red "
                      "in the figures: their "
                      "rounds were too spread, fell into two clusters, or the median's interval missed its target. "
                      "Rerun them with more --vgg-max-time, fewer threads or on an idle machine before trusting "
                      "them.")
    for mode in bench["mode"].dropna().unique():
        r.figure(f"throughput_{mode}", lambda ax, m=mode: plots.throughput_vs_batch(bench, ax, mode=m))
    r.figure("memory", lambda ax: plots.memory_vs_batch(bench, ax))
    r.figure("mfu", lambda ax: plots.mfu(bench, ax))
    ratios = speed_ratios(bench)
    if ratios.empty:
        r.add("text", "No torchvision reference cases (run the suite with --vgg-reference for the comparison).")
    else:
        r.table("speed_ratios", ratios.drop(columns="case"))
        r.figure("vggcore_vs_torchvision", lambda ax: plots.speed_ratio(ratios, ax))


def ab_section(r: Report, bench: pd.DataFrame) -> None:
    rows = ab_rows(bench)
    r.add("h2", "A/B comparisons")
    r.add("text", "Each case timed step by step in alternation with its twin B (the same case with the settings "
                  "named), so both saw the same machine state: the speed of A over B is the median of the "
                  "per-round ratios (B's time over A's; above 1: A is faster), with its 95% interval.")
    r.table("ab_comparisons", ab_comparisons(rows), display=ab_display(rows))


def history_section(r: Report, bench_all: pd.DataFrame, machine: str) -> None:
    """Saved runs over time, per machine; only when some case was run more than once."""
    found_machines = machines(bench_all)
    hist = history(bench_all)
    if hist.groupby(["machine", "name"]).size().max() < 2 and len(found_machines) < 2:
        return
    r.add("h2", "History")
    listing = "; ".join(f"{m}: {n} run(s)" for m, n in zip(found_machines["machine"], found_machines["runs"]))
    if len(found_machines) > 1:
        r.add("text", f"Benchmark files from {len(found_machines)} machines, never mixed: {listing}. The tables "
                      f"above show the latest runs of {machine}; each machine's history is shown on its own.")
    else:
        r.add("text", f"Runs of {listing}, in time order.")
    found = steps(hist)
    if found.empty:
        r.add("text", "No step: no case changed beyond the 5% threshold and the noise between its runs.")
    else:
        shown = found.assign(change=[ratio_interval_h(a, b, c) for a, b, c in
                                     zip(found["ratio"], found["low"], found["high"])])
        r.table("history_steps", found, "steps detected (after / before, median step time)",
                display=shown[["machine", "name", "verdict", "change", "step_at_run", "datetime", "commit"]])
    for m, g in hist.groupby("machine", sort=True):
        if g.groupby("name").size().max() >= 2:
            r.figure(f"history_{slug(m)}", lambda ax, g=g, m=m: plots.history(g, found[found["machine"] == m], ax))


def scaling(r: Report, scaling: pd.DataFrame) -> None:
    r.add("h2", "Data-parallel scaling")
    r.add("text", "Weak scaling: the per-rank batch is fixed, so a world of N trains on N times the images per step. "
                  "images_per_s is global; speed-up and efficiency divide by the same case at world size 1 "
                  "(scaling_efficiency = images_per_s(N) / (N x images_per_s(1))). The paper reported 3.75x on "
                  "4 GPUs (efficiency 0.94).")
    cols = [c for c in ["arch", "device", "dtype", "batch_size", "world_size", "backend", "threads_per_rank",
                        "images_per_s", "speedup", "scaling_efficiency", "median", "rounds"] if c in scaling]
    r.table("scaling", scaling.sort_values(["arch", "device", "batch_size", "world_size"])[cols])
    r.figure("scaling_speedup", lambda ax: plots.scaling(scaling, ax, "speedup"))
    r.figure("scaling_efficiency", lambda ax: plots.scaling(scaling, ax, "scaling_efficiency"))
