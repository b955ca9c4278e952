"""Build the model and the step for one `BenchCase`, and measure what the timing alone cannot tell."""

from __future__ import annotations

import gc
from dataclasses import asdict
from typing import Callable

import pytest
import torch
from torch import nn

from vggcore import VGGConfig, build, totals
from vggcore.model.summary import summary
from vggcore.device import autocast, device_name, synchronize
from vggcore.memory import is_out_of_memory, measure_peak_memory, saved_activation_bytes
from vggcore.threads import threads
from vggcore.train.step import forward_loss, train_step
from vggcore.train.sgd import sgd
from vggcore.config import TrainConfig

from .cases import BenchCase
from .sampling import Sample

NUM_CLASSES = 1000


def model_config(case: BenchCase) -> VGGConfig:
    """The configuration of the network this case times: torchvision's own model always has its
    AdaptiveAvgPool2d((7, 7)) head, whatever --vgg-head says for vggcore, so its cost is counted with it."""
    head = "torchvision" if case.implementation == "torchvision" else case.head
    return VGGConfig(arch=case.arch, image_size=case.image_size, width=case.width, num_classes=NUM_CLASSES,
                     head=head)


def make_model(case: BenchCase) -> nn.Module:
    if case.implementation == "torchvision":
        import torchvision

        model = getattr(torchvision.models, model_config(case).torchvision_name)(weights=None, num_classes=NUM_CLASSES)
    else:
        model = build(model_config(case))
    model = model.to(case.device)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


class Step:
    """One benchmarked step of a case: inputs made and seeded up front, `__call__` is what gets timed.

    forward_backward and train_step run training's own step (`vggcore.train.step.train_step`, the paper's SGD from
    `TrainConfig()` in the case's implementation; the learning rate does not change the cost of a step), without
    or with the update."""

    def __init__(self, case: BenchCase, model: nn.Module) -> None:
        self.case, self.model = case, model
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(case.batch_size, 3, case.image_size, case.image_size, generator=gen)
        self.x = x.to(case.device, memory_format=torch.channels_last if case.channels_last else torch.contiguous_format)
        self.y = torch.randint(0, NUM_CLASSES, (case.batch_size,), generator=gen).to(case.device)
        self.runner = torch.compile(model) if case.compiled else model
        self.optimizer = (sgd(model.parameters(), TrainConfig(), implementation=case.optimizer or None)
                          if case.mode == "train_step" else None)
        model.train(case.mode != "forward")

    def forward_loss(self) -> torch.Tensor:
        """The loss of the step's forward, as training computes it."""
        return forward_loss(self.runner, self.x, self.y, self.case.dtype)[0]

    def __call__(self) -> None:
        if self.case.mode == "forward":
            with torch.inference_mode(), autocast(self.case.device, self.case.dtype):
                self.runner(self.x)
        else:
            train_step(self.runner, self.optimizer, [(self.x, self.y)], dtype=self.case.dtype)
        synchronize(self.case.device)  # the timed call ends when the device is done

    def activation_bytes(self) -> int:
        """What this case's forward keeps for backward (0 for inference)."""
        if self.case.mode == "forward":
            return 0
        with autocast(self.case.device, self.case.dtype):
            return saved_activation_bytes(self.model, lambda: self.runner(self.x))


def warm_up(step: Callable[[], object]) -> None:
    """Two untimed calls: the first compiles and allocates gradients and optimizer state, the second settles
    the allocator's caches."""
    step()
    step()


def free_memory(cache: dict) -> None:
    """Drop the cached models and hand the freed memory back (CUDA's caching allocator keeps it otherwise)."""
    cache.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def skip_oom(err: Exception, case: BenchCase, cache: dict) -> None:
    """Skip the running test when `err` is an out-of-memory error (after freeing the cache); re-raise otherwise."""
    if not is_out_of_memory(err):
        raise err
    free_memory(cache)
    pytest.skip(f"out of memory on {case.device} at batch {case.batch_size}: {str(err).splitlines()[0]}")


def flops_per_image(case: BenchCase) -> tuple[int, int]:
    """(forward MACs per image, FLOPs per image of this case's step).

    Backward costs two forward's worth of MACs (input and weight gradients) except the first conv, whose input
    needs no gradient. The SGD update's elementwise work is not counted.
    """
    table = summary(model_config(case))
    macs = totals(table)["macs"]
    if case.mode == "forward":
        return macs, 2 * macs
    first_conv = int(table.loc[table["kind"].str.startswith("conv"), "macs"].iloc[0])
    return macs, 2 * (3 * macs - first_conv)


def measure(case: BenchCase, step: Step, timed: Callable[[], Sample | None], peaks: dict[str, float]) -> dict:
    """Run the timing (`timed` returns the sampled rounds, or None when timing is disabled), then one step under
    the memory probe. Without timed rounds no throughput figure is recorded: an untimed call is no measurement."""
    sample = timed()
    with measure_peak_memory(case.device) as peak:
        step()
    macs, step_flops = flops_per_image(case)
    param_bytes = sum(p.numel() * p.element_size() for p in step.model.parameters())
    if sample is None:
        timing = {"timed": False}
    else:
        images_per_s = case.batch_size / sample.median
        achieved = step_flops * images_per_s
        timing = {"timed": True, "images_per_s": round(images_per_s, 3), "achieved_flops": achieved,
                  "mfu": achieved / peaks["peak_flops"], "rounds": len(sample.times),
                  **sample.extra_info()}
    return {
        **asdict(case),
        "device_name": device_name(case.device),
        "macs_per_image": macs,
        "flops_per_image": step_flops,
        **peaks,
        **timing,
        "peak_memory_bytes": peak.bytes,
        "memory_method": peak.method,
        "activation_bytes": step.activation_bytes(),
        "param_bytes": param_bytes,
        "torch_version": torch.__version__,
        "threads": threads(),
    }
