"""The report's tables as people read them (reports.readable, reports.document): plain headers while the CSVs keep
the machine names, decisions as coloured words, stability as a footnoted flag, wide tables cut into parts."""

import json

import numpy as np
import pandas as pd
import pytest

from reports.document import Report, prepare
from reports.readable import BUDGET_PX, HEADERS, INTERVALS, Flag, column_px, readable, split
from reports.render import build


def test_machine_columns_get_plain_headers_and_intervals_are_merged():
    frame = pd.DataFrame({"variant": ["baseline", "x=1"], "mean": [0.1, 0.2], "ci_low": [0.05, 0.15],
                          "ci_high": [0.15, 0.25], "diff": [0.0, 0.1], "diff_low": [np.nan, 0.02],
                          "diff_high": [np.nan, 0.18], "rel_diff": [0.0, 1.0], "p_value": [np.nan, 0.0004],
                          "p_adjusted": [np.nan, 0.03], "decision": ["baseline", "worse"], "alpha": [0.05, 0.05],
                          "test": ["Welch t", "Welch t"]})
    table = readable(frame)
    assert table.headers == ["variant", "mean", "95% interval", "difference vs baseline",
                             "95% interval of the difference", "change vs baseline", "p", "adjusted p", "decision"]
    assert not any("_" in h for h in table.headers)
    x = {h: c for h, c in zip(table.headers, table.rows[1])}
    assert x["95% interval"].text == "[0.15, 0.25]" and x["95% interval of the difference"].text == "[+0.02, +0.18]"
    assert x["change vs baseline"].text == "+100.0%" and x["difference vs baseline"].text == "+0.1"
    assert x["p"].text == "< 0.001" and x["adjusted p"].text == "0.03"
    assert x["decision"].tone == "bad" and table.rows[0][-1].tone == ""   # the baseline gets no colour
    # columns that are the same in every row move to one line under the caption
    assert table.notes == ["Same in every row: level (alpha) 0.05; test Welch t."]


def test_every_machine_column_of_the_effects_and_benchmark_tables_reads_as_words_and_none_alike():
    from reports.load import BENCH_DEFAULTS, BENCH_EXTRA_KEYS
    from reports.sections.protocols import PAIRED_SHOWN, SHOWN
    from reports.sections.studies import EFFECTS_COLUMNS

    columns = list(dict.fromkeys([*EFFECTS_COLUMNS, *BENCH_EXTRA_KEYS, *BENCH_DEFAULTS, *SHOWN, *PAIRED_SHOWN,
                                  *HEADERS]))
    headers = readable(pd.DataFrame([{c: 1.0 for c in columns}])).headers
    assert not [h for h in headers if "_" in h]
    assert len(headers) == len(set(headers)), sorted(h for h in headers if headers.count(h) > 1)
    merged = {c for lo, hi, _ in INTERVALS for c in (lo, hi)} & set(columns)
    assert len(headers) == len(columns) - len(merged) // 2   # each interval pair is one column


def test_the_protocol_tables_columns_have_headers_of_their_own():
    """Not the fallback (underscores to spaces: "n pairs", "top1 error"): words a reader of the section knows."""
    from reports.sections.protocols import PAIRED_SHOWN, SHOWN

    merged = {c for lo, hi, _ in INTERVALS for c in (lo, hi)}
    assert [c for c in [*SHOWN, *PAIRED_SHOWN] if "_" in c and c not in HEADERS and c not in merged] == []
    frame = pd.DataFrame([{c: 0.5 for c in PAIRED_SHOWN}])
    assert readable(frame).headers[2:6] == ["seeds paired", "mean", "reference mean", "difference vs reference"]


def test_the_interval_level_follows_the_frames_alpha():
    frame = pd.DataFrame({"variant": ["a", "b"], "ci_low": [0.1, 0.2], "ci_high": [0.3, 0.4], "alpha": 0.025})
    assert readable(frame).headers[1] == "97.5% interval"


def test_unknown_columns_lose_their_underscores_and_numbers_their_scientific_notation():
    frame = pd.DataFrame({"some_new_column": [1.23e-7, 4.5e9], "count": [3.0, 12000.0]})
    table = readable(frame)
    assert table.headers == ["some new column", "count"]
    texts = [[c.text for c in row] for row in table.rows]
    assert all("e" not in t.lower() for row in texts for t in row), texts
    assert texts[1][1] == "12,000" and texts[0][1] == "3"


@pytest.mark.parametrize("word,tone", [("better", "good"), ("worse", "bad"), ("equivalent", "same"),
                                       ("undecided", "open"), ("regression", "bad"), ("faster", "good"),
                                       ("inconclusive", "open")])
def test_decision_words_carry_their_tone(word, tone):
    for column in ("decision", "verdict"):
        assert readable(pd.DataFrame({column: [word]})).rows[0][0].tone == tone
    assert readable(pd.DataFrame({"other": [word]})).rows[0][0].tone == ""   # only verdict columns are coloured


def test_a_wide_table_is_cut_into_parts_that_repeat_its_key_columns():
    wide = pd.DataFrame({"case": ["A forward", "A forward", "D forward"], "setting": ["fp32", "bf16", "fp32"],
                         **{f"figure_{i}": [1234.5678 + i, 2.0, 3.0] for i in range(40)}})
    parts = split(readable(wide))
    assert len(parts) > 1
    for part in parts:
        assert part.headers[:2] == ["case", "setting"]   # "case" alone does not tell the rows apart
        widths = [column_px(h, [r[i] for r in part.rows]) for i, h in enumerate(part.headers)]
        assert sum(widths) <= BUDGET_PX
    shown = [h for p in parts for h in p.headers[2:]]
    assert shown == [f"figure {i}" for i in range(40)]   # every column once, in order
    narrow = readable(wide.iloc[:, :5])
    assert split(narrow) == [narrow]


def render(tmp_path, frame, caption="t"):
    out = tmp_path / "rep"
    prepare(out)
    r = Report(out)
    r.table("t", frame, caption)
    return r, out


def test_a_flag_is_a_footnote_in_markdown_and_hover_text_in_html(tmp_path):
    reason = "rounds fall into two clusters, around 0.017 s and 0.26 s"
    frame = pd.DataFrame({"case": ["a", "b", "c"],
                          "stability": [Flag("unstable", reason), "stable", Flag("unstable", reason)]})
    r, _ = render(tmp_path, frame)
    md = r.markdown()
    assert md.count("unstable¹") == 2 and f"¹ {reason}" in md and "²" not in md   # one number per reason
    page = r.html("x")
    assert f'<span class="flag" title="{reason}">unstable<sup>1</sup></span>' in page
    assert f'<li value="1">{reason}</li>' in page


def test_the_csv_keeps_machine_names_and_raw_numbers(tmp_path):
    frame = pd.DataFrame({"variant": ["baseline", "x"], "ci_low": [0.1, 0.2], "ci_high": [0.3, 0.4],
                          "p_adjusted": [np.nan, 0.0001234], "decision": ["baseline", "better"]})
    r, out = render(tmp_path, frame)
    csv = pd.read_csv(out / "tables" / "t.csv")
    assert list(csv.columns) == list(frame.columns) and csv.loc[1, "p_adjusted"] == pytest.approx(0.0001234)
    page = r.html("x")
    assert "ci_low" not in page and "p_adjusted" not in page and "95% interval" in page
    assert '<span class="v good">better</span>' in page


def write_study(folder, errors):
    """A results folder of one study: variant -> test errors of its seeds (all runs ok)."""
    folder.mkdir()
    lines = []
    for variant, values in errors.items():
        for seed, err in enumerate(values):
            lines.append({"run_id": f"{variant}{seed}", "study": "s", "variant": variant, "seed": seed,
                          "levels": {"d": variant}, "status": "ok", "error": None,
                          "final": {"test_top1_error": err}, "history": [], "timing": {"seconds": 1.0},
                          "provenance": {}})
    (folder / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "study.json").write_text(json.dumps({"study": "s", "metric": "test_top1_error", "maximize": False}))
    return folder


def test_the_built_report_reads_plainly_and_colours_its_decisions(tmp_path):
    folder = write_study(tmp_path / "abl", {"baseline": [0.10, 0.11, 0.12], "d=off": [0.30, 0.31, 0.32]})
    index = build([], [folder], tmp_path / "rep")
    page, md = index.read_text(), index.with_name("report.md").read_text()
    for machine in ("ci_low", "diff_high", "rel_diff", "p_adjusted", "n_ok"):
        assert f">{machine}<" not in page and f"| {machine} " not in md, machine
        assert machine in (index.parent / "tables" / "effects_s.csv").read_text()   # the CSV keeps it
    assert "change vs baseline" in md and "95% interval" in md
    assert '<span class="v bad">worse</span>' in page
