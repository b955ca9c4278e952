"""The time-to-accuracy suite driven through pytester at a tiny size (width 0.125, 2 epochs, 3 seeds), its JSON
read back through `reports` (load, compare, history, the report's section), and its option errors."""

import copy
import json
import shutil
import statistics
from pathlib import Path

import pytest

from reports.compare import compare
from reports.history import history
from reports.load import load_bench
from reports.render import build, load_inputs
from reports.tta_tables import cases_display, curves, loop_cost, seeds_table

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY = ["--benchmark-only", "-p", "no:cacheprovider", "--vgg-modes=time_to_accuracy", "--vgg-devices=cpu",
        "--vgg-width=0.125", "--vgg-tta-seeds=3", "--vgg-tta-epochs=2", "--vgg-target=40%",
        "--vgg-tta-recipe=init=xavier,dropout=0,augment=none,lr=0.05,schedule=constant"]
NAME = "test_time_to_accuracy[A_bn-digits-cpu-fp32-32px-w0.125-b64-to40]"


@pytest.fixture
def suite(pytester, monkeypatch):
    shutil.copytree(BENCH, pytester.path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")   # a run's trajectory depends on the thread count
    return pytester


def check_case(b: dict) -> None:
    """The rules, read off the record: whatever each seed did, its figures agree with its curve."""
    info, target = b["extra_info"], 0.4
    assert info["mode"] == "time_to_accuracy" and info["seeds"] == 3 and info["max_epochs"] == 2
    assert b["stats"]["rounds"] == 3 and len(info["curves"]) == 3 and info["warmup"]["timed"] is False
    for status, seconds, epochs, elapsed, curve, rnd in zip(info["tta_status"], info["tta_seconds"],
                                                            info["tta_epochs"], info["tta_elapsed"], info["curves"],
                                                            info["round_times"]):
        accs = [p["val_accuracy"] for p in curve]
        assert [p["epoch"] for p in curve] == list(range(1, len(curve) + 1))
        assert all(a < b for a, b in zip([p["seconds"] for p in curve], [p["seconds"] for p in curve][1:]))
        if status == "reached":   # stopped at the first validation at the target, timed to its end
            assert accs[-1] >= target and all(a < target for a in accs[:-1])
            assert seconds == curve[-1]["seconds"] == elapsed == rnd and epochs == len(curve)
        else:                     # ran to the cap below the target
            assert status == "not reached" and seconds is None and epochs is None and len(curve) == 2
            assert all(a < target for a in accs) and rnd == elapsed == curve[-1]["seconds"]
    missed = sum(s != "reached" for s in info["tta_status"])
    assert info["not_converged"] == missed and info["valid"] == (missed <= 1)
    assert b["stats"]["median"] == pytest.approx(statistics.median(info["round_times"]))
    reached = sorted(t for t in info["tta_seconds"] if t is not None)
    if missed == 0:
        assert info["olympic_mean_s"] == pytest.approx(reached[1]) and info["median_s"] == pytest.approx(reached[1])
    assert info["interval_confidence"] == 0.75   # 3 seeds: min..max
    assert info["loop_cost"]["clock_s"] == pytest.approx(sum(info["tta_elapsed"]))
    assert info["train_images"] == [1257 * len(c) for c in info["curves"]]


def test_the_suite_times_tiny_cases_and_reports_read_them(suite, tmp_path):
    result = suite.runpytest_subprocess("bench", *TINY, "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)   # the step-time grid is not collected
    result.stdout.fnmatch_lines(["*time to accuracy*",
                                 "A_bn-digits-cpu-fp32-32px-w0.125-b64-to40: olympic mean *, median * [*, *] "
                                 "(75.0% interval)*not converged, confirmed on test *"])
    data = json.loads((suite.path / "out.json").read_text())
    (b,) = data["benchmarks"]
    assert b["name"] == NAME
    check_case(b)

    # load: one tidy row with the figures
    first = tmp_path / "a.json"
    first.write_text(json.dumps(data))
    frame = load_bench([first])
    assert len(frame) == 1 and frame.loc[0, "mode"] == "time_to_accuracy" and frame.loc[0, "unstable"] == \
        (not b["extra_info"]["valid"])
    # compare: the same runs on both sides are ok; twice as slow is a regression
    assert compare(first, first, 0.05)["verdict"].tolist() == ["ok"]
    slower = copy.deepcopy(data)
    slower["datetime"] = "2099-01-01T00:00:00"
    sb = slower["benchmarks"][0]
    sb["stats"] = {k: (v * 2 if k in ("min", "max", "mean", "median", "iqr", "stddev") else v)
                   for k, v in sb["stats"].items()}
    sb["extra_info"]["round_times"] = [t * 2 for t in sb["extra_info"]["round_times"]]
    second = tmp_path / "b.json"
    second.write_text(json.dumps(slower))
    assert compare(first, second, 0.05)["verdict"].tolist() == ["regression"]
    # history: the two runs of the case in time order
    hist = history(load_bench([first, second]))
    assert hist["run"].tolist() == [0, 1] and hist["name"].tolist() == [NAME, NAME]
    # the report: its own section, the case kept out of the step-time tables
    inputs = load_inputs([first, second])
    assert inputs.bench is None and len(inputs.tta) == 2
    shown = cases_display(inputs.tta.tail(1))
    assert shown.loc[shown.index[0], "not converged"] == f"{b['extra_info']['not_converged']} of 3"
    assert len(seeds_table(inputs.tta.tail(1))) == 3 and not curves(inputs.tta).empty
    assert not loop_cost(inputs.tta).empty
    index = build([first, second], out=tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Time to accuracy" in md and "## Benchmarks" not in md and "Time-to-accuracy history" in md
    assert "A_bn fp32 b64 w0.125" in md and "(75.0%)" in md and index.exists()
    for figure in ("tta_times", "tta_curves"):
        assert (tmp_path / "report" / "figures" / f"{figure}.png").stat().st_size > 0


@pytest.mark.parametrize("args,line", [
    (["--vgg-modes=time_to_accuracy", "--vgg-target=150%"],
     "ERROR: --vgg-target: '150%' is not an accuracy above chance (10% on digits, 10 classes) and at most 100%; "
     "give it like 97% or 0.97"),
    (["--vgg-tta-seeds=0"], "ERROR: --vgg-tta-seeds is an option of the time-to-accuracy benchmark; add "
                            "--vgg-modes time_to_accuracy"),
])
def test_bad_options_are_usage_errors(suite, args, line):
    result = suite.runpytest_subprocess("bench", "--benchmark-only", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert line in result.stderr.lines
