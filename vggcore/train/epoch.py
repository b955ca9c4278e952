"""One epoch of training as `train` runs it: the training half and the validation half."""

from __future__ import annotations

import math
import time
from typing import Iterator
import torch
from vggcore.world import World
from vggcore.train.distributed import all_sum, guarded
from vggcore.device import synchronize
from vggcore.model.network import VGG
from vggcore.train.schedules import Schedule
from vggcore.seeds import SCHEME, stream_seed
from vggcore.train.step import micro_batches, train_step
from vggcore.data.batches import Batches
from vggcore.config import TrainConfig
from vggcore.evaluate.batchnorm import recalibrate_bn
from vggcore.evaluate.score import score_split


class Diverged(Exception):
    pass


# -------------------------------------------------------------------------------------------- the loop
def _epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, config: TrainConfig,
           epoch: int, world: World) -> dict:
    model.train()
    micro = config.micro_batch or config.batch_size
    dtype = "bf16" if config.bf16 else "fp32"
    seen, loss_sum, correct, data_s = 0, 0.0, 0, 0.0

    def check(batch_loss: float, batch_correct: int, n: int) -> tuple[float, int, int]:
        if world.distributed:  # every rank sees the global sums, so all stop together on divergence
            batch_loss, batch_correct, n = all_sum(world, [batch_loss, batch_correct, n])
        if not math.isfinite(batch_loss):
            raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
        return batch_loss, batch_correct, n

    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        try:
            x, y, global_n = next(batches)
        except StopIteration:
            break
        synchronize(world.device)
        data_s += time.perf_counter() - t0
        batch_loss, batch_correct, n = train_step(model, optimizer, micro_batches(x, y, micro, global_n, world),
                                                  global_n=global_n, world_size=world.world_size, dtype=dtype,
                                                  check=check)
        seen += int(n)
        correct += int(batch_correct)
        loss_sum += batch_loss
    synchronize(world.device)
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "epoch_seconds": seconds, "images_per_s": seen / seconds, "data_seconds": data_s,
            "data_fraction": data_s / seconds}


def make_schedule(train_config: TrainConfig) -> Schedule:
    """The learning-rate schedule of a run, spanning its `epochs`."""
    return Schedule(train_config.schedule, train_config.lr, train_config.epochs,
                    warmup_epochs=train_config.warmup_epochs, gamma=train_config.gamma,
                    step_epochs=train_config.step_epochs, patience=train_config.patience,
                    max_drops=train_config.max_drops)


def train_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, batches: Batches,
                config: TrainConfig, epoch: int, world: World, scheme: str = SCHEME) -> dict:
    """The training half of 0-based `epoch` as `train` runs it: the epoch's dropout seed and learning rate, then
    one pass over the training split. `net` is what trains (DDP in a world of N). Returns {"lr", **timings and
    training figures}; `validate_epoch` completes the history row. The time-to-accuracy benchmark
    (bench/tta.py) runs these two halves itself, so its runs are `train`'s runs stopped early."""
    # Dropout; data draws have their own. Rank 0 keeps the single-process stream, the others their own.
    torch.manual_seed(stream_seed(scheme, config.seed, epoch, "dropout", world.rank))
    lr = schedule.lr(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    stats = guarded(world, f"training epoch {epoch + 1}", lambda: _epoch(
        net, optimizer, batches.train(epoch, config.seed, scheme), config, epoch, world))
    return {"lr": lr, **stats}


def validate_epoch(model: VGG, schedule: Schedule, batches: Batches, config: TrainConfig, epoch: int,
                   world: World, trained: dict) -> dict:
    """The evaluation half of `epoch`: the validation split scored (every epoch: the cadence the plateau schedule
    and the time-to-accuracy benchmark rely on), the schedule told, and the epoch's history row returned."""
    if config.bn_recalibrate:
        recalibrate_bn(model, batches.calibration(config.bn_recalibrate), torch.bfloat16 if config.bf16 else None)
    val = score_split(model, batches, "val", world, torch.bfloat16 if config.bf16 else None)
    schedule.report(epoch, 1 - val["top1_error"])
    return {"epoch": epoch + 1, "lr": trained["lr"], **{k: v for k, v in trained.items() if k != "lr"},
            "val_loss": val["loss"], "val_top1_error": val["top1_error"], "val_top5_error": val["top5_error"]}



