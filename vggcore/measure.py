"""Measurement helpers shared by the benchmarks and training: devices, dtypes, peak memory, saved activations,
the machine's own matmul peak. See ../shared/NOTES.md for why each method was chosen.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from .errors import MissingPackage

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda", "mps")


def device_available(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return False


def device_unavailable_reason(device: str) -> str | None:
    """Why `device` ("cpu", "cuda", "cuda:1", "mps") cannot run here, or None when it can."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
            return (f"torch.cuda.is_available() is False (no CUDA GPU or driver visible; "
                    f"torch {torch.__version__}, {build})")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"this machine has {count} GPU(s): cuda:0 to cuda:{count - 1}"
        return None
    if kind in ("cpu", "mps"):
        return None if device_available(kind) else "torch.backends.mps.is_available() is False"
    return f"unknown device kind {kind!r}"


def dtype_unsupported_reason(device: str, dtype: str) -> str | None:
    """Why `dtype` autocast is not benchmarked on `device`, or None when it is."""
    if dtype == "fp32":
        return None
    if device == "cpu" and dtype == "fp16":
        return "fp16 autocast on CPU has no fast kernels; use bf16 on CPU"
    if device == "cuda" and dtype == "bf16" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16 support"
    if device == "mps" and dtype == "bf16":
        return "bf16 autocast is not supported on MPS"
    return None


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    if device == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine()
    return device


def synchronize(device: str) -> None:
    """Wait for `device` ("cpu", "cuda", "cuda:1", "mps") to finish its queued work."""
    kind = device.split(":")[0]
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


@contextmanager
def autocast(device: str, dtype: str) -> Iterator[None]:
    """bf16/fp16 autocast on `device`; fp32 runs as is."""
    if dtype == "fp32":
        yield
    else:
        with torch.autocast(device_type=device, dtype=DTYPES[dtype]):
            yield


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and ("out of memory" in str(err).lower()
                                              or "can't allocate memory" in str(err).lower())


# ---------------------------------------------------------------------------------------------- peak memory
@dataclass
class PeakMemory:
    """Peak memory used by the code inside `measure_peak_memory` beyond what was in use when it started."""

    bytes: int = 0
    method: str = ""


def _read_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS so the next allocation shows up in the resident size."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _read_status("VmHWM")
        return True
    except OSError:
        return False


@contextmanager
def measure_peak_memory(device: str) -> Iterator[PeakMemory]:
    """On CUDA the caching allocator's peak; on Linux CPU the resident-size high-water mark (reset through
    /proc/self/clear_refs); elsewhere a thread sampling the resident size every millisecond. `method` says which.
    """
    result = PeakMemory()
    if device == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        yield result
        synchronize(device)
        result.bytes, result.method = torch.cuda.max_memory_allocated() - before, "cuda_max_memory_allocated"
        return
    _release_free_heap()
    if _can_reset_hwm():
        before = _read_status("VmRSS")
        yield result
        synchronize(device)
        result.bytes, result.method = max(0, _read_status("VmHWM") - before), "linux_vmhwm"
        return
    yield from _sampled_peak(device, result)


PROC_STATM = "/proc/self/statm"  # Linux: sizes in pages; the second field is the resident set


def _rss_reader() -> Callable[[], int]:
    """The process's resident size in bytes: from /proc on Linux (no dependency, works where clear_refs is
    forbidden, as in many containers), else from psutil, a dependency only on platforms without /proc."""
    if os.path.exists(PROC_STATM):
        page = os.sysconf("SC_PAGE_SIZE")

        def from_proc() -> int:
            with open(PROC_STATM) as f:
                return int(f.read().split()[1]) * page
        return from_proc
    try:
        import psutil
    except ImportError:
        raise MissingPackage("measuring peak CPU memory without /proc needs psutil (pip install psutil; vggbench "
                             "declares it on such platforms)") from None
    proc = psutil.Process()
    return lambda: proc.memory_info().rss


def _sampled_peak(device: str, result: PeakMemory) -> Iterator[PeakMemory]:
    rss = _rss_reader()
    before, peak, stop = rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
        synchronize(device)
    finally:
        stop.set()
        thread.join()
    result.bytes, result.method = max(0, peak[0] - before), "rss_sampling"


# ---------------------------------------------------------------------------------------- saved activations
def saved_activation_bytes(model: nn.Module, fn: Callable[[], object]) -> int:
    """Bytes autograd keeps for backward while `fn()` runs, counted once per storage and excluding the model's
    own parameters and buffers (what `vggcore.summary`'s `saved_bytes` predicts)."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


# ------------------------------------------------------------------------------------------- machine peak
def _best_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    fn()  # warm-up: kernel selection, first touch of the output
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


# A peak kernel grows to its full size only while one call is predicted to stay this fast: where a dtype has no
# fast path (bf16 on an AVX2-only CPU ran a 1024^3 matmul at 0.9 GFLOP/s against fp32's 155 here), the full-size
# kernels would take minutes each for a figure a smaller kernel gives as well.
PEAK_CALL_BUDGET_S = 0.5


def _grown_rate(sizes: list[int], flops: Callable[[int], float], make: Callable[[int], Callable[[], object]],
                device: str, repeats: int) -> float:
    """Best FLOP/s of `make(size)()`: sizes are tried smallest first (one timed call each) while the rate seen so
    far predicts a call under PEAK_CALL_BUDGET_S; the largest such size is then timed `repeats` times."""
    chosen, rate = sizes[0], 0.0
    for size in sizes:
        if rate and flops(size) / rate > PEAK_CALL_BUDGET_S:
            break
        chosen = size
        if size != sizes[-1]:
            rate = max(rate, flops(size) / _best_seconds(make(size), device, 1))
    return max(rate, flops(chosen) / _best_seconds(make(chosen), device, repeats))


def matmul_peak_flops(device: str, dtype: str, n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matmuls in `dtype` (n grown up to 8192 on CUDA, 2048 elsewhere, see
    PEAK_CALL_BUDGET_S; a given `n` is used as is)."""
    top = n or (8192 if device == "cuda" else 2048)
    sizes = [top] if n else [s for s in (256, 512, 1024, 2048, 4096, 8192) if s <= top]
    gen = torch.Generator().manual_seed(0)

    def make(size: int) -> Callable[[], object]:
        a, b = (torch.randn(size, size, generator=gen).to(device=device, dtype=DTYPES[dtype]) for _ in range(2))
        return lambda: a @ b
    return _grown_rate(sizes, lambda size: 2 * size ** 3, make, device, repeats)


def conv_peak_flops(device: str, dtype: str, batch: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` VGG-shaped 3x3 convolutions (256 -> 256 channels, 56 x 56, NHWC), the batch
    grown up to 64 on CUDA and 8 elsewhere (see PEAK_CALL_BUDGET_S; a given `batch` is used as is)."""
    top = batch or (64 if device == "cuda" else 8)
    sizes = [top] if batch else [b for b in (1, 2, 8, 64) if b <= top]
    gen = torch.Generator().manual_seed(0)

    def make(size: int) -> Callable[[], object]:
        x = torch.randn(size, 256, 56, 56, generator=gen).to(device=device, dtype=DTYPES[dtype],
                                                             memory_format=torch.channels_last)
        w = torch.randn(256, 256, 3, 3, generator=gen).to(device=device, dtype=DTYPES[dtype],
                                                          memory_format=torch.channels_last)
        return lambda: torch.nn.functional.conv2d(x, w, padding=1)
    return _grown_rate(sizes, lambda size: 2 * size * 256 * 56 * 56 * 256 * 9, make, device, repeats)


def peak_flops(device: str, dtype: str) -> dict[str, float]:
    """The machine's own measured dense peak for `dtype`: the better of a large matmul and a VGG-shaped conv.

    Both are measured because neither bounds the other everywhere: on an AVX-512 CPU, oneDNN's fp32 convolutions
    ran about 2.5x faster than MKL's fp32 matmul, so a matmul-only peak would give MFU > 1.
    """
    mm, conv = matmul_peak_flops(device, dtype), conv_peak_flops(device, dtype)
    return {"peak_flops": max(mm, conv), "peak_flops_matmul": mm, "peak_flops_conv": conv}


def threads() -> int:
    return torch.get_num_threads()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
