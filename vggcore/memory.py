"""Peak memory of a step (CPU: the process's high-water mark; CUDA: the allocator's) and out-of-memory detection. See ../shared/NOTES.md for why each method was chosen."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator
import torch
from torch import nn
from vggcore.errors import MissingPackage
from vggcore.device import synchronize


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
    own parameters and buffers (what `vggcore.model.summary`'s `saved_bytes` predicts)."""
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



