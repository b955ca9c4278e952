"""Precise BatchNorm: running statistics recomputed over training batches."""

from __future__ import annotations

from typing import Iterable
import torch


BATCH_NORMS = (torch.nn.BatchNorm2d, torch.nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, images: Iterable[torch.Tensor], autocast_dtype=None) -> None:
    """Precise BatchNorm (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): replace every BatchNorm's
    running mean and variance by their averages over `images`, batch by batch, before an evaluation.

    With a few dozen steps per epoch and momentum 0.1, the running estimates still weigh the first steps' (and the
    initial) statistics: after two epochs of digits at batch 64 a net at 97% with batch statistics scored 90% with
    its running ones. Training uses batch statistics, so this changes what evaluation sees and nothing of the
    training trajectory; only the BatchNorms are in training mode while it runs (dropout off: no random draw)."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    if not norms:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None    # a cumulative average over the batches below
        m.train()
    try:
        for x in images:
            with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
