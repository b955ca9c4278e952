"""The fastest setting of a training run on the device at hand, chosen by measurement (`vggcore train --fast`).

    >>> choice = choose(VGGConfig("A", batch_norm=True, width=0.25, image_size=32, num_classes=10), 64, "cpu")
    >>> choice.bf16, choice.channels_last, choice.line()

The candidates are fp32 and bf16 autocast, each in NCHW and in channels_last (NHWC). bf16 is a candidate only where
the device's measured bf16 matmul peak beats its fp32 one: on an AVX2-only CPU (no AVX-512 BF16, no AMX) bf16 ran
a 1024^3 matmul at 0.9 GFLOP/s against fp32's 155 and a VGG conv 5-25x slower, so there it is not even timed; on
an AMX CPU or a GPU with bf16 tensor cores it usually wins. Each remaining candidate's training step (this run's
model at its batch and image size, on seeded random images) is timed `steps` times after one untimed step, and
the fastest median wins. A candidate whose untimed step takes over `GIVE_UP` times the best median so far is
dropped there. Every candidate trains the same model; they round differently (bf16 autocast; the convolution
algorithms a layout selects), so runs in two settings differ: the choice is an explicit, recorded setting
(TrainConfig's bf16 and channels_last, and `Choice.record()` in the run folder's fast.json).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from vggcore.config import VGGConfig
from vggcore.device import dtype_unsupported_reason, synchronize
from vggcore.peaks import matmul_peak_flops
from vggcore.model.network import build
from vggcore.train.sgd import sgd
from vggcore.train.step import train_step
from vggcore.config import TrainConfig

CANDIDATES = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))   # (dtype, channels_last)
STEPS = 3
LAYOUT_STEPS = 5         # timed steps per memory format in `layout`, after one untimed step
MIN_GAIN = 1.05          # `layout`: channels_last must be at least this much faster (median step) to be chosen
GIVE_UP = 3.0
PEAK_REPEATS = 2


def label(dtype: str, channels_last: bool) -> str:
    return dtype + (" channels_last" if channels_last else "")


@dataclass(frozen=True)
class Choice:
    bf16: bool                                  # the chosen dtype: bf16 autocast (else fp32)
    channels_last: bool                         # the chosen memory format
    step_seconds: dict[str, float]              # candidate label -> median seconds of a training step
    peaks: dict[str, float]                     # dtype -> measured matmul FLOP/s (the bf16 gate)
    skipped: dict[str, str] = field(default_factory=dict)   # candidate label -> why it was not timed (to the end)
    device: str = "cpu"
    batch_size: int = 0
    threads: int = 0                            # torch threads during the measurement (training uses the same)

    @property
    def chosen(self) -> str:
        return label("bf16" if self.bf16 else "fp32", self.channels_last)

    def record(self) -> dict:
        return {**asdict(self), "chosen": self.chosen, "torch_version": torch.__version__}

    def line(self) -> str:
        """One line saying what was chosen and why."""
        others = [f"{name} {seconds * 1e3:.1f} ms" for name, seconds in self.step_seconds.items()
                  if name != self.chosen]
        why = [f"{name} not timed: {reason}" for name, reason in self.skipped.items()]
        return (f"--fast chose {self.chosen} on {self.device} (median step {self.step_seconds[self.chosen] * 1e3:.1f} ms"
                f"{'; ' if others else ''}{', '.join(others)}{'; ' if why else ''}{'; '.join(why)})")


def step_timer(model_config: VGGConfig, batch_size: int, device: str, steps: int = STEPS,
               clock: Callable[[], float] = time.perf_counter) -> Callable[[str, bool, float], tuple[float, bool]]:
    """time(dtype, channels_last, give_up_after) -> (median seconds of a training step, finished): the run's
    model and SGD on seeded random images; unfinished when the untimed step took longer than `give_up_after`."""
    gen = torch.Generator().manual_seed(0)
    size = model_config.image_size
    x0 = torch.randn(batch_size, 3, size, size, generator=gen)
    y = torch.randint(0, model_config.num_classes, (batch_size,), generator=gen).to(device)

    def time_one(dtype: str, channels_last: bool, give_up_after: float) -> tuple[float, bool]:
        torch.manual_seed(0)
        model = build(model_config).to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        x = x0.to(device).contiguous(memory_format=fmt)
        optimizer = sgd(model.parameters(), TrainConfig())   # the learning rate does not change a step's cost
        model.train()
        seconds = []
        for i in range(steps + 1):
            synchronize(device)
            start = clock()
            train_step(model, optimizer, [(x, y)], dtype=dtype)
            synchronize(device)
            seconds.append(clock() - start)
            if i == 0 and seconds[0] > give_up_after:
                return seconds[0], False
        return statistics.median(seconds[1:]), True
    return time_one


def choose(model_config: VGGConfig, batch_size: int, device: str, *,
           peak: Callable[[str, str], float] | None = None,
           time_step: Callable[[str, bool, float], tuple[float, bool]] | None = None) -> Choice:
    """Measure the candidates (see the module's docstring) and return the fastest, with what was measured.
    `peak(device, dtype)` and `time_step(dtype, channels_last, give_up_after)` are injectable for tests."""
    peak = peak or (lambda dev, dtype: matmul_peak_flops(dev, dtype, repeats=PEAK_REPEATS))
    time_step = time_step or step_timer(model_config, batch_size, device)
    kind = device.split(":")[0]
    skipped: dict[str, str] = {}
    peaks = {"fp32": peak(device, "fp32")}
    unsupported = dtype_unsupported_reason(kind, "bf16")
    if unsupported is None:
        peaks["bf16"] = peak(device, "bf16")
    bf16_ok = unsupported is None and peaks["bf16"] > peaks["fp32"]
    if not bf16_ok:
        reason = unsupported or (f"its measured matmul peak, {peaks['bf16'] / 1e9:.3g} GFLOP/s, is below fp32's "
                                 f"{peaks['fp32'] / 1e9:.3g} GFLOP/s")
        skipped["bf16"] = reason
    times: dict[str, float] = {}
    for dtype, cl in CANDIDATES:
        if dtype == "bf16" and not bf16_ok:
            continue
        best = min(times.values(), default=float("inf"))
        seconds, finished = time_step(dtype, cl, GIVE_UP * best)
        if finished:
            times[label(dtype, cl)] = seconds
        else:
            skipped[label(dtype, cl)] = (f"its first step took {seconds * 1e3:.0f} ms, over {GIVE_UP:g}x the best "
                                         f"median so far ({best * 1e3:.1f} ms)")
    dtype, cl = next((d, c) for d, c in CANDIDATES if times.get(label(d, c)) == min(times.values()))
    return Choice(bf16=dtype == "bf16", channels_last=cl, step_seconds=times, peaks=peaks, skipped=skipped,
                  device=device, batch_size=batch_size, threads=torch.get_num_threads())


@dataclass(frozen=True)
class Layout:
    channels_last: bool      # train in channels_last
    step_seconds: dict[str, float]   # "contiguous" / "channels_last" -> median seconds of a training step
    reason: str              # the measured step times behind it, in a line


def pick_layout(step_s: dict[str, float], min_gain: float = MIN_GAIN) -> Layout:
    """channels_last or not from the median step times (seconds) of both memory formats: channels_last only when
    it is at least `min_gain` faster (a smaller gain is within this VM's run-to-run noise, and which layout a run
    uses changes its numerics, so a coin flip between them would change results for nothing)."""
    plain, nhwc = step_s["contiguous"], step_s["channels_last"]
    gain = plain / nhwc if nhwc > 0 else float("nan")
    on = bool(gain >= min_gain)
    return Layout(on, dict(step_s), f"the training step took {plain * 1e3:.1f} ms contiguous and "
                                    f"{nhwc * 1e3:.1f} ms channels_last on this machine ({gain:.2f}x): "
                  + ("training in channels_last" if on else f"contiguous kept (channels_last must be "
                                                             f"{min_gain:.2f}x faster)"))


def layout(model_config: VGGConfig, batch_size: int, device: str = "cpu", *, steps: int = LAYOUT_STEPS,
           min_gain: float = MIN_GAIN, time_step: Callable[[str, bool, float], tuple[float, bool]] | None = None
           ) -> Layout:
    """The memory format of a run whose dtype is fixed (fp32): both layouts' training steps timed as `choose`
    times its candidates (`step_timer`), then `pick_layout`. The demo chooses its study's layout with it."""
    time_step = time_step or step_timer(model_config, batch_size, device, steps=steps)
    times = {"contiguous": time_step("fp32", False, float("inf"))[0],
             "channels_last": time_step("fp32", True, float("inf"))[0]}
    return pick_layout(times, min_gain)
