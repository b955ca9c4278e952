"""torch's intra-op thread count: the machine's cores, and the one way a count is set.

Training results depend on the thread count (the order of reductions), so a run records the count it trained on
and a resumed run goes back to it. Every place that sets a count does it through `torch_threads`, which puts the
caller's count back when its block ends, however it ends:

    with torch_threads(1):          # this block on one thread
        train(...)
    with torch_threads(None):       # the count left as it is, and put back after whatever the block sets
        ...
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads() -> int:
    """torch's intra-op thread count now."""
    import torch

    return torch.get_num_threads()


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """torch on `count` intra-op threads inside the block (None: the count as it is); the count from before the
    block is put back after it. Yields the count in force at the start of the block."""
    import torch

    before = torch.get_num_threads()
    if count is not None and count < 1:
        raise ValueError(f"a thread count is at least 1, got {count}")
    if count is not None and count != before:
        torch.set_num_threads(int(count))
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
