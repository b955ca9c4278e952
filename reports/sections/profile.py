"""The per-layer profile section ("Where the time goes"): per profiled case its totals, a roofline figure and the
rows that lose most time to the roofs; then every pair of profiles that differ in one setting, side by side."""

from __future__ import annotations

import pandas as pd

from .. import plots_profile
from ..document import Report
from ..format import DASH, percent_h, seconds_h
from ..profiles import (label, pairs, profile_cases, profile_kernels, profile_rows, side_by_side, time_by_part,
                        where_time_goes)
from . import Inputs

KERNELS_SHOWN = 8     # ops listed per case (the CSV holds all)
ABOUT = ("Each profiled case's step (pytest bench --vgg-profile), one row per layer and pass (forward, backward), "
         "the autocast casts each layer causes, the loss, zero_grad and the optimizer step, timed under "
         "torch.profiler (CPU: host op times; CUDA: kernel device times) in rounds interleaved with unprofiled "
         "steps. FLOPs are vggcore.model.summary's analytic counts (matmul and convolution only); bytes follow the "
         "compulsory-traffic model of vggcore.profile.roofline (every tensor a pass must read or write crosses memory "
         "once). The bound is the least time the two roofs measured in the same run allow (the dtype's compute "
         "peak, a STREAM triad's bandwidth); 'above bound' is the time a row loses to them. What no row holds "
         "(Python between ops, the autograd engine between nodes) is the unattributed row, never hidden.")


def add(r: Report, inp: Inputs) -> None:
    rows = profile_rows(inp.bench) if inp.bench is not None else pd.DataFrame()
    if rows.empty:
        return
    cases = profile_cases(inp.bench)
    kernels = profile_kernels(inp.bench)
    r.add("h2", "Where the time goes")
    r.add("text", ABOUT)
    r.table("profile_cases", cases, "profiled cases: totals and roofs",
            display=totals_display(cases))
    for _, case in cases.iterrows():
        one_case(r, case, rows[rows["name"] == case["name"]], kernels[kernels["name"] == case["name"]])
    found = pairs(cases)
    if found:
        r.add("h3", "Two settings side by side")
    for setting, a, b in found:
        side(r, setting, a, b, rows)


def totals_display(cases: pd.DataFrame) -> pd.DataFrame:
    """The totals in machine columns (reports.readable gives them their headers and units), the case as its label."""
    shown = cases[["name", "step_s", "attributed_s", "unattributed_s", "attributed_gap", "overhead", "peak_flops",
                   "bandwidth", "rounds", "coverage", "timing"]].copy()
    shown["name"] = [label(c) for _, c in cases.iterrows()]
    return shown


def one_case(r: Report, case: pd.Series, rows: pd.DataFrame, kernels: pd.DataFrame) -> None:
    name = label(case)
    r.add("h3", f"Profile: {name}")
    reasons = case.get("reasons")
    verdict = ("The rows add up to the unprofiled step within the tolerance and profiling does not perturb it."
               if not reasons else f"Read with care: {reasons}.")
    r.add("text", f"Unprofiled step {seconds_h(case['step_s'])}, profiled {seconds_h(case['profiled_step_s'])}; "
                  f"the rows sum to {seconds_h(case['attributed_s'])} and {seconds_h(case['unattributed_s'])} is "
                  f"unattributed. {verdict}")
    r.figure(f"roofline {case['name']}", lambda ax: plots_profile.roofline_figure(
        rows, float(case["peak_flops"]), float(case["bandwidth"]), title=name))
    ranked = where_time_goes(rows)
    r.table(f"where the time goes {case['name']}", ranked, f"where the time goes: {name}",
            display=ranked_display(ranked))
    if not kernels.empty:
        top = kernels.head(KERNELS_SHOWN).rename(columns={"seconds": "own_time_s", "share": "share_of_step"})
        r.table(f"ops {case['name']}", kernels.drop(columns="name"), f"the ops the step's time goes to: {name}",
                display=top[["op", "own_time_s", "share_of_step", "rows"]])


def ranked_display(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranking in machine columns for reports.readable; the time's interval over the rounds and the top op with
    its share as one text column each, rates of rows without FLOPs (or bytes) missing rather than 0."""
    shown = ranked[["rank", "layer", "kind", "pass", "time_s"]].copy()
    lows, highs = ranked.get("time_low_s"), ranked.get("time_high_s")
    shown["time_interval"] = ([DASH] * len(ranked) if lows is None else
                              [f"[{seconds_h(lo)}, {seconds_h(hi)}]" if pd.notna(lo) and pd.notna(hi) else DASH
                               for lo, hi in zip(lows, highs)])
    for column in ("share_of_step", "bound_time_s", "above_bound_s", "share_of_bound", "limit", "intensity"):
        shown[column] = ranked[column]
    shown["limit"] = shown["limit"].fillna("")
    shown["achieved_flops"] = ranked["achieved_flops"].where(ranked["flops"] > 0)
    shown["achieved_bytes"] = ranked["achieved_bytes"].where(ranked["bytes"] > 0)
    ops = ranked.get("top_op", pd.Series([None] * len(ranked), index=ranked.index))
    shares = ranked.get("top_op_share", pd.Series([None] * len(ranked), index=ranked.index))
    shown["top_op_with_share"] = [f"{op} ({percent_h(share)})" if isinstance(op, str) and op else DASH
                                  for op, share in zip(ops, shares)]
    return shown


def side(r: Report, setting: str, a: pd.Series, b: pd.Series, rows: pd.DataFrame) -> None:
    rows_a, rows_b = rows[rows["name"] == a["name"]], rows[rows["name"] == b["name"]]
    table = side_by_side(rows_a, rows_b)
    title = f"{label(a)} vs {label(b)}"
    r.add("text", f"{setting}: {title}. B / A > 1: the row is slower in B. Rows only one side has (bf16's casts) "
                  "count 0 s on the other; the last row is the whole step.")
    r.table(f"side by side {a['name']} {b['name']}", table, f"side by side ({setting}): {title}",
            display=table[["layer", "pass", "kind", "time_a_s", "time_b_s", "delta_s", "ratio_b_over_a"]])
    r.figure(f"parts {a['name']} {b['name']}", lambda ax: plots_profile.parts(
        {f"A: {label(a)}": time_by_part(rows_a), f"B: {label(b)}": time_by_part(rows_b)}, ax,
        title=f"Where the step's time goes ({setting})"))
