"""Per-layer profiles (`pytest bench --vgg-profile`) out of the benchmark frame, as tidy frames, and the tables the
report draws from them. Pure functions of `reports.load.load_bench`'s frame, whose `profile` column holds each
case's record (bench/profiling.py: {"format", "case", "totals", "rows"}) and is None for cases (and files) without.

    rows   = profile_rows(bench)     # one row per case, layer, pass and part: CASE_COLUMNS + vggcore's row columns
    cases  = profile_cases(bench)    # one row per profiled case: CASE_COLUMNS + the totals and the roofs
    ops    = profile_kernels(bench)  # one row per case and op: its own time per step, most first
    where_time_goes(rows[rows["name"] == name])          # the rows losing most time to the roofs, ranked
    for setting, a, b in pairs(cases): side_by_side(rows_of(a), rows_of(b))

Row columns (vggcore.profile.rows.ProfileRow): order, layer_index, layer, kind, pass, time_s, time_low_s,
time_high_s, round_times_s, flops, bytes, intensity, achieved_flops, achieved_bytes, bound_flops, bound_time_s,
share_of_bound, above_bound_s, limit, dtype, top_op, top_op_share (the op with the most own time in the row and
its share; absent from profiles recorded before it was).
"""

from __future__ import annotations

import pandas as pd

from .load import ReportInputError

FORMATS = (1,)   # profile record formats this reader knows (bench.profiling.PROFILE_FORMAT)
# The benchmark case a profile belongs to, from the benchmark frame (not from the profile's own setting).
CASE_COLUMNS = ["name", "file", "arch", "mode", "device", "dtype", "channels_last", "compiled", "implementation",
                "batch_size", "image_size", "width", "head", "optimizer"]
# Two profiled cases are compared side by side when they differ in exactly one of these and agree on the rest.
PAIR_SETTINGS = {"dtype": "fp32", "channels_last": False}   # setting -> the value of the "A" side
SAME = ["arch", "mode", "device", "batch_size", "image_size", "width", "head", "implementation", "compiled",
        "optimizer"]
UNATTRIBUTED = "unattributed"
# How rows group into the parts of a step (kind, pass) -> part; the rest by kind.
ELEMENTWISE = ("bn", "relu", "lrn", "maxpool", "avgpool", "dropout", "flatten", "identity")
PART_ORDER = ["conv forward", "conv backward", "linear forward", "linear backward", "elementwise forward",
              "elementwise backward", "casts", "loss", "optimizer", "zero_grad", UNATTRIBUTED, "other"]


def _profiles(bench: pd.DataFrame) -> list[tuple[pd.Series, dict]]:
    if bench is None or "profile" not in bench:
        return []
    out = []
    for _, case in bench.iterrows():
        record = case["profile"]
        if not isinstance(record, dict):
            continue
        if record.get("format") not in FORMATS or not isinstance(record.get("rows"), list) \
                or not isinstance(record.get("totals"), dict):
            raise ReportInputError(f"{case['file']}: the profile of {case['name']} is of format "
                                   f"{record.get('format')!r} (this reader knows {', '.join(map(str, FORMATS))}); "
                                   "read it with the vggbench that wrote it")
        out.append((case, record))
    return out


def _case(case: pd.Series) -> dict:
    return {k: case.get(k) for k in CASE_COLUMNS}


def profile_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """Every profiled case's rows, in the order the step ran them (empty when no case was profiled)."""
    rows = [{**_case(case), **{k: v for k, v in row.items() if k != "case"}}
            for case, record in _profiles(bench) for row in record["rows"]]
    return pd.DataFrame(rows)


def profile_cases(bench: pd.DataFrame) -> pd.DataFrame:
    """One row per profiled case: the case, then the profile's totals and roofs (its own setting's fields that the
    case already names are left out, so `optimizer` is the benchmark's SGD implementation)."""
    rows = [{**_case(case), **{k: v for k, v in record["totals"].items() if k not in CASE_COLUMNS and k != "case"}}
            for case, record in _profiles(bench)]
    return pd.DataFrame(rows)


def profile_kernels(bench: pd.DataFrame) -> pd.DataFrame:
    """Every profiled case's ops by own time per step (op, seconds, share, rows), most first; profiles recorded
    before the ops were kept have none."""
    rows = [{"name": case["name"], **k} for case, record in _profiles(bench) for k in record.get("kernels") or []]
    return pd.DataFrame(rows, columns=["name", "op", "seconds", "share", "rows"])


def label(case) -> str:
    """'A train_step cpu bf16 channels_last 224px w1 b8 SGD foreach' for a row of `profile_cases`."""
    parts = [case["arch"], case["mode"], case["device"], case["dtype"],
             "channels_last" if case.get("channels_last") == True else "",  # noqa: E712 - numpy bools
             f"{int(case['image_size'])}px" if pd.notna(case.get("image_size")) else "",
             f"w{float(case['width']):g}" if pd.notna(case.get("width")) else "",
             f"b{int(case['batch_size'])}", f"SGD {case['optimizer']}" if case.get("optimizer") else ""]
    return " ".join(str(p) for p in parts if p)


def part(kind: str, pass_: str) -> str:
    """The part of the step a row belongs to: conv forward, conv backward, linear ..., elementwise, casts, ..."""
    if kind.startswith("conv") or kind == "linear":
        return f"{'conv' if kind.startswith('conv') else 'linear'} {pass_}"
    if kind in ELEMENTWISE:
        return f"elementwise {pass_}"
    return {"cast": "casts", "loss": "loss", "optimizer": "optimizer", "zero_grad": "zero_grad",
            UNATTRIBUTED: UNATTRIBUTED}.get(kind, "other")


def time_by_part(rows: pd.DataFrame) -> pd.Series:
    """Seconds of one profile per part of the step (`part`), in a fixed order; parts without rows are left out."""
    parts = rows.apply(lambda r: part(r["kind"], r["pass"]), axis=1)
    totals = rows.groupby(parts)["time_s"].sum()
    order = [p for p in PART_ORDER if p in totals.index] + [p for p in totals.index if p not in PART_ORDER]
    return totals[order]



def where_time_goes(rows: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """One profile's rows ranked by the time they spend above their roofline bound (time - least time the roofs
    allow), the `top` of them and one row for all the others; share_of_step is each row's part of the profiled
    step (the sum of every row, unattributed included)."""
    step = rows["time_s"].sum()
    ranked = rows.sort_values("above_bound_s", ascending=False, kind="stable")
    cols = ["layer", "kind", "pass", "time_s", "time_low_s", "time_high_s", "bound_time_s", "above_bound_s",
            "share_of_bound", "limit", "flops", "bytes", "achieved_flops", "achieved_bytes", "intensity", "top_op",
            "top_op_share"]
    cols = [c for c in cols if c in rows]   # top_op: rows of profiles taken before it was recorded lack it
    head = ranked.head(top)[cols].copy()
    rest = ranked.iloc[top:]
    if not rest.empty:
        head = pd.concat([head, pd.DataFrame([{
            "layer": f"{len(rest)} other rows", "kind": "", "pass": "", "time_s": rest["time_s"].sum(),
            "bound_time_s": rest["bound_time_s"].sum(), "above_bound_s": rest["above_bound_s"].sum()}])],
            ignore_index=True)
    head.insert(0, "rank", range(1, len(head) + 1))
    head.insert(5, "share_of_step", head["time_s"] / step if step > 0 else float("nan"))
    return head.reset_index(drop=True)


def pairs(cases: pd.DataFrame) -> list[tuple[str, pd.Series, pd.Series]]:
    """(setting, A, B) for every two profiled cases that differ in exactly one PAIR_SETTINGS setting and agree on
    SAME: fp32 against bf16 (or fp16), channels_last off against on; A holds the PAIR_SETTINGS value."""
    out = []
    if cases.empty:
        return out
    same = [c for c in SAME if c in cases]
    for setting, base in PAIR_SETTINGS.items():
        others = [s for s in PAIR_SETTINGS if s != setting]
        a_side = cases[cases[setting] == base]
        for _, a in a_side.iterrows():
            for _, b in cases[cases[setting] != base].iterrows():
                if all(_equal(a[c], b[c]) for c in same + others):
                    out.append((setting, a, b))
    return out


def _equal(x, y) -> bool:
    return (pd.isna(x) and pd.isna(y)) if (pd.isna(x) or pd.isna(y)) else x == y


def side_by_side(a: pd.DataFrame, b: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """Two profiles of one model row by row (layer, pass, kind): time in A and in B, B / A and B - A, ranked by
    the size of the difference; a row only one side has (bf16's casts) counts 0 s on the other; the last row is
    the whole step (every row summed)."""
    key = ["layer", "pass", "kind"]
    ta = a.groupby(key, sort=False)["time_s"].sum().rename("time_a_s")
    tb = b.groupby(key, sort=False)["time_s"].sum().rename("time_b_s")
    both = pd.concat([ta, tb], axis=1).fillna(0.0).reset_index()
    both["delta_s"] = both["time_b_s"] - both["time_a_s"]
    both["ratio_b_over_a"] = both["time_b_s"] / both["time_a_s"].where(both["time_a_s"] > 0)
    ranked = both.reindex(both["delta_s"].abs().sort_values(ascending=False, kind="stable").index).head(top)
    total = pd.DataFrame([{"layer": "whole step", "pass": "", "kind": "", "time_a_s": both["time_a_s"].sum(),
                           "time_b_s": both["time_b_s"].sum(), "delta_s": both["delta_s"].sum()}])
    total["ratio_b_over_a"] = total["time_b_s"] / total["time_a_s"]
    return pd.concat([ranked, total], ignore_index=True)
