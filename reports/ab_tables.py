"""The report's table of interleaved A/B comparisons (`pytest bench --vgg-ab` / `--vgg-ab-against`): a pure
function of the tidy bench frame (`reports.load.load_bench`), one row per A/B case, as docs/profile.md's A/B table
shows them: A's setting, what B changes, both medians and the speed of A over B with its 95% interval (the median
of per-round ratios, bench/sampling.ratio_sample)."""

from __future__ import annotations

import pandas as pd

from .bench_tables import setting_label, stability
from .format import seconds_h

COLUMNS = ["name", "arch", "mode", "device", "dtype", "batch_size", "image_size", "width", "optimizer", "against",
           "rounds", "a_median_s", "b_median_s", "a_over_b_speed", "a_over_b_speed_low", "a_over_b_speed_high",
           "unstable", "unstable_reason"]


def is_ab(bench: pd.DataFrame) -> pd.Series:
    """The rows of A/B cases (they carry the ratio) in a bench frame."""
    if "a_over_b_speed" not in bench:
        return pd.Series(False, index=bench.index)
    return bench["a_over_b_speed"].notna()


def ab_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """The A/B cases of a bench frame, in the table's order."""
    return bench[is_ab(bench)].sort_values(["arch", "mode", "batch_size", "against"]).reset_index(drop=True)


def ab_comparisons(rows: pd.DataFrame) -> pd.DataFrame:
    """`ab_rows`' raw figures (seconds, ratios) in COLUMNS' order (a column a file lacks: NaN)."""
    return rows.reindex(columns=COLUMNS)


def speed_h(ratio, low, high) -> str:
    """0.997x [0.879, 1.041], as docs/profile.md's A/B table writes it (and the suite's terminal summary)."""
    if ratio != ratio:
        return "—"
    return f"{ratio:.3f}x" if low != low else f"{ratio:.3f}x [{low:.3f}, {high:.3f}]"


def ab_display(rows: pd.DataFrame) -> pd.DataFrame:
    """`ab_rows` in units people read."""
    table, ab = ab_comparisons(rows), rows
    return pd.DataFrame({
        "case": [f"{a} {m}" for a, m in zip(table["arch"], table["mode"])],
        "A": [setting_label(r) + (f" {r['optimizer']}" if r.get("mode") == "train_step" else "")
              for _, r in ab.iterrows()],
        "B: A with": table["against"].astype(str),
        "A median": table["a_median_s"].map(seconds_h), "B median": table["b_median_s"].map(seconds_h),
        "speed of A over B [95%]": [speed_h(r, lo, hi) for r, lo, hi in
                                    zip(table["a_over_b_speed"], table["a_over_b_speed_low"],
                                        table["a_over_b_speed_high"])],
        "rounds per side": table["rounds"].map(lambda v: "—" if v != v else f"{int(v)}"),
        "stability": [stability(u, r) for u, r in zip(table["unstable"], table["unstable_reason"])]})
