"""The report's per-layer profile section, from a stored benchmark JSON with profiles (tests/fixtures/
bench_profile_9601c1b.json, written by `pytest bench --vgg-profile`), and its pure tables on hand-made frames."""

import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from reports import plots_profile
from reports.load import ReportInputError, load_bench
from reports.profiles import (pairs, part, profile_cases, profile_kernels, profile_rows, side_by_side, time_by_part,
                              where_time_goes)
from reports.render import build
from vggcore import VGGConfig
from vggcore.model.summary import summary

FIXTURES = Path(__file__).parent / "fixtures"
PROFILED = FIXTURES / "bench_profile_9601c1b.json"
OLD = FIXTURES / "bench_5687e3f.json"
LAYERS = list(summary(VGGConfig("A", image_size=32, width=0.125), batch_size=2)["layer"])


@pytest.fixture(scope="module")
def bench():
    return load_bench([PROFILED])


def test_rows_of_a_stored_run(bench):
    rows, cases = profile_rows(bench), profile_cases(bench)
    assert list(cases["dtype"]) == ["fp32", "bf16"] and set(cases["optimizer"]) == {"foreach"}
    assert (cases["bandwidth"] > 0).all() and (cases["peak_flops"] > 0).all()
    for name, g in rows.groupby("name", sort=False):
        ops = [(layer, p) for layer, p, kind in zip(g["layer"], g["pass"], g["kind"]) if kind != "cast"]
        assert ops == ([("zero_grad", "update")] + [(n, "forward") for n in LAYERS] + [("loss", "forward"),
                       ("loss", "backward")] + [(n, "backward") for n in reversed(LAYERS)]
                       + [("optimizer", "update"), ("unattributed", "step")]), name
        case = cases[cases["name"] == name].iloc[0]
        assert g["time_s"].sum() == pytest.approx(case["profiled_step_s"])
    assert (rows[rows["dtype"] == "bf16"]["kind"] == "cast").any()


KERNELS = [{"op": "aten::_slow_conv2d_forward", "seconds": 0.5, "share": 0.4, "rows": 8},
           {"op": "aten::add_", "seconds": 0.1, "share": 0.08, "rows": 1}]


def test_report_renders_a_roofline_from_the_stored_json(tmp_path):
    # one report for both: the stored file predates the ops list, so the bf16 case gets one here
    data = json.loads(PROFILED.read_text())
    data["benchmarks"][1]["extra_info"]["profile"]["kernels"] = KERNELS
    path = tmp_path / "with_ops.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "report"
    index = build([path], out=out)
    md = (out / "report.md").read_text()
    assert "## Where the time goes" in md and "### Two settings side by side" in md
    for dtype in ("fp32", "bf16"):
        stem = f"roofline_test_vgg_a_train_step_cpu_{dtype}_32px_w0_125_b2_vggcore"
        assert (out / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert f"figures/{stem}.png" in md
        assert (out / "tables" / f"where_the_time_goes_test_vgg_a_train_step_cpu_{dtype}_32px_w0_125_b2_"
                                 "vggcore.csv").exists()
    assert "Profile: A train_step cpu bf16 32px w0.125 b2 SGD foreach" in md
    assert len(list((out / "figures").glob("parts_*.png"))) == 1
    assert "Where the time goes" in index.read_text()
    # the ops, where recorded
    assert md.count("the ops the step's time goes to:") == 1
    assert "the ops the step's time goes to: A train_step cpu bf16" in md and "aten::_slow_conv2d_forward" in md
    # read as words (reports.readable), the CSVs keep the machine names
    section = md[md.index("## Where the time goes"):]
    for header in ("time above the bound", "least time the roofs allow", "interval over the rounds",
                   "share of the bound", "own time per step", "B / A", "profiling overhead", "interval coverage"):
        assert f" {header} " in section, header
    for machine in ("time_s", "above_bound_s", "bound_time_s", "share_of_bound", "ratio_b_over_a", "own_time_s"):
        assert machine not in section, machine
    csv = pd.read_csv(next((out / "tables").glob("where_the_time_goes_*bf16*.csv")))
    assert {"time_s", "time_low_s", "time_high_s", "above_bound_s", "bound_time_s"} <= set(csv.columns)


def test_every_profile_column_reads_as_words_and_none_alike():
    from dataclasses import fields

    from reports.load import BENCH_DEFAULTS, BENCH_EXTRA_KEYS
    from reports.readable import HEADERS, readable
    from reports.sections.studies import EFFECTS_COLUMNS
    from vggcore.profile.rows import ProfileRow, ProfileTotals

    profile = ([f.name for f in fields(ProfileRow)] + [f.name for f in fields(ProfileTotals)]
               + ["time_interval", "share_of_step", "own_time_s", "time_a_s", "time_b_s", "delta_s",
                  "ratio_b_over_a", "top_op_with_share", "bandwidth"])
    profile = ["pass" if c == "pass_" else c for c in profile]
    assert not [c for c in profile if c not in HEADERS and "_" in c]      # each has a header of its own
    columns = list(dict.fromkeys([*EFFECTS_COLUMNS, *BENCH_EXTRA_KEYS, *BENCH_DEFAULTS, *HEADERS, *profile]))
    headers = readable(pd.DataFrame([{c: 1.0 for c in columns if c not in {"ci_high", "diff_high",
                                                                           "median_high", "speedup_high",
                                                                           "high"}}])).headers
    assert not [h for h in headers if "_" in h]
    assert len(headers) == len(set(headers)), sorted(h for h in headers if headers.count(h) > 1)


def test_roofline_draws_both_roofs_and_one_point_per_flop_row(bench):
    rows = profile_rows(bench)
    case = profile_cases(bench).iloc[1]
    one = rows[rows["name"] == case["name"]]
    ax = plots_profile.roofline(one, case["peak_flops"], case["bandwidth"])
    roof = ax.lines[0]
    xs, ys = roof.get_xdata(), roof.get_ydata()
    assert max(ys) == pytest.approx(case["peak_flops"])                       # the compute roof
    assert ys[0] == pytest.approx(xs[0] * case["bandwidth"])                  # the bandwidth roof, below the ridge
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == ((one["flops"] > 0) & (one["time_s"] > 0)).sum()
    colours = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert len(colours) == 2                                                  # forward and backward
    panel = plots_profile.bandwidth_panel(one, case["bandwidth"])
    assert panel.lines[0].get_ydata()[0] == pytest.approx(case["bandwidth"])
    shown = sum(len(c.get_offsets()) for c in panel.collections)
    assert shown == ((one["flops"] == 0) & (one["bytes"] > 0) & (one["time_s"] > 0)).sum() > 0
    matplotlib.pyplot.close("all")


def rows_frame(times: dict, above: dict | None = None, bound: float = 0.0) -> pd.DataFrame:
    out = []
    for i, ((layer, pass_, kind), t) in enumerate(times.items()):
        a = (above or {}).get((layer, pass_, kind), t - bound)
        out.append({"order": i, "layer": layer, "pass": pass_, "kind": kind, "time_s": t, "bound_time_s": t - a,
                    "above_bound_s": a, "share_of_bound": None, "limit": "memory", "flops": 0, "bytes": 1,
                    "achieved_flops": 0.0, "achieved_bytes": 1 / t, "intensity": 0.0})
    return pd.DataFrame(out)


def test_where_time_goes_ranks_by_time_above_the_bound():
    rows = rows_frame({("a", "forward", "conv3x3"): 5.0, ("b", "forward", "relu"): 3.0,
                       ("c", "backward", "conv3x3"): 4.0, ("d", "update", "optimizer"): 1.0,
                       ("unattributed", "step", "unattributed"): 2.0},
                      above={("a", "forward", "conv3x3"): 1.0, ("c", "backward", "conv3x3"): 3.9})
    ranked = where_time_goes(rows, top=3)
    assert list(ranked["layer"]) == ["c", "b", "unattributed", "2 other rows"]
    assert list(ranked["rank"]) == [1, 2, 3, 4]
    assert ranked["time_s"].iloc[-1] == 6.0 and ranked["above_bound_s"].iloc[-1] == pytest.approx(1.0 + 1.0)
    assert ranked["share_of_step"].sum() == pytest.approx(1.0)


def test_pairs_are_one_setting_apart():
    base = dict(arch="A", mode="train_step", device="cpu", batch_size=8, image_size=224, width=1.0, head="paper",
                implementation="vggcore", compiled=False, optimizer="foreach")
    cases = pd.DataFrame([{**base, "name": "fp32", "dtype": "fp32", "channels_last": False},
                          {**base, "name": "bf16", "dtype": "bf16", "channels_last": False},
                          {**base, "name": "fp32-cl", "dtype": "fp32", "channels_last": True},
                          {**base, "name": "bf16-cl", "dtype": "bf16", "channels_last": True},
                          {**base, "name": "bf16-b4", "dtype": "bf16", "channels_last": False, "batch_size": 4},
                          {**base, "name": "bf16-fused", "dtype": "bf16", "channels_last": False,
                           "optimizer": "fused"}])
    found = {(setting, a["name"], b["name"]) for setting, a, b in pairs(cases)}
    assert found == {("dtype", "fp32", "bf16"), ("dtype", "fp32-cl", "bf16-cl"),
                     ("channels_last", "fp32", "fp32-cl"), ("channels_last", "bf16", "bf16-cl")}


def test_side_by_side_counts_a_row_one_side_lacks_as_zero():
    a = rows_frame({("f0", "forward", "conv3x3"): 2.0, ("opt", "update", "optimizer"): 1.0})
    b = rows_frame({("f0", "forward", "cast"): 0.7, ("f0", "forward", "conv3x3"): 6.0,
                    ("opt", "update", "optimizer"): 1.5})
    table = side_by_side(a, b)
    assert list(table["layer"]) == ["f0", "f0", "opt", "whole step"]
    conv = table.iloc[0]
    assert (conv["kind"], conv["time_a_s"], conv["time_b_s"], conv["delta_s"], conv["ratio_b_over_a"]) == \
        ("conv3x3", 2.0, 6.0, 4.0, 3.0)
    cast = table[table["kind"] == "cast"].iloc[0]
    assert cast["time_a_s"] == 0.0 and pd.isna(cast["ratio_b_over_a"])
    assert table.iloc[-1]["time_a_s"] == 3.0 and table.iloc[-1]["time_b_s"] == pytest.approx(8.2)
    parts = time_by_part(b)
    assert parts.to_dict() == {"conv forward": 6.0, "casts": 0.7, "optimizer": 1.5}
    assert part("bn", "backward") == "elementwise backward" and part("linear", "forward") == "linear forward"


def test_files_without_profiles_read_as_before(tmp_path):
    old = load_bench([OLD])
    assert old["profile"].isna().all() and set(old["optimizer"]) == {"auto"}
    assert profile_rows(old).empty and profile_cases(old).empty
    build([OLD], out=tmp_path)
    assert "Where the time goes" not in (tmp_path / "report.md").read_text()


def test_profiles_recorded_before_the_ops_list_have_none(bench):
    assert profile_kernels(bench).empty          # the stored file predates the ops list: no table, no error
    assert list(profile_kernels(bench).columns) == ["name", "op", "seconds", "share", "rows"]


def test_a_profile_of_an_unknown_format_is_a_clear_error(tmp_path):
    data = json.loads(PROFILED.read_text())
    data["benchmarks"][0]["extra_info"]["profile"]["format"] = 99
    path = tmp_path / "new.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportInputError, match=r"new.json: the profile of test_vgg\[A-train_step-cpu-fp32.* is of "
                                               r"format 99 \(this reader knows 1\)"):
        profile_rows(load_bench([path]))
