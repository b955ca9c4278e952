"""The benchmark suite driven through pytester on a tiny grid (width 0.125, 32x32)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.cases import OptionError, expand
from vggcore import VGGConfig, build, summary, totals

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


def counted_macs(model, size):
    """Multiply-accumulates of one forward of one image, measured (FlopCounterMode counts 2 FLOPs per MAC)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() // 2


def test_torchvision_reference_side_by_side(suite):
    result, data = run(suite, "--vgg-archs=A", "--vgg-width=1", "--vgg-modes=forward", "--vgg-batch-sizes=1",
                       "--vgg-reference", "--benchmark-json=out.json")
    assert result.ret == 0
    impls = {b["extra_info"]["implementation"]: b for b in data["benchmarks"]}
    assert set(impls) == {"vggcore", "torchvision"}
    assert impls["vggcore"]["group"] == impls["torchvision"]["group"]
    # each recorded count equals what torch's FLOP counter measures on that implementation's own network; at
    # 32px they differ: torchvision's AdaptiveAvgPool2d((7, 7)) feeds fc6 a 49-times wider input
    import torchvision

    for impl, model in (("vggcore", build("A", image_size=32)), ("torchvision", torchvision.models.vgg11())):
        assert impls[impl]["extra_info"]["macs_per_image"] == counted_macs(model.eval(), 32), impl


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
    monkeypatch.setenv("PYTHONPATH", str(suite.path))
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
    monkeypatch.setenv("PYTHONPATH", str(suite.path))
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
])
def test_bad_options_are_usage_errors(suite, option, message):
    result = suite.runpytest_subprocess("bench", "--benchmark-only", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


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
