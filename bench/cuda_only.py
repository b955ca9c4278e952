"""pytest plugin: keep only the tests that need CUDA (used by `python -m vggbench gpu-check`).

    python -m pytest tests -p bench.cuda_only

A test needs CUDA when its function name says "cuda" or a skipif mark on it gives CUDA or a GPU as its reason
(the suite's convention: `@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")`).
"""

from __future__ import annotations

import pytest


def needs_cuda(item: pytest.Item) -> bool:
    name = getattr(item, "originalname", None) or item.name
    if "cuda" in name.lower():
        return True
    for mark in item.iter_markers("skipif"):
        reason = str(mark.kwargs.get("reason", "")).lower()
        if "cuda" in reason or "gpu" in reason:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [item for item in items if needs_cuda(item)]
    dropped = [item for item in items if not needs_cuda(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
