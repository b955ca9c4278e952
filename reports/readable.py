"""Tables as people read them: every table of the report passes through `readable` on its way to Markdown and
HTML (`reports.document`), so a section may hand over a machine frame (`ci_low`, `rel_diff`, `p_adjusted`) and
the reader still sees "95% interval", "change vs baseline", "adjusted p". The CSVs keep the machine names.

What happens to a frame, in order:
- interval pairs (`ci_low` + `ci_high`, ...) become one "[low, high]" column, labelled with the level when the
  frame has a constant `alpha`;
- numbers get the unit their column has (bytes as MiB, p-values, signed changes, ratios as x), never scientific
  notation; missing values are an em dash;
- words of a verdict column (`decision`, `verdict`) carry a tone (good, bad, same, open) that HTML colours;
- a `Flag` cell (a short word such as "unstable" with its reason) becomes a numbered footnote, and in HTML the
  reason is also the hover text;
- context columns that are the same in every row (`test`, `correction`, `metric`, ...) leave the table for one
  line under its caption;
- headers come from `HEADERS`; a column it does not know is shown with spaces for underscores.
`split` then cuts a table too wide for a 1,400 px window into parts that repeat its key columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .format import DASH, bytes_h, flops_h, number_h, percent_h, ratio_h, seconds_h


@dataclass(frozen=True)
class Flag:
    """A short word in a table cell whose reason goes to a footnote (and the hover text in HTML)."""
    text: str     # what the cell shows, e.g. "unstable"
    reason: str   # why, in a sentence


@dataclass(frozen=True)
class Cell:
    text: str
    tone: str = ""      # "good", "bad", "same", "open" or "" (no colour)
    reason: str = ""    # a footnote's text, for a Flag


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    numeric: list[bool]                                 # right-aligned columns
    notes: list[str] = field(default_factory=list)      # "same in every row: ..." lines


# Machine column -> what a person reads. Interval pairs are named in INTERVALS, not here.
HEADERS = {
    # ablation effects (ablations.stats.effects / summarize / power)
    "n": "seeds", "n_ok": "finished", "n_failed": "failed", "n_diverged": "diverged", "std": "sd over seeds",
    "ci_method": "interval method", "diff": "difference vs baseline", "rel_diff": "change vs baseline",
    "p_value": "p", "p_adjusted": "adjusted p", "family": "compared with", "correction": "p adjustment",
    "min_effect": "smallest difference that matters", "alpha": "level (alpha)", "diverged_epoch": "diverged in epoch",
    "pooled_sd": "pooled sd", "sd_dof": "sd degrees of freedom", "seeds_now": "seeds now",
    "seeds_needed": "seeds needed", "alpha_per_comparison": "alpha per comparison",
    # ... seeds that did not train, the seeds the statistic uses, the look that decided (ablations.stats.frames)
    "n_not_trained": "did not train", "excess_failure_p": "p of more failures than baseline",
    "n_used": "seeds used", "mean_all": "mean of all finished", "diff_method": "difference by",
    "decided_by": "decided by", "n_used_baseline": "baseline seeds used", "baseline_mean": "baseline mean",
    "k_compared": "variant seeds not trained at its look",
    "k_compared_baseline": "baseline seeds not trained at its look",
    "look": "at look", "n_compared": "variant seeds compared", "n_compared_baseline": "baseline seeds compared",
    "seeds_needed_reason": "why that many seeds", "alpha_family": "family-wise alpha", "statistic": "statistic name",
    "rule": "look rule", "looks": "looks analysed",
    # benchmarks (reports.load.load_bench and reports.bench_tables)
    "batch_size": "batch", "image_size": "image size", "world_size": "ranks", "threads_per_rank": "threads per rank",
    "images_per_s": "images/s", "speedup": "speed-up", "scaling_efficiency": "scaling efficiency", "mfu": "MFU",
    "peak_memory_bytes": "peak memory", "activation_bytes": "saved for backward", "param_bytes": "parameters",
    "achieved_flops": "achieved", "peak_flops": "peak", "macs_per_image": "MACs per image",
    "speedup_vs_fp32": "speed-up over plain fp32", "vggcore": "vggcore images/s",
    "torchvision": "torchvision images/s", "ratio": "vggcore / torchvision", "unstable_reason": "why unstable",
    "paper_params_M": "paper: parameters (M)", "vggcore_params": "vggcore: parameters",
    "vggcore_params_M": "vggcore: parameters (M)", "vggcore_GMACs_224": "vggcore: GMACs at 224 px",
    "name": "case", "step_at_run": "step at run", "datetime": "date",
    # time to accuracy (bench/tta_stats.py's figures, reports.tta_tables); the median's interval is not merged
    # in INTERVALS: its level (93.75% at 5 seeds) is the frame's interval_confidence, not an alpha
    "olympic_mean_s": "olympic mean (s)", "median_s": "median time to target (s)",
    "tta_low_s": "median time: interval low (s)", "tta_high_s": "median time: interval high (s)",
    "interval_confidence": "interval level", "median_epochs": "epochs to target (median)",
    "not_converged": "not converged", "confirmed_runs": "confirmed on test", "valid_reason": "why invalid",
    "train_images_to_target": "images to target (median)", "max_epochs": "epoch cap",
    "warmup_epochs": "warm-up epochs", "weight_decay": "weight decay", "bn_recalibrate": "precise BN batches",
    "tta_seconds": "seconds to target", "tta_epochs": "epochs to target", "test_accuracy": "test accuracy",
    "median_test_accuracy": "test accuracy (median)",
    "optimizer": "SGD implementation",
    # test protocols (reports.sections.protocols, ablations.paired)
    "source": "scored by", "train_scale": "training scale S", "scales": "test scales Q", "views": "views per image",
    "top1_error": "top-1 error", "top5_error": "top-5 error", "n_pairs": "seeds paired",
    "n_seeds": "seeds with a run", "reference_mean": "reference mean", "paired_diff": "difference vs reference",
    # per-layer profiles (reports.profiles: the rows of vggcore.profile.rows, the totals, ops, side by side)
    "time_s": "time", "time_interval": "interval over the rounds", "flops": "FLOPs", "bytes": "bytes moved",
    "intensity": "FLOP per byte", "achieved_bytes": "achieved bytes/s", "bound_flops": "attainable",
    "bound_time_s": "least time the roofs allow", "share_of_bound": "share of the bound",
    "above_bound_s": "time above the bound", "limit": "bound by", "top_op": "top op",
    "top_op_share": "top op's share of the row", "share_of_step": "share of the step", "layer_index": "layer number",
    "order": "position in the step", "round_times_s": "time per round", "time_low_s": "time, low end",
    "time_high_s": "time, high end", "step_s": "step (unprofiled)", "step_low_s": "step, low end",
    "step_high_s": "step, high end", "profiled_step_s": "profiled step", "profiled_low_s": "profiled step, low end",
    "profiled_high_s": "profiled step, high end", "attributed_s": "rows sum", "unattributed_s": "unattributed",
    "attributed_gap": "rows vs step", "overhead": "profiling overhead", "coverage": "interval coverage",
    "reconciles": "rows add up", "perturbs": "profiling perturbs", "reasons": "read with care",
    "bandwidth": "bandwidth", "own_time_s": "own time per step", "rows": "rows it ran in",
    "time_a_s": "A", "time_b_s": "B", "delta_s": "B - A", "ratio_b_over_a": "B / A",
    "top_op_with_share": "top op (share of the row)",
}
# (low column, high column, header after the level): merged into one "[low, high]" column where `low` stood.
INTERVALS = [("ci_low", "ci_high", "interval"), ("diff_low", "diff_high", "interval of the difference"),
             ("median_low", "median_high", "interval of the median"),
             ("speedup_low", "speedup_high", "interval of the speed-up"), ("low", "high", "interval of the ratio"),
             ("not_trained_low", "not_trained_high", "interval of the did-not-train rate"),
             ("baseline_ci_low", "baseline_ci_high", "interval of the baseline mean"),
             ("rel_low", "rel_high", "Fieller interval of the change")]
# Columns that describe how a whole table was computed: when constant they move to a line under the caption.
CONTEXT = {"study", "metric", "test", "correction", "family", "alpha", "min_effect", "ci_method", "machine",
           "statistic", "rule", "looks", "alpha_family"}
# Words of a verdict column and the tone HTML gives them (reports.compare's verdicts beside the study decisions).
TONE_COLUMNS = {"decision", "verdict"}
TONES = {"better": "good", "faster": "good", "worse": "bad", "regression": "bad", "equivalent": "same",
         "ok": "same", "undecided": "open", "inconclusive": "open"}

LEVEL = 0.05        # the alpha an interval is labelled with when the frame does not say (ablations.stats.ALPHA)
BUDGET_PX = 1300    # widest table: a 1,400 px window less the page's margins and a scroll bar
FONT_PX = 13        # the tables' font size
PAD_PX = 18         # cell padding and border
WRAP_CHARS = 28     # longer cells wrap (their column is counted this wide)


def _signed(value) -> str:
    if pd.isna(value):
        return DASH
    text = _short(value, 3)
    return text if text.startswith("-") or float(value) == 0 else "+" + text


def _p(value) -> str:
    if pd.isna(value):
        return DASH
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3g}"


def _signed_percent(value) -> str:
    if pd.isna(value):
        return DASH
    return "0%" if float(value) == 0 else f"{100 * float(value):+.1f}%"


def _seeds(value) -> str:
    """Seeds needed: a count, or "> 10,000" past the planner's limit (it returns inf there)."""
    if pd.isna(value):
        return DASH
    return f"{float(value):,.0f}" if float(value) <= 10_000 else "> 10,000"


def _short(value, digits: int = 4) -> str:
    """`digits` significant figures without trailing zeros (0.025, 0.8975, 132.9); never scientific notation."""
    number = float(value)
    if number == 0 or 1e-4 <= abs(number) < 10 ** digits:
        return f"{number:,.{digits}g}"
    return number_h(number, digits)


def _per_second_bytes(value) -> str:
    return DASH if pd.isna(value) else bytes_h(value) + "/s"


FORMATS = {
    "p_value": _p, "p_adjusted": _p, "excess_failure_p": _p, "diff": _signed, "paired_diff": _signed,
    "seeds_needed": _seeds,
    "rel_diff": _signed_percent, "images_per_s": number_h, "vggcore": number_h, "torchvision": number_h,
    "ratio": ratio_h, "speedup": ratio_h, "speedup_vs_fp32": ratio_h, "mfu": percent_h,
    "peak_memory_bytes": bytes_h, "activation_bytes": bytes_h, "param_bytes": bytes_h,
    "predicted_peak_bytes": bytes_h, "achieved_flops": flops_h, "peak_flops": flops_h,
    "olympic_mean_s": seconds_h, "median_s": seconds_h, "tta_low_s": seconds_h, "tta_high_s": seconds_h,
    "tta_seconds": seconds_h, "test_accuracy": percent_h, "median_test_accuracy": percent_h,
    "interval_confidence": percent_h, "target": percent_h,
    # per-layer profiles
    **dict.fromkeys(["time_s", "time_low_s", "time_high_s", "bound_time_s", "above_bound_s", "step_s", "step_low_s",
                     "step_high_s", "profiled_step_s", "profiled_low_s", "profiled_high_s", "attributed_s",
                     "unattributed_s", "own_time_s", "time_a_s", "time_b_s", "delta_s"], seconds_h),
    "flops": lambda v: flops_h(v, per_second=False), "bytes": bytes_h, "bound_flops": flops_h,
    "achieved_bytes": _per_second_bytes, "bandwidth": _per_second_bytes, "intensity": lambda v: number_h(v, 3),
    "share_of_bound": percent_h, "share_of_step": percent_h, "top_op_share": percent_h, "coverage": percent_h,
    "attributed_gap": _signed_percent, "overhead": _signed_percent, "ratio_b_over_a": ratio_h,
}


def _plain(value) -> str:
    """Any other value: booleans as yes/no, whole numbers with thousands separators, others as `_short`."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and value != value):
        return DASH
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        if number != number:
            return DASH
        return f"{int(number):,}" if number.is_integer() and abs(number) < 1e15 else _short(number)
    return str(value)


def level_label(frame: pd.DataFrame) -> str:
    """"95%" for alpha 0.05: the frame's own constant alpha when it has one. Rows at levels of their own (the
    looks of --until-decided) get "" and each interval header says so."""
    alpha = LEVEL
    if "alpha" in frame and frame["alpha"].nunique(dropna=True) > 1:
        return ""
    if "alpha" in frame and frame["alpha"].nunique(dropna=True) == 1:
        alpha = float(frame["alpha"].dropna().iloc[0])
    return f"{(1 - alpha) * 100:.4g}%"



def _interval(low, high, fmt) -> str:
    if pd.isna(low) or pd.isna(high):
        return DASH
    if np.isinf(float(low)) or np.isinf(float(high)):   # a Fieller set that no finite interval holds
        return "unbounded"
    return f"[{fmt(low)}, {fmt(high)}]"


def _column_cells(name: str, values: pd.Series, frame: pd.DataFrame) -> list[Cell]:
    bench = "images_per_s" in frame
    fmt = FORMATS.get(name) or (seconds_h if bench and name == "median" else None)
    cells = []
    for v in values:
        if isinstance(v, Flag):
            cells.append(Cell(v.text, "", v.reason))
        elif isinstance(v, Cell):
            cells.append(v)
        elif fmt is not None and not isinstance(v, str):
            cells.append(Cell(fmt(v)))
        else:
            text = _plain(v)
            cells.append(Cell(text, TONES.get(text, "") if name in TONE_COLUMNS else ""))
    return cells


def readable(frame: pd.DataFrame) -> Table:
    """The table a person reads from `frame` (machine names or display text alike); see the module docstring."""
    level = level_label(frame)
    columns: list[tuple[str, list[Cell]]] = []
    merged = {hi: (lo, label) for lo, hi, label in INTERVALS if lo in frame and hi in frame}
    lows = {lo: (hi, label) for hi, (lo, label) in merged.items()}
    for name in frame.columns:
        if name in merged:
            continue
        if name in lows:
            hi, label = lows[name]
            point = {"ci_low": "mean", "diff_low": "diff", "median_low": "median", "speedup_low": "speedup",
                     "low": "ratio", "rel_low": "rel_diff"}
            fmt_name = point.get(name, "")
            bench = "images_per_s" in frame
            fmt = (FORMATS.get(fmt_name) or (seconds_h if bench and fmt_name == "median" else None)
                   or (lambda v: _short(v, 3)))
            cells = [Cell(_interval(lo, h, fmt)) for lo, h in zip(frame[name], frame[hi])]
            columns.append((f"{level} {label}" if level else f"{label} (at the row's level)", cells))
            continue
        columns.append((name, _column_cells(name, frame[name], frame)))
    notes = []
    if len(frame) > 1:
        kept = []
        for name, cells in columns:
            if name in CONTEXT and len({c.text for c in cells}) == 1:
                notes.append(f"{HEADERS.get(name, name.replace('_', ' '))} {cells[0].text}")
            else:
                kept.append((name, cells))
        columns = kept
    headers = [HEADERS.get(name, name.replace("_", " ")) for name, _ in columns]
    numeric = [all(_looks_numeric(c.text) for c in cells) and any(c.text != DASH for c in cells)
               for _, cells in columns]
    rows = [list(r) for r in zip(*(cells for _, cells in columns))] if columns else []
    return Table(headers, rows, numeric, [f"Same in every row: {'; '.join(notes)}."] if notes else [])


def _looks_numeric(text: str) -> bool:
    return text == DASH or (bool(text) and (text[0].isdigit() or text[0] in "+-[<") and not text[:1].isalpha())


# Glyph widths in em, on the wide side of common sans fonts (DejaVu Sans: digits 0.64, bold about 8% wider).
NARROW, WIDE = set(" .,:;[]()'|!ilIjft"), set("mwMW@%—")


def text_px(text: str, bold: bool = False) -> float:
    """Estimated rendered width of `text` at FONT_PX."""
    em = sum(0.36 if ch in NARROW else 0.95 if ch in WIDE else 0.74 if ch.isupper() else 0.64 for ch in text)
    return em * FONT_PX * (1.08 if bold else 1.0)


def column_px(header: str, cells: list[Cell]) -> float:
    """Estimated width of a column: its widest cell (a wrapping one counted WRAP_CHARS characters wide), or its
    header's longest word (headers wrap between words), plus padding."""
    cell = max([text_px(c.text[:WRAP_CHARS]) + (text_px("00") if c.reason else 0) for c in cells] or [0.0])
    word = max((text_px(w, bold=True) for w in header.split()), default=0.0)
    return max(cell, word) + PAD_PX


def wraps(cells: list[Cell]) -> bool:
    """Whether a column's cells are long enough to wrap (the others never break)."""
    return any(len(c.text) > WRAP_CHARS for c in cells)


def split(table: Table, budget: float = BUDGET_PX) -> list[Table]:
    """`table` as parts that each fit `budget` pixels; every part repeats the key columns (the fewest leading
    columns, at most 3, that tell the rows apart)."""
    widths = [column_px(h, [r[i] for r in table.rows]) for i, h in enumerate(table.headers)]
    if sum(widths) <= budget or len(widths) < 3:
        return [table]
    keys = 1
    while keys < min(3, len(widths) - 1) and len({tuple(c.text for c in r[:keys]) for r in table.rows}) < len(
            table.rows):
        keys += 1
    key_px, rest = sum(widths[:keys]), list(range(keys, len(widths)))

    def cut(cap: float) -> list[list[int]]:
        """Consecutive columns into parts of at most `cap` pixels, keys included (a column wider than that alone
        still gets a part)."""
        parts, current, used = [], [], key_px
        for i in rest:
            if current and used + widths[i] > cap:
                parts.append(current)
                current, used = [], key_px
            current.append(i)
            used += widths[i]
        return parts + [current]

    # As few parts as the budget allows, then as even as they can be: the narrowest cap that needs no more parts.
    fewest = len(cut(budget))
    low, high = key_px + max(widths[i] for i in rest), float(budget)
    while high - low > 1:
        mid = (low + high) / 2
        low, high = (mid, high) if len(cut(mid)) > fewest else (low, mid)
    parts = cut(high)
    out = []
    for n, cols in enumerate(parts):
        idx = list(range(keys)) + cols
        out.append(Table([table.headers[i] for i in idx], [[r[i] for i in idx] for r in table.rows],
                         [table.numeric[i] for i in idx], table.notes if n == 0 else []))
    return out
