"""The per-layer profile section ("Where the time goes"): per profiled case its totals, a roofline figure and the
rows that lose most time to the roofs; then every pair of profiles that differ in one setting, side by side."""

from __future__ import annotations

import pandas as pd

from .. import plots_profile
from ..document import Report
from ..format import DASH, bytes_h, flops_h, percent_h, ratio_h, seconds_h
from ..profiles import (label, pairs, profile_cases, profile_kernels, profile_rows, side_by_side, time_by_part,
                        where_time_goes)
from . import Inputs

KERNELS_SHOWN = 8     # ops listed per case (the CSV holds all)
ABOUT = ("Each profiled case's step (pytest bench --vgg-profile), one row per layer and pass (forward, backward), "
         "the autocast casts each layer causes, the loss, zero_grad and the optimizer step, timed under "
         "torch.profiler (CPU: host op times; CUDA: kernel device times) in rounds interleaved with unprofiled "
         "steps. FLOPs are vggcore.summary's analytic counts (matmul and convolution only); bytes follow the "
         "compulsory-traffic model of vggcore.roofline (every tensor a pass must read or write crosses memory "
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
    return pd.DataFrame({
        "case": [label(c) for _, c in cases.iterrows()],
        "step (unprofiled)": cases["step_s"].map(seconds_h),
        "rows sum": cases["attributed_s"].map(seconds_h),
        "unattributed": cases["unattributed_s"].map(seconds_h),
        "rows vs step": cases["attributed_gap"].map(percent_h),
        "profiling overhead": cases["overhead"].map(percent_h),
        "peak": cases["peak_flops"].map(flops_h),
        "bandwidth": cases["bandwidth"].map(lambda v: bytes_h(v) + "/s"),
        "rounds": cases["rounds"], "timing": cases["timing"]})


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
        top = kernels.head(KERNELS_SHOWN)
        r.table(f"ops {case['name']}", kernels.drop(columns="name"), f"the ops the step's time goes to: {name}",
                display=pd.DataFrame({"op": top["op"], "own time per step": top["seconds"].map(seconds_h),
                                      "share of the step": top["share"].map(percent_h), "rows": top["rows"]}))


def ranked_display(ranked: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "rank": ranked["rank"], "layer": ranked["layer"], "kind": ranked["kind"], "pass": ranked["pass"],
        "time": ranked["time_s"].map(seconds_h), "share of step": ranked["share_of_step"].map(percent_h),
        "bound": ranked["bound_time_s"].map(seconds_h), "above bound": ranked["above_bound_s"].map(seconds_h),
        "share of bound": ranked["share_of_bound"].map(percent_h), "limit": ranked["limit"].fillna(""),
        "achieved": [flops_h(v) if f and f > 0 else DASH for v, f in zip(ranked["achieved_flops"], ranked["flops"])],
        "bytes/s": [bytes_h(v) + "/s" if b and b > 0 else DASH for v, b in zip(ranked["achieved_bytes"],
                                                                               ranked["bytes"])],
        "top op (share of the row)": [f"{op} ({percent_h(share)})" if isinstance(op, str) and op else DASH
                                      for op, share in zip(ranked.get("top_op", [None] * len(ranked)),
                                                           ranked.get("top_op_share", [None] * len(ranked)))]})


def side(r: Report, setting: str, a: pd.Series, b: pd.Series, rows: pd.DataFrame) -> None:
    rows_a, rows_b = rows[rows["name"] == a["name"]], rows[rows["name"] == b["name"]]
    table = side_by_side(rows_a, rows_b)
    title = f"{label(a)} vs {label(b)}"
    r.add("text", f"{setting}: {title}. B / A > 1: the row is slower in B. Rows only one side has (bf16's casts) "
                  "count 0 s on the other; the last row is the whole step.")
    r.table(f"side by side {a['name']} {b['name']}", table, f"side by side ({setting}): {title}",
            display=pd.DataFrame({"layer": table["layer"], "pass": table["pass"], "kind": table["kind"],
                                  "A": table["time_a_s"].map(seconds_h), "B": table["time_b_s"].map(seconds_h),
                                  "B - A": table["delta_s"].map(seconds_h),
                                  "B / A": table["ratio_b_over_a"].map(ratio_h)}))
    r.figure(f"parts {a['name']} {b['name']}", lambda ax: plots_profile.parts(
        {f"A: {label(a)}": time_by_part(rows_a), f"B: {label(b)}": time_by_part(rows_b)}, ax,
        title=f"Where the step's time goes ({setting})"))
