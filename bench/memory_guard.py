"""The memory guard: predict a case's peak memory before it runs, and skip it when it cannot fit.

A case that does not fit is not an error to catch afterwards: on a CPU the kernel's OOM killer ends the whole
pytest session (no JSON is written), and long before that the machine swaps. So each case's peak is predicted
from the analytic summary (`vggcore.model.summary`, no forward pass) and compared with what the device has free now:

    resident   parameters (fp32) + the input batch + SGD momentum (train_step): held across steps
    step       forward:          the largest input+output pair of one layer (inference keeps nothing else)
               forward_backward: what autograd saves for backward + the gradients + the largest layer's
                                 output and input gradients during backward
               train_step:       the same + SGD's weight-decay temporaries (one parameter-sized copy)
               every mode:       + a workspace margin of twice the largest activation (oneDNN reorders a
                                 convolution's input and output to its blocked layout on the CPU),
                                 + bf16/fp16 weight copies under autocast; activations at the dtype's size

`predicted_peak_bytes` (recorded in extra_info) is the step's part, the same quantity as the measured
`peak_memory_bytes` (the step's peak above what was resident before it); the guard adds the resident part.
Budget: `--vgg-memory-limit` when given, else free memory (Linux MemAvailable on CPU, free plus cached on
CUDA) minus a safety margin of 10% + 256 MiB.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vggcore.model.summary import summary

from .cases import BenchCase, OptionError
from .runner import NUM_CLASSES, model_config

MiB = 2 ** 20
SAFETY_FRACTION, SAFETY_BYTES = 0.10, 256 * MiB
UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
         "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40,
         "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
LIMIT_HELP = ("largest predicted peak a case may need, e.g. 8GiB, 500MB, 2G (K/M/G/T and KiB.. are binary, "
              "KB/MB/GB decimal); 'off' disables the guard; default: the device's free memory minus 10%% + 256 MiB")


@dataclass(frozen=True)
class MemoryLimit:
    mode: str                 # "auto" (free memory of the device), "fixed" (--vgg-memory-limit) or "off"
    bytes: int | None = None  # the fixed budget


@dataclass(frozen=True)
class Prediction:
    resident_bytes: int       # parameters, input batch and optimizer state, held across steps
    step_bytes: int           # one step's peak above the resident part (what peak_memory_bytes measures)

    @property
    def total_bytes(self) -> int:
        return self.resident_bytes + self.step_bytes


def parse_limit(raw: str | None) -> MemoryLimit:
    """--vgg-memory-limit: None -> auto; 'off'; or a size such as 8GiB, 500MB, 1.5G, 1000000."""
    if raw is None or raw.strip().lower() == "auto":
        return MemoryLimit("auto")
    if raw.strip().lower() == "off":
        return MemoryLimit("off")
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", raw)
    unit = match and match.group(2).lower()
    if not match or unit not in UNITS:
        raise OptionError(f"--vgg-memory-limit: {raw!r} is not a size; allowed: a number with an optional unit "
                          "(B, KB, MB, GB, TB, K, M, G, T, KiB, MiB, GiB, TiB), e.g. 8GiB or 500MB, or 'off'")
    size = float(match.group(1)) * UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise OptionError(f"--vgg-memory-limit: {raw!r} must be at least 1 byte")
    return MemoryLimit("fixed", int(size))


def predict(case: BenchCase) -> Prediction:
    table = summary(model_config(case), batch_size=case.batch_size)
    params = int(table["params"].sum())
    scale = 1.0 if case.dtype == "fp32" else 0.5            # activations in bf16/fp16 under autocast
    acts = [int(a * scale) for a in table["activation_bytes"]]
    n, side = case.batch_size, case.image_size
    x_bytes = n * 3 * side * side * 4
    inputs = [x_bytes, *acts]
    largest = max(inputs)
    weight_copies = params * 2 if case.dtype != "fp32" else 0
    resident = params * 4 + x_bytes + n * 8 + (params * 4 if case.mode == "train_step" else 0)
    if case.mode == "forward":
        outputs = [a or 0 for a in acts]
        # a layer's input and output are alive together; in-place ReLU and views allocate nothing
        pairs = [cur + out for cur, out in zip(_running(inputs), outputs)]
        step = max(pairs) + 2 * largest + weight_copies
    else:
        saved = int(int(table["saved_bytes"].sum()) * scale)
        step = saved + params * 4 + 2 * largest + 2 * largest + weight_copies + n * NUM_CLASSES * 4
        if case.mode == "train_step":
            step += params * 4
    return Prediction(resident_bytes=resident, step_bytes=step)


def _running(inputs: list[int]) -> list[int]:
    """Size of the tensor each layer reads: the last allocated output before it (views and in-place layers
    allocate nothing, so they pass the previous size on)."""
    current, out = inputs[0], []
    for produced in inputs[1:]:
        out.append(current)
        if produced:
            current = produced
    return out


def available_bytes(device: str) -> int | None:
    """Memory free for a new case on `device` now, or None where it cannot be read (then no guard)."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()  # cached blocks are reusable
    if device == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            import psutil

            return int(psutil.virtual_memory().available)
        except ImportError:
            return None
    return None


def skip_reason(case: BenchCase, limit: MemoryLimit, prediction: Prediction | None = None) -> str | None:
    """Why the case must not run (its predicted peak exceeds the budget), or None."""
    if limit.mode == "off":
        return None
    prediction = prediction or predict(case)
    if limit.mode == "fixed":
        budget, source = limit.bytes, "--vgg-memory-limit"
    else:
        free = available_bytes(case.device)
        if free is None:
            return None
        budget = int(free * (1 - SAFETY_FRACTION)) - SAFETY_BYTES
        source = f"free memory of {case.device} ({_size(free)}) less a 10% + 256 MiB safety margin"
    if prediction.total_bytes <= budget:
        return None
    return (f"memory guard: predicted peak {_size(prediction.total_bytes)} (model, input and optimizer state "
            f"{_size(prediction.resident_bytes)} + one {case.mode} step {_size(prediction.step_bytes)}) exceeds "
            f"the {source}: {_size(max(budget, 0))}; use smaller --vgg-batch-sizes, or --vgg-memory-limit off")


def _size(n: int) -> str:
    return f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 30 else f"{n / MiB:.1f} MiB"
