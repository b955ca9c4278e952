"""One SGD step of training, and the SGD that takes it: the trainer, the benchmark and the scaling benchmark all
run these, so a benchmarked `train_step` is exactly the step training takes.

    >>> from vggcore.step import micro_batches, sgd, train_step
    >>> optimizer = sgd(model.parameters(), TrainConfig())            # the paper's SGD (section 3.1)
    >>> sgd(model.parameters(), TrainConfig(), implementation="fused")   # another implementation (SGD_CHOICES)
    >>> loss_sum, correct, n = train_step(model, optimizer, [(x, y)], dtype="bf16")

A step: zero the gradients; for each piece of the batch, forward under autocast, cross-entropy on the logits in
fp32, backward with the piece weighted by its share of the global batch; then the SGD update. Under
DistributedDataParallel the gradients are all-reduced on the last piece only (`no_sync` on the others).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import World
from .measure import autocast

if TYPE_CHECKING:
    from .train import TrainConfig

# How torch.optim.SGD runs its update. "auto" leaves the choice to PyTorch (foreach on CUDA, the for-loop
# elsewhere); the others force one.
SGD_IMPLEMENTATIONS = {"auto": {}, "for-loop": {"foreach": False}, "foreach": {"foreach": True},
                       "fused": {"fused": True}}
# The implementations the benchmark's --vgg-optimizer takes (every one but PyTorch's own choice).
SGD_CHOICES = ("for-loop", "foreach", "fused")
# Which implementations give bit for bit the parameters of PyTorch's for-loop SGD (momentum and weight decay
# included), per device: tests/test_sgd_implementations.py checks every entry both ways on the devices it has.
# On CPU foreach runs the for-loop's own elementwise kernels one tensor after another (torch has no CPU foreach
# kernels), so its results are the for-loop's; fused rounds some of the elements past a tensor's last full vector
# differently (of a 31-element tensor, elements 24 and 26 were 4 and 1 ulp off after six steps; in a tiny VGG the
# 10-element last bias differed from the second step on), so it changes training's numerics.
# CUDA and MPS are not judged yet: only the for-loop is listed until the test has run there.
BITWISE_SGD = {"cpu": ("for-loop", "foreach"), "cuda": ("for-loop",), "mps": ("for-loop",)}
# The default per device: the fastest of the bit-for-bit ones, so choosing it changes no result and needs no
# config field (a run trained before this table existed, under "auto", is the same run). cpu: foreach, which on
# the AMX machine took 901 ms against the for-loop's 1,622 in a bf16 VGG-A step and here (AVX2, loaded)
# was as fast as the for-loop in the SGD step alone; the lead's A/B (docs/profile.md) confirms or flips
# it, and either way no number changes. cuda: foreach, PyTorch's own default there (so "auto" ran it already).
# mps: the for-loop, PyTorch's own default there.
DEFAULT_SGD = {"cpu": "foreach", "cuda": "foreach", "mps": "for-loop"}


def default_sgd(device: str) -> str:
    """The SGD implementation training and the benchmark use on `device` (cpu, cuda, cuda:1, mps)."""
    return DEFAULT_SGD.get(device.partition(":")[0], "auto")


Piece = tuple[torch.Tensor, torch.Tensor]   # (images (B, 3, S, S), labels (B,)) of one forward/backward
# Called with this rank's (loss sum, correct, images) between backward and update; returns the figures to report
# (the trainer's sums over the ranks) and raises to skip the update (a diverged loss).
Check = Callable[[float, int, int], tuple[float, int, int]]


def sgd(params: Iterable[torch.nn.Parameter], config: TrainConfig, *,
        implementation: str | None = None) -> torch.optim.SGD:
    """SGD with `config`'s lr, momentum and weight decay (TrainConfig()'s defaults are the paper's), run by
    `implementation` (SGD_IMPLEMENTATIONS), by default the one DEFAULT_SGD names for the parameters' device."""
    params = list(params)
    if implementation is None:
        implementation = default_sgd(params[0].device.type if params else "cpu")
    if implementation not in SGD_IMPLEMENTATIONS:
        raise ValueError(f"unknown SGD implementation {implementation!r}; choose {', '.join(SGD_IMPLEMENTATIONS)}")
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           **SGD_IMPLEMENTATIONS[implementation])


def sgd_implementation(optimizer: torch.optim.Optimizer) -> str:
    """The SGD_IMPLEMENTATIONS name an optimizer `sgd` built runs ("auto" where it left the choice to PyTorch)."""
    defaults = optimizer.defaults
    if defaults.get("fused"):
        return "fused"
    return {True: "foreach", False: "for-loop"}.get(defaults.get("foreach"), "auto")


def micro_batches(x: torch.Tensor, y: torch.Tensor, micro: int, global_n: int | None = None,
                  world: World | None = None) -> list[Piece]:
    """The forward/backward pieces of this rank's slice of a global batch of `global_n` images, at most `micro`
    images each. Every rank must run the same number of them (DDP all-reduces on the last), so in a world of N
    the count comes from the largest slice of the global batch."""
    if world is None or not world.distributed:
        return list(zip(x.split(micro), y.split(micro)))
    global_n = len(y) * world.world_size if global_n is None else global_n
    largest = -(-global_n // world.world_size)
    count = max(1, min(-(-largest // micro), global_n // world.world_size))  # never an empty piece
    return list(zip(x.tensor_split(count), y.tensor_split(count)))


def forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: str = "fp32"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits): the forward under `dtype` autocast, the cross-entropy on the logits in fp32."""
    with autocast(x.device.type, dtype):
        logits = model(x)                              # (B, num_classes)
        loss = F.cross_entropy(logits.float(), y)
    return loss, logits


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer | None, pieces: Sequence[Piece], *,
               global_n: int | None = None, world_size: int = 1, dtype: str = "fp32",
               check: Check | None = None) -> tuple[float, int, int]:
    """One step over `pieces` (this rank's share of a global batch of `global_n` images): gradients of the mean
    loss, then `check`, then the update (none when `optimizer` is None: forward and backward only).

    Returns (loss summed over this rank's images, correct top-1 predictions, images), or what `check` returned.
    """
    model.zero_grad(set_to_none=True)
    global_n = sum(len(ys) for _, ys in pieces) * world_size if global_n is None else global_n
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    loss_sum, correct, n = 0.0, 0, 0
    for i, (xs, ys) in enumerate(pieces):
        # DDP all-reduces the gradients on the last piece only; the others accumulate locally.
        with model.no_sync() if ddp and i < len(pieces) - 1 else nullcontext():
            loss, logits = forward_loss(model, xs, ys, dtype)
            # Each piece weighs its share of the global batch (DDP divides the sum over ranks by N), so the step
            # follows the global batch's mean gradient however the images are split.
            (loss * (len(ys) * world_size / global_n)).backward()
        loss_sum += float(loss.detach()) * len(ys)
        correct += int((logits.argmax(1) == ys).sum())
        n += len(ys)
    if check is not None:
        loss_sum, correct, n = check(loss_sum, correct, n)
    if optimizer is not None:
        optimizer.step()
    return loss_sum, correct, n

