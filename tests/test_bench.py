"""The benchmark suite driven through pytester on a tiny grid (width 0.125, 32x32)."""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import conftest as plugin
from bench.cases import OptionError, expand
from vggcore import VGGConfig, build, totals
from vggcore.model.summary import summary

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY = ["--benchmark-only", "-p", "no:cacheprovider", "--vgg-width=0.125", "--vgg-image-size=32",
        "--vgg-max-time=0.02", "--vgg-devices=cpu"]
KEYS = {"arch", "mode", "batch_size", "image_size", "width", "device", "device_name", "dtype", "channels_last",
        "compiled", "implementation", "images_per_s", "macs_per_image", "achieved_flops", "peak_flops", "mfu",
        "peak_memory_bytes", "activation_bytes", "param_bytes", "torch_version", "threads"}


class ParsedOptions:
    """What pytest_configure reads of a pytest.Config: the plugin's options at their declared defaults (read from
    its own pytest_addoption) with some overridden, and a stash."""

    def __init__(self, values):
        self.defaults = {}
        plugin.pytest_addoption(self)
        unknown = set(values) - set(self.defaults)
        assert not unknown, unknown
        self.values = {**self.defaults, **values}
        self.stash = pytest.Stash()

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, name, *args, default=None, **kwargs):
        self.defaults[name] = default

    def getoption(self, name):
        return self.values[name]


def run(suite, *args):
    result = suite.runpytest_subprocess("bench", *TINY, *args)
    data = json.loads((suite.path / "out.json").read_text()) if (suite.path / "out.json").exists() else None
    return result, data


def test_tiny_grid_records_every_figure(suite):
    result, data = run(suite, "--vgg-archs=A,C_bn", "--vgg-batch-sizes=2", "--vgg-dtypes=fp32,bf16,fp16",
                       "--vgg-reference", "--benchmark-json=out.json", "-rs")
    assert result.ret == 0
    # 2 archs x 3 modes x 3 dtypes x 2 implementations; fp16 on CPU and every torchvision case at width 0.125
    # are skipped, each with its reason
    result.assert_outcomes(passed=12, skipped=24)
    for reason in ("fp16 autocast on CPU", "torchvision's VGG has fixed widths", "torchvision has no configuration C"):
        result.stdout.fnmatch_lines([f"SKIPPED*{reason}*"])
    unstable = [b["name"] for b in data["benchmarks"] if b["extra_info"]["unstable"]]
    if unstable:  # the summary names each unstable case and what to do (0.02 s per case is meant to be noisy)
        result.stdout.fnmatch_lines(["*unstable benchmark cases*", "*unstable case(s): give it more time*"])
    benches = data["benchmarks"]
    assert len(benches) == 12
    for b in benches:
        info = b["extra_info"]
        assert KEYS <= set(info), KEYS - set(info)
        assert info["implementation"] == "vggcore" and info["dtype"] in ("fp32", "bf16")
        assert info["images_per_s"] == pytest.approx(info["batch_size"] / b["stats"]["median"], rel=1e-3)
        assert info["timed"] is True and len(info["round_times"]) == b["stats"]["rounds"] == info["rounds"] >= 6
        assert info["median_low"] <= b["stats"]["median"] <= info["median_high"]
        assert info["stop_reason"] in ("precision", "time budget") and isinstance(info["unstable"], bool)
        assert bool(info["unstable_reason"]) == info["unstable"]
        assert info["achieved_flops"] > 0 and 0 < info["mfu"] < 1.5
        assert info["peak_flops"] == max(info["peak_flops_matmul"], info["peak_flops_conv"]) > 1e9
        assert info["peak_memory_bytes"] >= 0 and info["threads"] >= 1
        config = VGGConfig(arch=info["arch"], image_size=32, width=0.125)
        assert info["macs_per_image"] == totals(summary(config))["macs"]
        assert info["param_bytes"] == totals(summary(config))["params"] * 4
        if info["mode"] == "forward":
            assert info["activation_bytes"] == 0
        elif info["dtype"] == "fp32":  # the hooks' count equals the analytic one
            assert info["activation_bytes"] == totals(summary(config, batch_size=2))["saved_bytes"]
        assert b["group"] == f"{info['arch']} {info['mode']} cpu {info['dtype']} 32px width 0.125"


def counted_macs(model, size):
    """Multiply-accumulates of one forward of one image, measured (FlopCounterMode counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() // 2


@pytest.fixture(scope="module")
def full_width_a_beside_torchvision(tmp_path_factory):
    """One session for two tests: full-width VGG-A at batch 1 beside torchvision's (--vgg-reference), and the
    same pair timed round by round (--vgg-ab). Returns its exit code, its output and its JSON."""
    folder = tmp_path_factory.mktemp("ab")
    shutil.copytree(BENCH, folder / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pytest", "bench", *TINY, "--vgg-archs=A", "--vgg-width=1",
                           "--vgg-modes=forward", "--vgg-batch-sizes=1", "--vgg-reference", "--vgg-ab",
                           "--benchmark-json=out.json"], cwd=folder, capture_output=True, text=True, timeout=600)
    data = json.loads((folder / "out.json").read_text()) if (folder / "out.json").exists() else None
    return done.returncode, done.stdout + done.stderr, data


def test_torchvision_reference_side_by_side(full_width_a_beside_torchvision):
    code, output, data = full_width_a_beside_torchvision
    assert code == 0, output[-3000:]
    impls = {b["extra_info"]["implementation"]: b for b in data["benchmarks"] if b["name"].startswith("test_vgg[")}
    assert set(impls) == {"vggcore", "torchvision"}
    assert impls["vggcore"]["group"] == impls["torchvision"]["group"]
    # each recorded count equals what torch's FLOP counter measures on that implementation's own network; at
    # 32px they differ: torchvision's AdaptiveAvgPool2d((7, 7)) feeds fc6 a 49-times wider input
    import torchvision

    for impl, model in (("vggcore", build("A", image_size=32)), ("torchvision", torchvision.models.vgg11())):
        assert impls[impl]["extra_info"]["macs_per_image"] == counted_macs(model.eval(), 32), impl
    # each is the cost of the model that was timed: at 32 px torchvision's AdaptiveAvgPool2d((7, 7)) feeds a
    # 25088-wide fc6, vggcore's paper head a 512-wide one
    assert impls["vggcore"]["extra_info"]["macs_per_image"] == totals(summary(VGGConfig(arch="A", image_size=32)))["macs"]
    assert impls["torchvision"]["extra_info"]["macs_per_image"] == totals(
        summary(VGGConfig(arch="A", image_size=32, head="torchvision")))["macs"] == 276_398_080


OOM_PLUGIN = """
import torch
import bench.runner

real_call = bench.runner.Step.__call__

def fake_oom(self):
    if self.case.batch_size == 4:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB (simulated)")
    return real_call(self)

bench.runner.Step.__call__ = fake_oom
"""


def test_out_of_memory_case_is_skipped_and_session_goes_on(suite, monkeypatch):
    suite.makepyfile(oom_plugin=OOM_PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    result, data = run(suite, "-p", "oom_plugin", "--vgg-archs=A", "--vgg-modes=forward,train_step",
                       "--vgg-batch-sizes=2,4", "--benchmark-json=out.json", "-rs")
    assert result.ret == 0
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*out of memory on cpu at batch 4*"])
    assert sorted(b["extra_info"]["batch_size"] for b in data["benchmarks"]) == [2, 2]


SLOW_PLUGIN = """
import os
import time

import bench.runner

real_call = bench.runner.Step.__call__

def slow_call(self):
    time.sleep(float(os.environ["PLANTED_DELAY_S"]))  # a planted regression: every step this much slower
    return real_call(self)

bench.runner.Step.__call__ = slow_call
"""


@pytest.mark.slow
def test_autosave_and_compare_fail(suite, monkeypatch):
    """A regression planted between two saved runs fails --benchmark-compare-fail; the same slow run without
    the flag, and an unchanged run with it, pass."""
    suite.makepyfile(slow_plugin=SLOW_PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    args = ("-p", "slow_plugin", "--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=1")
    monkeypatch.setenv("PLANTED_DELAY_S", "0")
    first, _ = run(suite, *args, "--benchmark-autosave")
    assert first.ret == 0 and len(list((suite.path / ".benchmarks").rglob("*.json"))) == 1
    # "median:0.3" (seconds): fail when the median step is 0.3 s slower than the saved run's. The tiny step
    # takes milliseconds, but on a loaded 2-core machine an unchanged run's median was seen 0.17 s higher.
    fail_on = "--benchmark-compare-fail=median:0.3"
    same, _ = run(suite, *args, "--benchmark-compare", fail_on)
    assert same.ret == 0, same.stdout.str()
    assert "Performance has regressed" not in same.stdout.str() + same.stderr.str()
    monkeypatch.setenv("PLANTED_DELAY_S", "0.6")
    unchecked, _ = run(suite, *args, "--benchmark-compare")
    assert unchecked.ret == 0  # compared and shown side by side, but no failure asked for
    unchecked.stdout.fnmatch_lines(["*test_vgg*(0001*", "*test_vgg*(NOW)*"])
    slower, _ = run(suite, *args, "--benchmark-compare", fail_on)
    assert slower.ret not in (0, pytest.ExitCode.USAGE_ERROR)
    text = slower.stdout.str() + slower.stderr.str()
    assert "Performance has regressed" in text
    assert "Field 'median' has failed DifferenceRegressionCheck" in text




def test_unavailable_device_is_a_usage_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(OptionError, match="--vgg-devices: 'cuda' is not available on this machine; available: cpu"):
        expand({"devices": "cuda"})


def test_grids_expand():
    quick = expand({"devices": "cpu"}, reference=True)
    assert {c.arch for c in quick} == {"A", "D"} and {c.dtype for c in quick} == {"fp32"}
    assert len(quick) == 2 * 3 * 2 * 2
    full = expand({"devices": "cpu", "grid": "full"})
    assert {c.arch for c in full} == {"A", "A-LRN", "B", "C", "D", "E"}
    assert {c.dtype for c in full} == {"fp32", "bf16", "fp16"}
    assert len({c.id for c in full}) == len(full)
    both = expand({"devices": "cpu", "archs": "A", "modes": "forward", "batch_sizes": "1"},
                  channels_last=[False, True], compiled=[False, True])
    assert {(c.channels_last, c.compiled) for c in both} == {(False, False), (False, True), (True, False), (True, True)}


def test_interleaved_ab_comparison(full_width_a_beside_torchvision):
    code, output, data = full_width_a_beside_torchvision
    assert code == 0, output[-3000:]
    ab = [b for b in data["benchmarks"] if b["name"].startswith("test_ab_interleaved")]
    assert len(ab) == 1
    info = ab[0]["extra_info"]
    assert info["vggcore_median_s"] > 0 and info["torchvision_median_s"] > 0
    ratios = sorted(b / a for a, b in zip(info["a_round_times"], info["b_round_times"]))
    assert info["vggcore_over_torchvision_speed"] == info["a_over_b_speed"] == pytest.approx(
        (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2)  # the median of per-round ratios
    assert info["a_over_b_speed_low"] <= info["a_over_b_speed"] <= info["a_over_b_speed_high"]
    assert info["rounds"] >= 6 and ab[0]["stats"]["rounds"] == info["rounds"]
    assert ab[0]["group"].endswith("A/B against implementation=torchvision")


def test_ab_against_another_setting(suite):
    result, data = run(suite, "--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=2",
                       "--vgg-ab-against=channels_last=on", "--benchmark-json=out.json")
    assert result.ret == 0
    ab = [b for b in data["benchmarks"] if b["name"].startswith("test_ab_interleaved")]
    assert len(ab) == 1 and ab[0]["extra_info"]["against"] == "channels_last=on"
    assert ab[0]["extra_info"]["a_over_b_speed"] > 0 and "vggcore_median_s" not in ab[0]["extra_info"]


DUMP_EXTRA_PLUGIN = """
import json
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    bench = item.funcargs.get("benchmark")
    if bench is not None:
        with open("extra.jsonl", "a") as f:
            f.write(json.dumps(bench.extra_info) + "\\n")
"""


def test_benchmark_disable_records_no_throughput(suite, monkeypatch):
    """--benchmark-disable runs each step once, untimed: no figure may pose as a measured throughput."""
    suite.makepyfile(dump_plugin=DUMP_EXTRA_PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    no_only = [a for a in TINY if a != "--benchmark-only"]  # --benchmark-only and --benchmark-disable clash
    result = suite.runpytest_subprocess("bench", *no_only, "-p", "dump_plugin", "--benchmark-disable",
                                        "--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=1")
    assert result.ret == 0
    infos = [json.loads(line) for line in (suite.path / "extra.jsonl").read_text().splitlines()]
    assert len(infos) == 1
    info = infos[0]
    assert info.get("timed") is False
    for key in ("images_per_s", "achieved_flops", "mfu", "median_low", "round_times"):
        assert info.get(key) is None, key
    assert info["macs_per_image"] > 0  # what is not a timing is still recorded


@pytest.mark.parametrize("option,message", [
    ("--vgg-archs=A,vgg17", "--vgg-archs: unknown architecture 'vgg17'; valid names: A, A-LRN"),
    ("--vgg-dtypes=fp64", "--vgg-dtypes: unknown value 'fp64'; allowed: fp32, bf16, fp16"),
    ("--vgg-modes=backward", "--vgg-modes: unknown value 'backward'; allowed: forward, forward_backward, train_step"),
    ("--vgg-devices=tpu", "--vgg-devices: unknown value 'tpu'; allowed: cpu, cuda, mps"),
    ("--vgg-batch-sizes=2,0", "--vgg-batch-sizes: '0' is not a positive integer"),
    ("--vgg-batch-sizes=two", "--vgg-batch-sizes: 'two' is not a positive integer"),
    ("--vgg-image-size=48", "--vgg-image-size: 48 is not a multiple of 32*"),
    ("--vgg-grid=huge", "--vgg-grid: unknown value 'huge'; allowed: quick, full"),
    ("--vgg-channels-last=yes", "--vgg-channels-last: unknown value 'yes'; allowed: off, on"),
    ("--vgg-width=inf", "--vgg-width: 'inf': width must be a finite number in (0, 64], got inf"),
    ("--vgg-memory-limit=lots", "--vgg-memory-limit: 'lots' is not a size; allowed: a number with an optional unit*"),
    ("--vgg-max-time=nan", "--vgg-max-time: 'nan': max_time must be a finite number > 0, got nan (seconds of timed*"),
    ("--vgg-max-time=-5", "--vgg-max-time: '-5': max_time must be a finite number > 0, got -5.0*"),
    ("--vgg-max-time=inf", "--vgg-max-time: 'inf': max_time must be a finite number > 0, got inf*"),
    ("--vgg-max-time=soon", "--vgg-max-time: 'soon' is not a number (seconds of timed rounds per case)"),
    ("--vgg-precision=0", "--vgg-precision: '0': precision must be a finite number in (0, 1), got 0.0 (a fraction*"),
    ("--vgg-precision=-2%", "--vgg-precision: '-2%': precision must be a finite number in (0, 1), got -0.02*"),
    ("--vgg-precision=nan", "--vgg-precision: 'nan': precision must be a finite number in (0, 1), got nan*"),
    ("--vgg-precision=tight", "--vgg-precision: 'tight' is not a number (a fraction: 0.02 or 2%)"),
    ("--vgg-precision=150%", "--vgg-precision: '150%': precision must be a finite number in (0, 1), got 1.5*"),
    ("--vgg-world-sizes=1,0", "--vgg-world-sizes: '0' is not a positive integer"),
    ("--vgg-ab-against=dtype=fp64", "--vgg-ab-against: dtype='fp64' is not allowed; dtype takes fp32, bf16, fp16"),
])
def test_bad_options_are_usage_errors(option, message):
    """The plugin's pytest_configure, called on the options as pytest parsed them, refuses each bad value with
    its one line (in this process: a pytest subprocess per value cost a minute of suite time)."""
    name, value = option.split("=", 1)
    with pytest.raises(pytest.UsageError) as refused:
        plugin.pytest_configure(ParsedOptions({name: value}))
    assert fnmatch.fnmatch(str(refused.value), f"*{message}*"), str(refused.value)


@pytest.mark.parametrize("option,line", [
    ("--vgg-archs=A,vgg17", "*--vgg-archs: unknown architecture 'vgg17'*"),
    ("--vgg-ab-against=dtype=fp64", "*--vgg-ab-against: dtype='fp64' is not allowed; dtype takes fp32, bf16, fp16*"),
])
def test_a_bad_option_ends_pytest_with_one_line(suite, option, line):
    """End to end, a pytest session per value (the list above checks every option's message in this process):
    a bad grid value and a bad A/B setting, two parsers."""
    result = suite.runpytest_subprocess("bench", "--benchmark-only", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("variable,value", [("VGGBENCH_PEAK_CALL_S", "soon"), ("VGGBENCH_TRIAD_BYTES", "lots")])
def test_a_bad_measurement_setting_is_a_usage_error_before_any_case(monkeypatch, variable, value):
    """The environment settings of the peak and the bandwidth roof are read when the session starts: a bad value
    is the plugin's one line, not a traceback in a fixture after cases have run."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(pytest.UsageError, match=f"{variable}='{value}': expected"):
        plugin.pytest_configure(ParsedOptions({}))


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_reference_cost_is_of_the_model_timed(mode):
    """At 32 px with vggcore's gap head, torchvision's cost is still its own (AdaptiveAvgPool2d((7, 7)) feeding a
    25088-wide fc6): the counted MACs and FLOPs equal torch.utils.flop_counter's count of torchvision's model."""
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    from bench.cases import BenchCase
    from bench.runner import Step, flops_per_image, make_model

    for impl in ("torchvision", "vggcore"):
        case = BenchCase(arch="A", mode=mode, batch_size=2, image_size=32, width=1.0, device="cpu", dtype="fp32",
                         channels_last=False, compiled=False, implementation=impl, head="gap")
        model = make_model(case)
        if impl == "torchvision":
            assert isinstance(model, torchvision.models.VGG)
        step = Step(case, model)
        with FlopCounterMode(display=False) as counter:
            step.forward_loss().backward() if mode != "forward" else step.runner(step.x)
        counted = counter.get_total_flops() / case.batch_size
        macs, flops = flops_per_image(case)
        assert flops == counted, impl
        if impl == "torchvision":
            assert macs == pytest.approx(276.4e6, rel=1e-3)
        else:  # global average pooling: a 512-wide fc6, far cheaper
            assert macs == totals(summary(VGGConfig(arch="A", image_size=32, head="gap")))["macs"] < 200e6


@pytest.mark.slow
def test_data_parallel_scaling_suite(suite):
    import os

    too_many = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) + 1
    result, data = run(suite, f"--vgg-world-sizes=2,1,{too_many}", "--vgg-archs=A", "--vgg-batch-sizes=2",
                       "--benchmark-json=out.json", "-rs")
    assert result.ret == 0
    result.assert_outcomes(passed=2, skipped=1)  # the single-process grid does not run beside it
    result.stdout.fnmatch_lines([f"SKIPPED*world size {too_many} needs {too_many} CPU cores (one per rank); "
                                 f"this machine has {too_many - 1}*"])
    infos = {b["extra_info"]["world_size"]: b["extra_info"] for b in data["benchmarks"]}
    benches = {b["extra_info"]["world_size"]: b for b in data["benchmarks"]}
    assert set(infos) == {1, 2}
    for n, info in infos.items():
        assert info["mode"] == "ddp_train_step" and info["backend"] == "gloo" and info["batch_size"] == 2
        assert info["threads_per_rank"] == max(1, (too_many - 1) // n)
        assert info["images_per_s"] > 0
        # sampled by bench.sampling's adaptive rule, as the single-process grid: at least 6 rounds
        assert info["rounds"] >= 6 and len(info["round_times"]) == info["rounds"] == benches[n]["stats"]["rounds"]
        assert info["stop_reason"] in ("precision", "time budget") and isinstance(info["unstable"], bool)
    one, two = infos[1]["images_per_s"], infos[2]["images_per_s"]
    assert infos[1]["scaling_efficiency"] == pytest.approx(1.0, abs=1e-3)
    assert infos[2]["scaling_efficiency"] == pytest.approx(two / (2 * one), rel=1e-3)


@pytest.mark.parametrize("width", ["inf", "nan", "-1", "0", "1e9"])
def test_impossible_width_is_an_option_error(width):
    with pytest.raises(OptionError, match=f"--vgg-width: '{width}': width must be a finite number in \\(0, 64\\]"):
        expand({"devices": "cpu", "width": width})


def test_memory_limit_parsing():
    from bench.memory_guard import parse_limit

    assert parse_limit(None).mode == "auto" and parse_limit("off").mode == "off"
    assert parse_limit("8GiB").bytes == 8 * 2 ** 30 and parse_limit("500MB").bytes == 500 * 10 ** 6
    assert parse_limit("1.5G").bytes == int(1.5 * 2 ** 30) and parse_limit("123").bytes == 123
    for bad in ("", "-1GB", "nan", "inf", "8 parsecs", "0"):
        with pytest.raises(OptionError, match="--vgg-memory-limit"):
            parse_limit(bad)


def test_memory_guard_budget_from_free_memory(monkeypatch):
    """The issue's scenario (batch 100000 at 32px, width 0.125, forward) on a machine with 8 GiB free."""
    from bench import memory_guard
    from bench.cases import BenchCase

    case = BenchCase("A", "forward", 100_000, 32, 0.125, "cpu", "fp32", False, False, "vggcore")
    monkeypatch.setattr(memory_guard, "available_bytes", lambda device: 8 * 2 ** 30)
    reason = memory_guard.skip_reason(case, memory_guard.parse_limit(None))
    predicted = memory_guard.predict(case)
    assert predicted.total_bytes > 8 * 2 ** 30 > predicted.resident_bytes   # the input alone is 1.2 GB
    assert reason and "memory guard: predicted peak" in reason and "free memory of cpu (8.00 GiB)" in reason
    small = BenchCase("A", "forward", 2, 32, 0.125, "cpu", "fp32", False, False, "vggcore")
    assert memory_guard.skip_reason(small, memory_guard.parse_limit(None)) is None
    assert memory_guard.skip_reason(case, memory_guard.parse_limit("off")) is None


def test_memory_guard_skips_what_cannot_fit_and_runs_what_can(suite):
    """The issue's command with an 8 GiB limit: the 100000-image case is skipped with its prediction, before
    its 1.2 GB input is even made; the small case runs and records its prediction beside its measured peak."""
    result, data = run(suite, "--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=2,100000",
                       "--vgg-memory-limit=8GiB", "--benchmark-json=out.json", "-rs")
    assert result.ret == 0
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*memory guard: predicted peak 11.45 GiB (model, input and optimizer "
                                 "state 1.15 GiB + one forward step 10.30 GiB) exceeds the "
                                 "--vgg-memory-limit: 8.00 GiB*"])
    (bench,) = data["benchmarks"]
    info = bench["extra_info"]
    assert info["batch_size"] == 2 and info["predicted_peak_bytes"] > 0 and info["predicted_resident_bytes"] > 0


@pytest.mark.slow
def test_predicted_peak_is_within_a_factor_of_two_of_the_measured_one(suite):
    result, data = run(suite, "--vgg-archs=A", "--vgg-width=0.5", "--vgg-image-size=64", "--vgg-batch-sizes=32",
                       "--vgg-modes=forward,forward_backward", "--benchmark-json=out.json")
    assert result.ret == 0
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        assert info["memory_method"] == "linux_vmhwm" or pytest.skip("needs Linux's VmHWM for a sharp peak")
        ratio = info["peak_memory_bytes"] / info["predicted_peak_bytes"]
        assert 0.5 <= ratio <= 2.0, (info["mode"], ratio)


def test_a_slow_case_on_a_fast_machine_keeps_a_nonzero_mfu():
    """A bf16 case on a CPU without bf16 units can run at a ten-thousandth of the fp32 matmul peak: the recorded
    MFU is that fraction, not rounded to 0 (a fixed 4-decimal rounding once recorded 0.0 for 46 MFLOP/s)."""
    from bench.cases import BenchCase
    from bench.runner import Step, flops_per_image, make_model, measure
    from bench.sampling import Sample

    case = BenchCase(arch="A", mode="forward", batch_size=2, image_size=32, width=0.125, device="cpu", dtype="fp32",
                     channels_last=False, compiled=False, implementation="vggcore", head="gap")
    step = Step(case, make_model(case))
    slow = Sample(times=[0.3] * 6, median=0.3, low=0.29, high=0.31, rel_half_width=0.033, stop="precision",
                  unstable=False)
    info = measure(case, step, lambda: slow, {"peak_flops": 2e12})
    achieved = flops_per_image(case)[1] * case.batch_size / 0.3
    assert info["achieved_flops"] == pytest.approx(achieved)
    assert info["mfu"] == pytest.approx(achieved / 2e12, rel=1e-3) and info["mfu"] > 0
