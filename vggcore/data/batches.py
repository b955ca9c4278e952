"""The batch iterator: training and evaluation batches as float tensors on the device."""

from __future__ import annotations

from typing import Iterator
import torch
from vggcore.config import VGGConfig
from vggcore.config import DataConfig
from vggcore.data.datasets import Dataset, load
from vggcore.world import World, shard
from vggcore.data.transforms import centre_batches
from vggcore.seeds import SCHEME, stream_seed
from vggcore.data.presets import Augment, preset
from vggcore.data.transforms import augment_batch
from vggcore.validation import ConfigError
from vggcore.config import TrainConfig


# --------------------------------------------------------------------------------------------- the data side
class Batches:
    """Training and evaluation batches as float tensors on the device, from either data path.

    `train` yields (images, labels, global batch size): in a world of N ranks, this rank's slice of a global
    batch. `evaluation` yields this rank's share of a split, every image in exactly one rank's share.
    """

    def __init__(self, data_config: DataConfig, model_config: VGGConfig, train_config: TrainConfig,
                 world: World | None = None) -> None:
        self.world = world or World(device=train_config.device)
        self.size = model_config.image_size
        self.scale_min, self.scale_max = data_config.scales(self.size)
        self.aug: Augment = preset(data_config.augment)
        self.device = self.world.device
        self.batch_size, self.eval_batch_size = train_config.batch_size, train_config.eval_batch_size
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.folder = data_config.dataset == "imagefolder"
        if self.folder and train_config.bn_recalibrate:
            raise ConfigError("bn_recalibrate draws its batches from the in-memory training split; imagefolder "
                              "data is streamed (set bn_recalibrate 0)", ("bn_recalibrate", "dataset"),
                              train_config.bn_recalibrate)
        if self.folder:
            from vggcore.data.folder import loaders

            self.train_loader, self.val_loader, self.num_classes, self.mean_rgb = loaders(
                data_config, self.size, train_config.batch_size, train_config.seed,
                rank=self.world.rank, world_size=self.world.world_size)
            self.data: Dataset | None = None
            self.train_size = len(self.train_loader.dataset)
        else:
            self.data = load(data_config, self.size).to(self.device)
            self.num_classes, self.mean_rgb = self.data.num_classes, self.data.mean_rgb
            self.train_size = len(self.data.train)
            if self.train_size < 2:
                raise ConfigError(f"the training split of {data_config.dataset} has {self.train_size} image(s), "
                                  "fewer than the 2 a step needs", ("dataset",), data_config.dataset)

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def train(self, epoch: int, seed: int, scheme: str = SCHEME) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """`scheme`: the run's seed scheme (`vggcore.seeds`), the one it was started under."""
        gen = torch.Generator().manual_seed(stream_seed(scheme, seed, epoch, "order"))
        world = self.world
        # In a world of N, each rank draws its own augmentation (seeded by rank and epoch) for its slice only,
        # so no rank augments images it does not train on; the permutation is the same on every rank.
        aug_gen = gen if not world.distributed else torch.Generator().manual_seed(
            stream_seed(scheme, seed, epoch, "augment", world.rank))
        if self.folder:
            self.train_loader.sampler.set_epoch(epoch)  # order and per-image draws follow (seed, epoch)
            colour_only = Augment(color=self.aug.color)
            for images, labels in self.train_loader:
                images = images.to(self.device, non_blocking=True)
                x = augment_batch(images, self.size, self.size, self.size, colour_only, self.mean_rgb, aug_gen)
                yield self._ready(x), labels.to(self.device, non_blocking=True), len(labels) * world.world_size
            return
        split = self.data.train
        n = len(split)
        perm = torch.randperm(n, generator=gen).to(self.device)
        # Drop a last batch smaller than half a batch (BatchNorm needs >1 image; tiny batches add noise).
        stop = n if n % self.batch_size >= max(2, self.batch_size // 2) else n - n % self.batch_size or n
        for i in range(0, stop, self.batch_size):
            idx = perm[i:i + self.batch_size]
            if world.distributed:
                if len(idx) < world.world_size:  # a last batch too small to give every rank an image
                    break
                idx = idx[shard(len(idx), world)]  # this rank's contiguous slice of the global batch
            x = augment_batch(split.images[idx], self.size, self.scale_min, self.scale_max, self.aug,
                              self.mean_rgb, aug_gen)
            yield self._ready(x), split.labels[idx], len(perm[i:i + self.batch_size])

    def calibration(self, batches: int) -> Iterator[torch.Tensor]:
        """The first `batches` training batches in the split's order, seen as evaluation sees images (centre, no
        augmentation, no random draw): the same images on every rank, so every rank's BatchNorm agrees."""
        split = self.data.train
        n = min(len(split), batches * self.batch_size)
        for x, _ in centre_batches(split.images[:n], split.labels[:n], self.mean_rgb, self.size, self.scale_min,
                                   self.batch_size):
            yield self._ready(x)

    def evaluation(self, which: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.folder:  # val/ serves as the test split, as in the paper
            for images, labels in self.val_loader:
                x = images.to(self.device).float().div_(255) - self.mean_rgb.to(self.device)[None, :, None, None]
                yield self._ready(x), labels.to(self.device)
            return
        split = getattr(self.data, which)
        mine = shard(len(split), self.world)  # the whole split in one process
        for x, y in centre_batches(split.images[mine], split.labels[mine], self.mean_rgb, self.size,
                                   self.scale_min, self.eval_batch_size):
            yield self._ready(x), y



