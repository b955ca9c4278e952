import sys
import time
import types

import pytest
import torch

from vggcore import build, device, memory, peaks, totals
from vggcore.model.summary import summary
from vggcore.errors import UserError
from vggcore.peaks import conv_peak_flops, matmul_peak_flops
from vggcore.memory import measure_peak_memory, saved_activation_bytes

MB = 2 ** 20


@pytest.mark.parametrize("megabytes", [64, 200])
def test_cpu_peak_memory_sees_a_known_allocation(megabytes):
    with measure_peak_memory("cpu") as peak:
        t = torch.ones(megabytes * MB // 4)  # touched, so resident
        del t
    assert peak.bytes == pytest.approx(megabytes * MB, rel=0.10)
    assert peak.method in ("linux_vmhwm", "rss_sampling")


def test_cpu_peak_memory_after_warm_up_still_counts():
    """A freed block kept by the allocator would hide a second allocation of the same size without malloc_trim:
    every window after the warm-up must see the whole 16 MiB. The high-water mark is the process's, so a window can
    also see what another thread touched meanwhile (once 1.9 MiB more, in a full suite run of CI): the least of the
    windows is the allocation's own figure."""
    readings = []
    for _ in range(4):   # the first is the warm-up
        with measure_peak_memory("cpu") as peak:
            t = torch.ones(16 * MB // 4)
            del t
        readings.append(peak.bytes)
    assert all(r >= 0.9 * 16 * MB for r in readings[1:]), readings
    assert min(readings[1:]) == pytest.approx(16 * MB, rel=0.10), readings


def test_saved_activation_bytes_matches_summary():
    model = build("B", width=0.125, image_size=32, batch_norm=True).train()
    x = torch.randn(3, 3, 32, 32)
    assert saved_activation_bytes(model, lambda: model(x)) == totals(summary(model, batch_size=3))["saved_bytes"]


def test_peaks_are_measured():
    assert matmul_peak_flops("cpu", "fp32", n=256, repeats=2) > 1e8
    assert conv_peak_flops("cpu", "fp32", batch=1, repeats=1) > 1e8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_memory_sees_a_known_allocation():
    with measure_peak_memory("cuda") as peak:
        t = torch.ones(64 * MB // 4, device="cuda")
        del t
    assert peak.bytes == 64 * MB and peak.method == "cuda_max_memory_allocated"


def _hold(megabytes: int) -> None:
    t = torch.ones(megabytes * MB // 4)  # touched, so resident
    time.sleep(0.2)  # long enough for a 1 ms sampler to see it even on a loaded machine
    del t


def test_cpu_peak_memory_where_clear_refs_is_not_writable_needs_no_psutil(monkeypatch):
    # Containers often forbid /proc/self/clear_refs; psutil is not installed everywhere: the fallback must work
    # from /proc alone.
    monkeypatch.setattr(memory, "_can_reset_hwm", lambda: False)
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` raises ImportError
    with measure_peak_memory("cpu") as peak:
        _hold(200)
    assert peak.method == "rss_sampling"
    assert peak.bytes == pytest.approx(200 * MB, rel=0.15)


def test_cpu_peak_memory_without_proc_samples_psutil(monkeypatch):
    # macOS: no /proc at all, so the resident size comes from psutil (declared for non-Linux platforms).
    readings = iter([100 * MB] + [100 * MB, 350 * MB, 180 * MB] + [180 * MB] * 100_000)

    class Process:
        def memory_info(self):
            return types.SimpleNamespace(rss=next(readings))

    monkeypatch.setattr(memory, "_can_reset_hwm", lambda: False)
    monkeypatch.setattr(memory, "PROC_STATM", "/nonexistent/statm")
    monkeypatch.setitem(sys.modules, "psutil", types.SimpleNamespace(Process=Process))
    with measure_peak_memory("cpu") as peak:
        time.sleep(0.05)
    assert peak.method == "rss_sampling" and peak.bytes == 250 * MB


def test_synchronize_waits_for_an_indexed_cuda_device(monkeypatch):
    """Under torchrun a rank's device is cuda:LOCAL_RANK: synchronize must wait for it, not skip it."""
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    device.synchronize("cuda:1")
    device.synchronize("cuda")
    device.synchronize("cpu")
    assert waited == ["cuda:1", "cuda"]


def test_peak_kernels_stay_small_where_a_dtype_is_slow(monkeypatch):
    """bf16 on an AVX2-only CPU ran ~170x slower than fp32 here: the peak must not time a 2048^3 matmul there."""
    sizes, slow = [], 1e9  # a 1 GFLOP/s "machine"

    def fake_best(fn, device, repeats):
        size = fn.size
        sizes.append(size)
        return 2 * size ** 3 / slow

    def fake_make(size):
        fn = lambda: None  # noqa: E731
        fn.size = size
        return fn

    monkeypatch.setattr(peaks, "_best_seconds", fake_best)
    rate, chosen = peaks._grown_rate([256, 512, 1024, 2048], lambda s: 2 * s ** 3, fake_make, "cpu", 5)
    assert rate == pytest.approx(slow) and chosen == 512
    # 512^3 at 1 GFLOP/s is 0.27 s, 1024^3 would be 2.1 s: growth stops at 512
    assert max(sizes) == 512 and sizes.count(512) == 2
    sizes.clear()
    slow = 1e12  # 1 TFLOP/s: every size fits the budget, the full size is reached
    assert peaks._grown_rate([256, 512, 1024, 2048], lambda s: 2 * s ** 3, fake_make, "cpu", 5)[1] == 2048
    assert max(sizes) == 2048
    sizes.clear()
    # a budget of 0.05 s per call (VGGBENCH_PEAK_CALL_S): at 10 GFLOP/s 512^3 takes 27 ms, 1024^3 215 ms
    slow = 1e10
    assert peaks._grown_rate([256, 512, 1024, 2048], lambda s: 2 * s ** 3, fake_make, "cpu", 5, 0.05)[1] == 512


def test_the_peak_call_budget_comes_from_the_environment_and_the_figures_say_it(monkeypatch):
    """VGGBENCH_PEAK_CALL_S sizes the peak kernels of quick runs; the peak's record names the budget and kernels."""
    monkeypatch.setenv(peaks.PEAK_CALL_ENV, "0.001")
    figures = peaks.peak_flops("cpu", "fp32")
    assert figures["peak_call_budget_s"] == 0.001
    # no 512^3 matmul (0.27 GFLOP) takes under 1 ms on a CPU: growth stops at 256 or 512; the conv stays at batch 1
    assert figures["peak_matmul_n"] in (256, 512) and figures["peak_conv_batch"] == 1
    assert figures["peak_flops"] == max(figures["peak_flops_matmul"], figures["peak_flops_conv"]) > 1e8
    monkeypatch.delenv(peaks.PEAK_CALL_ENV)
    assert peaks.call_budget() == peaks.PEAK_CALL_BUDGET_S


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_peak_call_budget_is_a_user_error_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(peaks.PEAK_CALL_ENV, raw)
    with pytest.raises(UserError, match=peaks.PEAK_CALL_ENV):
        peaks.call_budget()
