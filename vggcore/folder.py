"""ImageNet-style folders (`root/train/<class>/*.jpg`, `root/val/<class>/*.jpg`), streamed by a DataLoader.

Geometry (rescale to S or a per-image S in [S_min, S_max], random crop, flip) runs per sample in the workers
on PIL images; colour shift and mean subtraction run per batch on the device, as for in-memory data.

Resumable exactly: the sampler tags every index with its epoch, and each image's draws come from a generator
seeded by (seed, epoch, index) alone. So no draw depends on worker processes' RNG state (persistent workers are
seeded once, when the first epoch starts, which differs between a resumed run and an uninterrupted one), on
which worker serves the image, or on how many workers there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .data import DataConfig
from .seeds import derive as mix
from .transforms import preset

MEAN_SAMPLES = 1000


class EpochShuffle(DistributedSampler):
    """DistributedSampler whose indices carry their epoch: this rank's share of a permutation seeded by
    (seed, epoch), padded so every rank takes the same number of steps (the whole permutation in a world of 1).
    Yields (epoch, index) keys so the dataset knows which epoch's draws to make; call `set_epoch` every epoch."""

    def __init__(self, size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, int(i)) for i in super().__iter__()])


class SeededGeometry:
    """Rescale to S ~ U{s_min..s_max}, crop (random or centre) and flip one PIL image, every draw from `gen`."""

    def __init__(self, size: int, s_min: int, s_max: int, crop: bool, flip: bool) -> None:
        self.size, self.s_min, self.s_max, self.crop, self.flip = size, s_min, s_max, crop, flip

    def __call__(self, img, gen: torch.Generator) -> torch.Tensor:
        from torchvision.transforms import functional as TF

        draw = lambda high: int(torch.randint(high, (), generator=gen))  # noqa: E731  # uniform on 0..high-1
        img = TF.resize(img, self.s_min + draw(self.s_max - self.s_min + 1))
        w, h = img.size
        if self.crop:
            img = TF.crop(img, draw(h - self.size + 1), draw(w - self.size + 1), self.size, self.size)
        else:
            img = TF.center_crop(img, self.size)
        if self.flip and torch.rand((), generator=gen) < 0.5:
            img = TF.hflip(img)
        return TF.pil_to_tensor(img)                              # (3, size, size) uint8


class SeededFolder(Dataset):
    """Training images keyed by (epoch, index): the same key gives the same tensor in any process."""

    def __init__(self, folder, geometry: SeededGeometry, seed: int) -> None:
        self.folder, self.geometry, self.seed = folder, geometry, seed

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        img, label = self.folder[index]
        return self.geometry(img, torch.Generator().manual_seed(mix(self.seed, epoch, index))), label


def _rgb(img):
    return img.convert("RGB")  # a module-level function, so workers started by spawn can unpickle it


def _check(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a directory")
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir() or not any(p.is_dir() for p in d.iterdir()):
            raise FileNotFoundError(f"imagefolder expects {d}/<class name>/<images>; {d} is missing or has no "
                                    "class folders")


def loaders(config: DataConfig, image_size: int, batch_size: int, seed: int, *, rank: int = 0,
            world_size: int = 1) -> tuple[DataLoader, DataLoader, int, torch.Tensor]:
    """(train loader, val loader, number of classes, mean RGB in [0, 1]); batches are uint8 (B, 3, T, T).

    In a world of N ranks (`rank`, `world_size`): training batches are this rank's batch_size / N images through
    a DistributedSampler (seeded from `seed`, reshuffled by `set_epoch`), and the val loader serves this rank's
    contiguous share of val/, every image in exactly one share (no padding, so evaluation stays exact).
    """
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    root = Path(config.data_root).expanduser()
    _check(root)
    s_min, s_max = config.scales(image_size)
    aug = preset(config.augment)
    to_rgb = T.Lambda(_rgb)
    eval_tf = T.Compose([to_rgb, T.Resize(s_min), T.CenterCrop(image_size), T.PILToTensor()])
    train = SeededFolder(ImageFolder(str(root / "train"), transform=to_rgb),
                         SeededGeometry(image_size, s_min, s_max, aug.crop, aug.flip), seed)
    val = ImageFolder(str(root / "val"), transform=eval_tf)
    if train.folder.classes != val.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    common = dict(batch_size=batch_size // world_size, num_workers=config.num_workers,
                  pin_memory=torch.cuda.is_available(), persistent_workers=config.num_workers > 0)
    # Each loader gets its own generator for the worker base seed it draws when its workers start, so that
    # draw never moves the global RNG that dropout uses (no augmentation reads the workers' RNG any more).
    train_loader = DataLoader(train, sampler=EpochShuffle(len(train), seed, rank=rank, world_size=world_size),
                              drop_last=False, generator=torch.Generator().manual_seed(seed), **common)
    # Every val image in exactly one rank's contiguous share: no padding, so evaluation stays exact.
    share = range(len(val) * rank // world_size, len(val) * (rank + 1) // world_size)
    val_loader = DataLoader(val, sampler=list(share), generator=torch.Generator().manual_seed(seed), **common)
    # Mean RGB over a seeded sample of training centre crops: exact enough for mean subtraction, and cheap.
    plain = ImageFolder(str(root / "train"), transform=eval_tf)
    idx = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))[:MEAN_SAMPLES]
    sample = torch.stack([plain[int(i)][0] for i in idx]).float()
    return train_loader, val_loader, len(val.classes), sample.mean(dim=(0, 2, 3)) / 255
