"""One run's parts, built the one way every trainer builds them: `vggcore train`, the ablation executors (through
`train`) and the time-to-accuracy benchmark (bench/tta.py, which drives it epoch by epoch and stops at its target).

    >>> trainer = Trainer(VGGConfig("A", batch_norm=True, width=0.25, image_size=32), DataConfig("digits"),
    ...                   TrainConfig(epochs=5, batch_size=64), World())
    >>> row = trainer.epoch(0)              # train epoch 1, score the validation split: a history row
    >>> trainer.test()["top1_error"]

Building one loads the dataset (the data's first touch), then seeds torch with the run's seed and builds the
network, so the same config builds the same initial weights wherever it is built. `train` (vggcore.train.loop)
adds the pre-initialisation from net A, checkpoints, resume and the result record around it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from vggcore.config import DataConfig, TrainConfig, VGGConfig
from vggcore.data.batches import Batches
from vggcore.evaluate.score import score_split
from vggcore.model.network import build
from vggcore.train.checkpoint import load_state
from vggcore.train.distributed import wrap_model
from vggcore.train.epoch import make_schedule, train_epoch, validate_epoch
from vggcore.seeds import SCHEME
from vggcore.train.sgd import sgd
from vggcore.world import World


class Trainer:
    """The batches, the network (`model`; `net` is what trains: DDP over it in a world of N), SGD and the schedule
    of one run, and its epochs."""

    def __init__(self, model_config: VGGConfig, data_config: DataConfig, train_config: TrainConfig, world: World,
                 scheme: str = SCHEME) -> None:
        self.config, self.world, self.scheme = train_config, world, scheme
        self.batches = Batches(data_config, model_config, train_config, world)   # loads the dataset
        self.model_config = dataclasses.replace(model_config, num_classes=self.batches.num_classes)
        torch.manual_seed(train_config.seed)
        model = build(self.model_config).to(world.device)   # cuda:LOCAL_RANK under torchrun
        self.model = model.to(memory_format=torch.channels_last) if train_config.channels_last else model
        self.optimizer = sgd(self.model.parameters(), train_config)
        self.schedule = make_schedule(train_config)
        self.net: torch.nn.Module = self.model
        self.autocast = torch.bfloat16 if train_config.bf16 else None

    def load(self, state: dict, path: Path) -> None:
        """Resume from a checkpoint's state: the network's weights, SGD's momenta and the schedule."""
        load_state(self.model, state["model"], path, "model")
        load_state(self.optimizer, state["optimizer"], path, "optimizer")
        load_state(self.schedule, state["schedule"], path, "schedule")

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict()}

    def distribute(self) -> None:
        """DDP over the network in a world of N (SyncBatchNorm first when the config asks); nothing in one
        process. Call it once, after any weights are loaded."""
        self.net = wrap_model(self.model, self.world, self.config.sync_bn)
        if self.net is not self.model and self.config.sync_bn:
            self.model = self.net.module  # the SyncBatchNorm copy: checkpoints and evaluation use it

    def train_epoch(self, epoch: int) -> dict:
        """The training half of 0-based `epoch` (`vggcore.train.epoch.train_epoch`)."""
        return train_epoch(self.net, self.optimizer, self.schedule, self.batches, self.config, epoch, self.world,
                           self.scheme)

    def validate(self, epoch: int, trained: dict) -> dict:
        """The validation half of `epoch`: the epoch's history row."""
        return validate_epoch(self.model, self.schedule, self.batches, self.config, epoch, self.world, trained)

    def epoch(self, epoch: int) -> dict:
        return self.validate(epoch, self.train_epoch(epoch))

    def test(self) -> dict[str, float]:
        """{"loss", "top1_error", "top5_error"} on the test split now."""
        return score_split(self.model, self.batches, "test", self.world, self.autocast)
