"""Devices and dtypes: which exist here, what each cannot run and why, their names, waiting for a device, and
autocast by dtype name. The names import without torch (`DEVICES`, `DTYPE_NAMES`); `DTYPES`, the name -> torch
dtype table, and every function import it when first used.
"""

from __future__ import annotations

import platform
from contextlib import contextmanager
from typing import Iterator

DEVICES = ("cpu", "cuda", "mps")
DTYPE_NAMES = ("fp32", "bf16", "fp16")   # the dtypes a step runs in: fp32 as is, the others under autocast


def torch_dtype(name: str):
    """The torch dtype of a DTYPE_NAMES name."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def __getattr__(name: str):
    if name == "DTYPES":   # {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        return {n: torch_dtype(n) for n in DTYPE_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def device_available(device: str) -> bool:
    import torch

    if device == "cpu":
        return True
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return False


def device_unavailable_reason(device: str) -> str | None:
    """Why `device` ("cpu", "cuda", "cuda:1", "mps") cannot run here, or None when it can."""
    import torch

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
    import torch

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
    import torch

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
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


@contextmanager
def autocast(device: str, dtype: str) -> Iterator[None]:
    """bf16/fp16 autocast on `device`; fp32 runs as is."""
    import torch

    if dtype == "fp32":
        yield
    else:
        with torch.autocast(device_type=device, dtype=torch_dtype(dtype)):
            yield
