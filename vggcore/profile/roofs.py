"""Both roofs of the roofline, measured in the run that uses them: the compute peak (`vggcore.peaks.peak_flops`,
per device and dtype) and the memory bandwidth, a STREAM triad in torch:

    a = b + s * c      one `torch.add(b, c, alpha=s, out=a)`: one kernel that reads b and c and writes a

Counted as STREAM counts it, 3 arrays x n x element size per triad (the write-allocate read of `a` a CPU may add
is not counted, as in STREAM). Each array is at least 4x the last-level cache (STREAM's rule), so the arrays
stream from memory rather than from a cache; the best of several repeats is the roof (the least disturbed run).
On CUDA the triad is timed by device events, elsewhere by the host clock after a synchronize.

    >>> triad = stream_triad("cpu", "fp32")
    >>> triad.bytes_per_s, triad.array_bytes, triad.bytes_per_triad
    >>> roofs = measure_roofs("cpu", "bf16")      # peak_flops in bf16; triads in fp32 and bf16, the best is the roof

VGGBENCH_TRIAD_BYTES=64M (bytes per array, K/M/G suffixes) sizes the default triad instead, for quick runs (the
documented-commands walk, tests/test_doc_commands.py): STREAM's arrays are 3 x 1.9 GiB where sysfs reports a
480 MiB L3, about 25 s a triad. Arrays below STREAM's rule may measure a cache, not memory; the figures say so
(bandwidth_method names the variable).
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from vggcore.device import DTYPES, synchronize
from vggcore.validation import env_value
from vggcore.peaks import call_budget, peak_flops

ARRAYS = 3                      # b and c read, a written
CACHE_MULTIPLE = 4              # STREAM: each array at least 4x the last-level cache
MIN_ARRAY_BYTES = 64 * 2 ** 20  # where the cache size is unknown, or tiny
SYSFS_CACHES = "/sys/devices/system/cpu/cpu0/cache/index*"
TRIAD_BYTES_ENV = "VGGBENCH_TRIAD_BYTES"   # bytes per array of the default triad, instead of STREAM's rule
STREAM_METHOD = "stream triad a = b + s*c (torch.add out=), 3 arrays counted"


@dataclass(frozen=True)
class Triad:
    """One bandwidth measurement."""

    device: str                 # cpu, cuda, mps
    dtype: str                  # fp32, bf16, fp16: the arrays' element type
    numel: int                  # elements per array
    array_bytes: int            # bytes of one array
    bytes_per_triad: int        # bytes one triad moves (3 arrays)
    best_s: float               # the fastest of `repeats` triads, seconds
    repeats: int                # timed triads (after one warm-up)
    cache_bytes: int | None     # the last-level cache the array size was chosen against (None: unknown)
    timer: str                  # "cuda_events" or "host_clock"
    sized_by: str = ""          # TRIAD_BYTES_ENV when that variable sized the arrays, else "" (STREAM's rule or numel)

    @property
    def bytes_per_s(self) -> float:
        return self.bytes_per_triad / self.best_s

    def as_dict(self) -> dict:
        return {"bandwidth_device": self.device, "bandwidth_dtype": self.dtype, "bandwidth": self.bytes_per_s,
                "bandwidth_array_bytes": self.array_bytes, "bandwidth_bytes_per_triad": self.bytes_per_triad,
                "bandwidth_best_s": self.best_s, "bandwidth_repeats": self.repeats,
                "bandwidth_cache_bytes": self.cache_bytes, "bandwidth_timer": self.timer,
                "bandwidth_method": STREAM_METHOD + (f"; arrays sized by {self.sized_by}, not STREAM's rule of 4x "
                                                     "the last-level cache: may measure a cache" if self.sized_by
                                                     else "")}


def _size(text: str) -> int:
    text = text.strip().upper()
    for suffix, factor in (("K", 2 ** 10), ("M", 2 ** 20), ("G", 2 ** 30)):
        if text.endswith(suffix):
            return int(text[:-1]) * factor
    return int(text)


def last_level_cache_bytes(device: str) -> int | None:
    """The largest cache in front of `device`'s memory: the CPU's highest cache level from sysfs, the GPU's L2."""
    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(device).L2_cache_size) or None
    sizes = []
    for index in glob.glob(SYSFS_CACHES):
        try:
            with open(f"{index}/level") as f:
                level = int(f.read())
            with open(f"{index}/size") as f:
                sizes.append((level, _size(f.read())))
        except (OSError, ValueError):
            continue
    return max(sizes)[1] if sizes else None


def triad_bytes_setting() -> int | None:
    """Bytes per array from VGGBENCH_TRIAD_BYTES (a positive whole number, K/M/G suffixes), None when unset."""
    return env_value(TRIAD_BYTES_ENV, _size, lambda v: v >= 1,
                     "a positive whole number of bytes per array, like 64M (unset: STREAM's rule, each array at "
                     "least 4x the last-level cache)")


def check_settings() -> None:
    """Judge the roofs' environment settings (VGGBENCH_PEAK_CALL_S of the peak, VGGBENCH_TRIAD_BYTES of the
    triad) now: a bad value is one UserError naming it before any measurement, not after the profiled rounds."""
    call_budget()
    triad_bytes_setting()


def default_numel(device: str, dtype: str) -> tuple[int, int | None]:
    """(elements per array, the cache it was sized against): each array at least 4x the last-level cache, or
    VGGBENCH_TRIAD_BYTES bytes when that is set."""
    cache = last_level_cache_bytes(device)
    setting = triad_bytes_setting()
    if setting is not None:
        return max(1, setting // DTYPES[dtype].itemsize), cache
    array_bytes = max(MIN_ARRAY_BYTES, CACHE_MULTIPLE * cache) if cache else MIN_ARRAY_BYTES * 4
    return array_bytes // DTYPES[dtype].itemsize, cache


def stream_triad(device: str, dtype: str, numel: int | None = None, repeats: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> Triad:
    """The best of `repeats` triads a = b + s*c on arrays of `numel` elements (default: 4x the last-level cache).

    `clock` times the host path (seconds; read once before and once after each triad), so tests can check the
    arithmetic with a stub clock; CUDA uses device events whatever `clock` is.
    """
    if repeats < 1:
        raise ValueError(f"stream_triad: repeats must be at least 1, got {repeats}")
    cache, sized_by = None, ""
    if numel is None:
        numel, cache = default_numel(device, dtype)
        sized_by = TRIAD_BYTES_ENV if triad_bytes_setting() is not None else ""
    elem = DTYPES[dtype]
    a = torch.empty(numel, dtype=elem, device=device)
    b = torch.full((numel,), 1.0, dtype=elem, device=device)
    c = torch.full((numel,), 2.0, dtype=elem, device=device)

    def triad() -> None:
        torch.add(b, c, alpha=3.0, out=a)

    kind = device.partition(":")[0]
    triad()                      # warm-up: first touch of `a`, kernel selection
    synchronize(kind)
    if device.startswith("cuda"):
        best, timer = _best_cuda(triad, repeats), "cuda_events"
    else:
        best, timer = float("inf"), "host_clock"
        for _ in range(repeats):
            start = clock()
            triad()
            synchronize(kind)
            best = min(best, clock() - start)
    return Triad(device=device, dtype=dtype, numel=numel, array_bytes=numel * elem.itemsize,
                 bytes_per_triad=ARRAYS * numel * elem.itemsize, best_s=best, repeats=repeats,
                 cache_bytes=cache, timer=timer, sized_by=sized_by)


def _best_cuda(fn: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)   # elapsed_time is in milliseconds
    return best


@dataclass(frozen=True)
class Roofs:
    """The two roofs a profile divides by, with how they were measured."""

    device: str                  # cpu, cuda, mps
    dtype: str                   # the dtype whose compute peak this is (the case's autocast dtype, or fp32)
    peak_flops: float            # FLOP/s: the better of a large matmul and a VGG-shaped conv (vggcore.device)
    bandwidth: float             # bytes/s: the best of the triads below
    peak_detail: dict = field(default_factory=dict)        # vggcore.peaks.peak_flops's figures
    triads: tuple[Triad, ...] = ()                         # one per dtype measured

    def as_dict(self) -> dict:
        best = max(self.triads, key=lambda t: t.bytes_per_s) if self.triads else None
        return {"roof_device": self.device, "roof_dtype": self.dtype, "peak_flops": self.peak_flops,
                "bandwidth": self.bandwidth, **self.peak_detail,
                **({f"bandwidth_{t.dtype}": t.bytes_per_s for t in self.triads}),
                **({k: v for k, v in best.as_dict().items() if k != "bandwidth"} if best else {})}


def measure_roofs(device: str, dtype: str, triad_dtypes: tuple[str, ...] | None = None,
                  peaks: dict[str, float] | None = None, **triad_options) -> Roofs:
    """The compute peak in `dtype` and the bandwidth as the best triad over fp32 and `dtype`: bandwidth is a
    property of the memory, and a dtype whose elementwise arithmetic is slow on a device only lowers its own triad.
    `peaks`: `vggcore.peaks.peak_flops(device, dtype)` measured already in this run (the benchmark's session
    measures it once per device and dtype), else measured here."""
    dtypes = tuple(dict.fromkeys(triad_dtypes or ("fp32", dtype)))
    triads = tuple(stream_triad(device, d, **triad_options) for d in dtypes)
    peaks = peaks if peaks is not None else peak_flops(device, dtype)
    return Roofs(device=device, dtype=dtype, peak_flops=peaks["peak_flops"],
                 bandwidth=max(t.bytes_per_s for t in triads), peak_detail=peaks, triads=triads)
