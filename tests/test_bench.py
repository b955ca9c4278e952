"""The benchmark suite driven through pytester on a tiny grid (width 0.125, 32x32)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from bench.cases import OptionError, expand
from vggcore import VGGConfig, summary, totals

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY = ["--benchmark-only", "-p", "no:cacheprovider", "--vgg-width=0.125", "--vgg-image-size=32",
        "--vgg-max-time=0.02", "--vgg-devices=cpu"]
KEYS = {"arch", "mode", "batch_size", "image_size", "width", "device", "device_name", "dtype", "channels_last",
        "compiled", "implementation", "images_per_s", "macs_per_image", "achieved_flops", "peak_flops", "mfu",
        "peak_memory_bytes", "activation_bytes", "param_bytes", "torch_version", "threads"}


@pytest.fixture
def suite(pytester):
    shutil.copytree(BENCH, pytester.path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    return pytester


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
    benches = data["benchmarks"]
    assert len(benches) == 12
    for b in benches:
        info = b["extra_info"]
        assert KEYS <= set(info), KEYS - set(info)
        assert info["implementation"] == "vggcore" and info["dtype"] in ("fp32", "bf16")
        assert info["images_per_s"] == pytest.approx(info["batch_size"] / b["stats"]["median"], rel=1e-3)
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


def test_torchvision_reference_side_by_side(suite):
    result, data = run(suite, "--vgg-archs=A", "--vgg-width=1", "--vgg-modes=forward", "--vgg-batch-sizes=1",
                       "--vgg-reference", "--benchmark-json=out.json")
    assert result.ret == 0
    impls = {b["extra_info"]["implementation"]: b for b in data["benchmarks"]}
    assert set(impls) == {"vggcore", "torchvision"}
    assert impls["vggcore"]["group"] == impls["torchvision"]["group"]
    assert impls["vggcore"]["extra_info"]["macs_per_image"] == impls["torchvision"]["extra_info"]["macs_per_image"]


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


def test_autosave_and_compare_fail(suite):
    args = ("--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=1")
    first, _ = run(suite, *args, "--benchmark-autosave")
    assert first.ret == 0 and list((suite.path / ".benchmarks").rglob("*.json"))
    second, _ = run(suite, *args, "--benchmark-compare", "--benchmark-compare-fail=median:10000%")
    assert second.ret == 0
    third, _ = run(suite, *args, "--benchmark-compare", "--benchmark-compare-fail=min:-100%")
    assert third.ret != 0  # a threshold every run fails proves the comparison is live


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
])
def test_bad_options_are_usage_errors(suite, option, message):
    result = suite.runpytest_subprocess("bench", "--benchmark-only", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_unavailable_device_is_a_usage_error():
    import torch

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


def test_interleaved_ab_comparison(suite):
    result, data = run(suite, "--vgg-archs=A", "--vgg-width=1", "--vgg-modes=forward", "--vgg-batch-sizes=1",
                       "--vgg-ab", "--benchmark-json=out.json")
    assert result.ret == 0
    ab = [b for b in data["benchmarks"] if b["name"].startswith("test_vggcore_vs_torchvision_interleaved")]
    assert len(ab) == 1
    info = ab[0]["extra_info"]
    assert info["vggcore_median_s"] > 0 and info["torchvision_median_s"] > 0
    assert info["vggcore_over_torchvision_speed"] == pytest.approx(
        info["torchvision_median_s"] / info["vggcore_median_s"])
    assert ab[0]["group"].endswith("interleaved")


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
