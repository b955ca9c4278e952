"""The machine's own measured dense peak FLOP/s, per device and dtype.

VGGBENCH_PEAK_CALL_S (seconds, default 0.5) is how long one peak kernel call may take: the kernels grow while a
call stays under it (PEAK_CALL_BUDGET_S). Quick runs (the documented-commands walk, tests/test_doc_commands.py) set
it lower, for smaller kernels in a fraction of the time: a peak from smaller kernels may be lower, so an MFU
against it higher. The figures say which kernels gave the peak (`peak_matmul_n`, `peak_conv_batch`) and under
which budget (`peak_call_budget_s`).
"""

from __future__ import annotations

import math
import time
from typing import Callable
import torch
from vggcore.device import DTYPES, synchronize
from vggcore.validation import env_value


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
PEAK_CALL_ENV = "VGGBENCH_PEAK_CALL_S"   # seconds one peak kernel call may take, instead of PEAK_CALL_BUDGET_S


def call_budget() -> float:
    """Seconds one peak kernel call may take: VGGBENCH_PEAK_CALL_S when set (a finite number > 0), else
    PEAK_CALL_BUDGET_S."""
    value = env_value(PEAK_CALL_ENV, float, lambda v: math.isfinite(v) and v > 0,
                      f"a number of seconds > 0, like 0.05 (unset: {PEAK_CALL_BUDGET_S})")
    return PEAK_CALL_BUDGET_S if value is None else value


def _grown_rate(sizes: list[int], flops: Callable[[int], float], make: Callable[[int], Callable[[], object]],
                device: str, repeats: int, budget: float = PEAK_CALL_BUDGET_S) -> tuple[float, int]:
    """(best FLOP/s of `make(size)()`, the size timed `repeats` times): sizes are tried smallest first (one timed
    call each) while the rate seen so far predicts a call under `budget` seconds; the largest such size is then
    timed `repeats` times."""
    chosen, rate = sizes[0], 0.0
    for size in sizes:
        if rate and flops(size) / rate > budget:
            break
        chosen = size
        if size != sizes[-1]:
            rate = max(rate, flops(size) / _best_seconds(make(size), device, 1))
    return max(rate, flops(chosen) / _best_seconds(make(chosen), device, repeats)), chosen


def _matmul(device: str, dtype: str, n: int | None, repeats: int) -> tuple[float, int]:
    top = n or (8192 if device == "cuda" else 2048)
    sizes = [top] if n else [s for s in (256, 512, 1024, 2048, 4096, 8192) if s <= top]
    gen = torch.Generator().manual_seed(0)

    def make(size: int) -> Callable[[], object]:
        a, b = (torch.randn(size, size, generator=gen).to(device=device, dtype=DTYPES[dtype]) for _ in range(2))
        return lambda: a @ b
    return _grown_rate(sizes, lambda size: 2 * size ** 3, make, device, repeats, call_budget())


def _conv(device: str, dtype: str, batch: int | None, repeats: int) -> tuple[float, int]:
    top = batch or (64 if device == "cuda" else 8)
    sizes = [top] if batch else [b for b in (1, 2, 8, 64) if b <= top]
    gen = torch.Generator().manual_seed(0)

    def make(size: int) -> Callable[[], object]:
        x = torch.randn(size, 256, 56, 56, generator=gen).to(device=device, dtype=DTYPES[dtype],
                                                             memory_format=torch.channels_last)
        w = torch.randn(256, 256, 3, 3, generator=gen).to(device=device, dtype=DTYPES[dtype],
                                                          memory_format=torch.channels_last)
        return lambda: torch.nn.functional.conv2d(x, w, padding=1)
    return _grown_rate(sizes, lambda size: 2 * size * 256 * 56 * 56 * 256 * 9, make, device, repeats, call_budget())


def matmul_peak_flops(device: str, dtype: str, n: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matmuls in `dtype` (n grown up to 8192 on CUDA, 2048 elsewhere, see
    call_budget; a given `n` is used as is)."""
    return _matmul(device, dtype, n, repeats)[0]


def conv_peak_flops(device: str, dtype: str, batch: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` VGG-shaped 3x3 convolutions (256 -> 256 channels, 56 x 56, NHWC), the batch
    grown up to 64 on CUDA and 8 elsewhere (see call_budget; a given `batch` is used as is)."""
    return _conv(device, dtype, batch, repeats)[0]


def peak_flops(device: str, dtype: str) -> dict[str, float]:
    """The machine's own measured dense peak for `dtype`: the better of a large matmul and a VGG-shaped conv, with
    the kernel sizes that gave each and the per-call budget that sized them.

    Both are measured because neither bounds the other everywhere: on an AVX-512 CPU, oneDNN's fp32 convolutions
    ran about 2.5x faster than MKL's fp32 matmul, so a matmul-only peak would give MFU > 1.
    """
    (mm, n), (conv, batch) = _matmul(device, dtype, None, 5), _conv(device, dtype, None, 5)
    return {"peak_flops": max(mm, conv), "peak_flops_matmul": mm, "peak_flops_conv": conv,
            "peak_matmul_n": n, "peak_conv_batch": batch, "peak_call_budget_s": call_budget()}



