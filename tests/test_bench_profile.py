"""--vgg-profile and --vgg-optimizer, driven through pytester on tiny cases (width 0.125, 32x32, batch 2)."""

import json

import pytest

from bench.ab import describe, parse_against, twin
from bench.cases import BenchCase, OptionError, expand
from bench.profiling import PROFILE_FORMAT, ProfileOptions, available_rows, options_from
from vggcore import VGGConfig
from vggcore.model.summary import summary
from vggcore.errors import UserError
from vggcore.train.sgd import default_sgd

TINY = ["--benchmark-only", "-p", "no:cacheprovider", "--vgg-width=0.125", "--vgg-image-size=32",
        "--vgg-max-time=0.02", "--vgg-devices=cpu", "--vgg-batch-sizes=2", "--benchmark-json=out.json"]
ROUNDS = "--vgg-profile-rounds=2"


def run(suite, *args):
    result = suite.runpytest_subprocess("bench", *TINY, *args)
    path = suite.path / "out.json"
    return result, (json.loads(path.read_text()) if path.exists() else None)


def test_profile_rows_go_into_the_benchmark_json(suite):
    result, data = run(suite, "--vgg-profile", ROUNDS, "--vgg-archs=A", "--vgg-modes=forward,train_step")
    assert result.ret == 0, result.stdout.str()
    benches = {b["extra_info"]["mode"]: b for b in data["benchmarks"]}
    assert set(benches) == {"forward", "train_step"}
    layers = list(summary(VGGConfig("A", image_size=32, width=0.125), batch_size=2)["layer"])
    for mode, b in benches.items():
        info = b["extra_info"]
        profile = info["profile"]
        assert profile["format"] == PROFILE_FORMAT and b["name"] == f"test_vgg[{profile['case']}]"
        rows, totals = profile["rows"], profile["totals"]
        assert all(r["case"] == profile["case"] for r in rows)
        ops = [(r["layer"], r["pass"]) for r in rows if r["kind"] != "cast"]
        forward = [(n, "forward") for n in layers]
        if mode == "forward":
            assert ops == forward + [("unattributed", "step")]
        else:   # every module in order forward, the loss, every module in reverse backward, the optimizer
            assert ops == ([("zero_grad", "update")] + forward + [("loss", "forward"), ("loss", "backward")]
                           + [(n, "backward") for n in reversed(layers)] + [("optimizer", "update"),
                                                                            ("unattributed", "step")])
            assert totals["optimizer"] == f"SGD({default_sgd('cpu')})" and info["optimizer"] == default_sgd("cpu")
        assert [r["order"] for r in rows] == list(range(len(rows)))
        assert all(len(r["round_times_s"]) == 2 and r["time_low_s"] <= r["time_s"] <= r["time_high_s"]
                   for r in rows)
        # the totals: the rows (unattributed included) are the profiled step's rounds, nothing hidden
        assert sum(r["time_s"] for r in rows) == pytest.approx(totals["profiled_step_s"])
        assert totals["rounds"] == 2 and totals["timing"] == "host" and totals["mode"] == mode
        assert totals["benchmark_median_s"] == pytest.approx(b["stats"]["median"], rel=1e-6)
        # the roofs of the same run: the session's own peak, and a triad's bandwidth
        assert totals["peak_flops"] == info["peak_flops"] and totals["bandwidth"] > 1e8
        assert totals["bandwidth_method"].startswith("stream triad")
        assert isinstance(totals["reconciles"], bool) and isinstance(totals["reasons"], str)
        kernels = profile["kernels"]   # every op by own time, most first; they add up to the attributed rows
        assert [k["seconds"] for k in kernels] == sorted((k["seconds"] for k in kernels), reverse=True)
        # (two rounds: every median is a mean, so the two sums agree exactly)
        assert sum(k["seconds"] for k in kernels) == pytest.approx(totals["attributed_s"], rel=1e-6)
    assert "without a profile" not in result.stdout.str()


def test_layer_filter_a_case_it_does_not_fit_and_an_ab_of_two_optimizers(suite):
    """conv1x1 is a kind of C only: A keeps its benchmark, gets no profile and says why; C keeps the rows asked.
    In the same session (one start-up less) each case is also timed against itself with the fused SGD."""
    result, data = run(suite, "--vgg-profile-layers=conv1x1,optimizer", ROUNDS, "--vgg-archs=A,C",
                       "--vgg-modes=train_step", "--vgg-optimizer=for-loop", "--vgg-ab-against=optimizer=fused",
                       "-rs")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4)
    single = {b["extra_info"]["arch"]: b["extra_info"] for b in data["benchmarks"] if b["name"].startswith("test_vgg")}
    assert "profile" not in single["A"] and "'conv1x1' is no layer or kind" in single["A"]["profile_skipped"]
    assert single["A"]["images_per_s"] > 0                      # the benchmark itself still counts
    rows = single["C"]["profile"]["rows"]
    assert {r["kind"] for r in rows} == {"conv1x1", "optimizer"} and len(rows) == 3 * 2 + 1
    assert single["C"]["profile"]["totals"]["optimizer"] == "SGD(for-loop)"
    result.stdout.fnmatch_lines(["*benchmark cases without a profile*",
                                 "A-train_step-cpu-fp32-32px-w0.125-b2-sgd-for-loop-vggcore: layer filter: "
                                 "'conv1x1' is no*",
                                 "1 case(s) benchmarked without a per-layer profile."])
    # the optimizer A/B: for-loop against fused, step by step; A/B cases get no profile
    names = sorted(b["name"] for b in data["benchmarks"])
    assert names == [f"test_ab_interleaved[{arch}-train_step-cpu-fp32-32px-w0.125-b2-sgd-for-loop]" for arch in "AC"] \
        + [f"test_vgg[{arch}-train_step-cpu-fp32-32px-w0.125-b2-sgd-for-loop-vggcore]" for arch in "AC"]
    for ab in (b["extra_info"] for b in data["benchmarks"] if b["name"].startswith("test_ab")):
        assert ab["optimizer"] == "for-loop" and ab["against"] == "optimizer=fused" and ab["a_over_b_speed"] > 0
        assert "profile" not in ab


class Options:
    """A pytest config's getoption over a dict (the plugin's options default to None, pytest-benchmark's to False)."""

    def __init__(self, **values):
        self.values = {k.lstrip("-").replace("-", "_"): v for k, v in values.items()}

    def getoption(self, name, default=None):
        return self.values.get(name.lstrip("-").replace("-", "_"), default)


@pytest.mark.parametrize("options,message", [
    ({"--vgg-profile": True, "benchmark_disable": True}, "--vgg-profile needs timed rounds; it cannot run with "
                                                         "--benchmark-disable (drop one)"),
    ({"--vgg-profile-layers": "conv5x5"}, "--vgg-profile-layers: 'conv5x5' is no layer or kind of any profiled case; "
                                          "layers: features.0, .*; kinds: conv3x3, "),
    ({"--vgg-profile-layers": ","}, "--vgg-profile-layers: empty list"),
    ({"--vgg-profile-rounds": "0"}, "--vgg-profile-rounds: '0' is not a positive integer"),
    ({"--vgg-profile-rounds": "two"}, "--vgg-profile-rounds: 'two' is not a positive integer"),
    ({"--vgg-profile": True, "--vgg-world-sizes": "1"}, "--vgg-profile profiles the single-process grid"),
])
def test_bad_profile_options_are_option_errors(options, message):
    cases = expand({"devices": "cpu", "archs": "A", "modes": "train_step", "batch_sizes": "2"})
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options_from(Options(**options), cases)
    assert options_from(Options(), cases) == ProfileOptions(enabled=False)
    implied = options_from(Options(**{"--vgg-profile-rounds": "3"}), cases)
    assert implied.enabled and implied.rounds == 3 and implied.layers is None


def test_bad_optimizer_values_are_option_errors():
    with pytest.raises(OptionError, match="--vgg-optimizer: unknown value 'adam'; allowed: for-loop, foreach, fused"):
        expand({"devices": "cpu", "optimizer": "adam"})
    with pytest.raises(OptionError, match="--vgg-ab-against: optimizer='lbfgs' is not allowed; optimizer takes "
                                          "for-loop, foreach, fused"):
        parse_against("optimizer=lbfgs")


@pytest.mark.parametrize("args,message", [
    (["--vgg-profile", "--benchmark-disable"], "--vgg-profile needs timed rounds; it cannot run with "
                                               "--benchmark-disable*"),   # pytest-benchmark's own option
    (["--vgg-profile-layers=conv5x5"], "--vgg-profile-layers: 'conv5x5' is no layer or kind of any profiled case; "
                                       "layers: features.0, *; kinds: conv3x3, *"),
])
def test_bad_options_stop_the_session_as_usage_errors(suite, args, message):
    """End to end, two of the errors above: every UserError of the plugin's configure is a usage error."""
    only = [] if "--benchmark-disable" in args else ["--benchmark-only"]
    result = suite.runpytest_subprocess("bench", *only, "-p", "no:cacheprovider", "--vgg-archs=A", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "Traceback" not in result.stderr.str()


def test_filter_names_come_from_the_cases_models():
    cases = expand({"devices": "cpu", "archs": "A", "modes": "forward", "batch_sizes": "1", "dtypes": "bf16"})
    layers, kinds = available_rows(cases)
    assert layers[0] == "features.0" and "classifier.6" in layers and "unattributed" in layers
    assert "optimizer" not in layers and "loss" not in kinds        # forward: no loss, no optimizer step
    assert {"conv3x3", "relu", "maxpool", "linear", "dropout", "cast"} <= set(kinds)
    reference = expand({"devices": "cpu", "archs": "A", "modes": "forward", "batch_sizes": "1"}, reference=True)
    assert available_rows([c for c in reference if c.implementation == "torchvision"]) == ([], [])


# ---------------------------------------------------------------------------------------- the optimizer setting
def test_optimizer_expands_for_train_step_cases_only():
    cases = expand({"devices": "cpu", "archs": "A", "batch_sizes": "2", "optimizer": "for-loop,fused,for-loop"})
    by_mode = {}
    for c in cases:
        by_mode.setdefault(c.mode, []).append(c.optimizer)
    assert by_mode == {"forward": [""], "forward_backward": [""], "train_step": ["for-loop", "fused"]}
    ids = [c.id for c in cases if c.mode == "train_step"]
    assert ids == ["A-train_step-cpu-fp32-224px-w1-b2-sgd-for-loop-vggcore", "A-train_step-cpu-fp32-224px-w1-b2-sgd-"
                                                                             "fused-vggcore"]
    assert [c.group for c in cases if c.mode == "train_step"][1].endswith("width 1 SGD fused")
    default = expand({"devices": "cpu", "archs": "A", "batch_sizes": "2", "modes": "train_step"})
    # the device's default shows in no id, so the ids of runs from before the setting stay theirs
    assert [c.optimizer for c in default] == [default_sgd("cpu")]
    assert default[0].id == "A-train_step-cpu-fp32-224px-w1-b2-vggcore"
    with pytest.raises(OptionError, match="--vgg-optimizer: unknown value 'sgd'"):
        expand({"devices": "cpu", "optimizer": "sgd"})


def test_optimizer_is_an_ab_setting():
    against = parse_against("optimizer=fused")
    assert against == {"optimizer": "fused"} and describe(against) == "optimizer=fused"
    case = BenchCase(arch="A", mode="train_step", batch_size=2, image_size=32, width=0.125, device="cpu",
                     dtype="fp32", channels_last=False, compiled=False, implementation="vggcore")
    assert case.optimizer == default_sgd("cpu") and twin(case, against).optimizer == "fused"
    forward = BenchCase(arch="A", mode="forward", batch_size=2, image_size=32, width=0.125, device="cpu",
                        dtype="fp32", channels_last=False, compiled=False, implementation="vggcore")
    assert forward.optimizer == "" and forward.skip_reason() is None
    assert twin(forward, against).skip_reason() == ("optimizer=fused applies to train_step cases only; this case is "
                                                    "forward")
