"""One SGD step of training: the trainer, the benchmark and the scaling benchmark all run it, so a benchmarked
`train_step` is exactly the step training takes (the SGD that takes it: `vggcore.train.sgd`).

    >>> from vggcore.train.sgd import sgd
    >>> from vggcore.train.step import micro_batches, train_step
    >>> optimizer = sgd(model.parameters(), TrainConfig())            # the paper's SGD (section 3.1)
    >>> loss_sum, correct, n = train_step(model, optimizer, [(x, y)], dtype="bf16")

A step: zero the gradients; for each piece of the batch, forward under autocast, cross-entropy on the logits in
fp32, backward with the piece weighted by its share of the global batch; then the SGD update. Under
DistributedDataParallel the gradients are all-reduced on the last piece only (`no_sync` on the others).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vggcore.world import World
from vggcore.device import autocast


Piece = tuple[torch.Tensor, torch.Tensor]   # (images (B, 3, S, S), labels (B,)) of one forward/backward
# Called with this rank's (loss sum, correct, images) between backward and update; returns the figures to report
# (the trainer's sums over the ranks) and raises to skip the update (a diverged loss).
Check = Callable[[float, int, int], tuple[float, int, int]]


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

