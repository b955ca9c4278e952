"""The time-to-accuracy suite driven through pytester at a tiny size (width 0.0625, 2 epochs, 3 seeds), its JSON
read back through `reports` (load, compare, history, the report's section), and its option errors."""

import copy
import json
import shutil
import statistics
from pathlib import Path

import pytest

from bench import conftest as plugin
from reports.compare import compare
from reports.history import history
from reports.load import load_bench
from reports.render import build, load_inputs
from reports.tta_tables import cases_display, curves, loop_cost, seeds_table
from vggcore.errors import UsageError

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY = ["--benchmark-only", "-p", "no:cacheprovider", "--vgg-modes=time_to_accuracy", "--vgg-devices=cpu",
        "--vgg-width=0.0625", "--vgg-tta-seeds=3", "--vgg-tta-epochs=2", "--vgg-target=40%",
        "--vgg-tta-recipe=init=xavier,dropout=0,augment=none,lr=0.05,schedule=constant"]
NAME = "test_time_to_accuracy[A_bn-digits-cpu-fp32-32px-w0.0625-b64-to40]"


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


def missed(b: dict) -> int:
    return sum(s != "reached" for s in b["extra_info"]["tta_status"])


def steady(data: dict, seconds: float) -> dict:
    """`data` with its case's rounds replaced by three steady ones around `seconds` (statistics to match)."""
    out = copy.deepcopy(data)
    b = out["benchmarks"][0]
    rounds = [seconds * 0.995, seconds, seconds * 1.005]
    b["extra_info"]["round_times"] = rounds
    b["stats"].update(min=rounds[0], max=rounds[2], mean=seconds, median=seconds, iqr=rounds[2] - rounds[0],
                      stddev=statistics.stdev(rounds), rounds=3)
    return out


def test_the_suite_times_tiny_cases_and_reports_read_them(suite, tmp_path):
    result = suite.runpytest_subprocess("bench", *TINY, "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)   # the step-time grid is not collected
    result.stdout.fnmatch_lines(["*time to accuracy*",
                                 "A_bn-digits-cpu-fp32-32px-w0.0625-b64-to40: olympic mean *, median * [[]*, *] "
                                 "(75.0% interval)*not converged, confirmed on test *, median test accuracy *%; *"])   # [[] is a literal [
    data = json.loads((suite.path / "out.json").read_text())
    (b,) = data["benchmarks"]
    assert b["name"] == NAME
    check_case(b)

    # load: one tidy row with the figures
    first = tmp_path / "a.json"
    first.write_text(json.dumps(steady(data, 1.0)))
    frame = load_bench([first])
    assert len(frame) == 1 and frame.loc[0, "mode"] == "time_to_accuracy" and frame.loc[0, "unstable"] == \
        (not b["extra_info"]["valid"])
    # compare (on rounds made steady: the verdict of these loaded-machine seconds is not what is tested here, but
    # that compare reads this benchmark's JSON): the same runs on both sides are ok; twice as slow is a regression.
    # Threshold 10%: compare's modelled between-run noise (3% a run) puts an A/A ratio's upper end near 1.086
    assert compare(first, first, 0.10)["verdict"].tolist() == (["inconclusive"] if missed(b) > 1 else ["ok"])
    slower = steady(data, 2.0)
    slower["datetime"] = "2099-01-01T00:00:00"
    second = tmp_path / "b.json"
    second.write_text(json.dumps(slower))
    assert compare(first, second, 0.10)["verdict"].tolist() == ["regression"]
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
    assert "A_bn fp32 b64 w0.0625" in md and "(75.0%)" in md and index.exists()
    for figure in ("tta_times", "tta_curves"):
        assert (tmp_path / "report" / "figures" / f"{figure}.png").stat().st_size > 0


def test_a_bad_option_is_a_one_line_usage_error(suite):
    result = suite.runpytest_subprocess("bench", "--benchmark-only", "-p", "no:cacheprovider",
                                        "--vgg-modes=time_to_accuracy", "--vgg-target=150%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: --vgg-target: '150%' is not an accuracy above chance (10% on digits, 10 classes) and at most "
            "100%; give it like 97% or 0.97") in result.stderr.lines


class Options:
    """What bench.conftest.tta_cases reads of a pytest.Config: --vgg-* options, None unless given (and
    --vgg-channels-last at its declared default)."""

    def __init__(self, **given):
        self.given = {"--vgg-channels-last": "off", **{f"--vgg-{k.replace('_', '-')}": v for k, v in given.items()}}

    def getoption(self, name):
        return self.given.get(name)


@pytest.mark.parametrize("option", plugin.TTA_ONLY)
def test_an_option_of_the_benchmark_without_its_mode_is_refused(option):
    with pytest.raises(UsageError) as err:
        plugin.tta_cases(Options(**{option: "1"}))
    assert str(err.value) == (f"--vgg-{option} is an option of the time-to-accuracy benchmark; add --vgg-modes "
                              "time_to_accuracy")
    assert plugin.tta_cases(Options(modes="train_step")) == []                      # nothing asked: no cases
    assert len(plugin.tta_cases(Options(modes="time_to_accuracy", devices="cpu"))) == 1
