"""ImageNet-style folders (`root/train/<class>/*.jpg`, `root/val/<class>/*.jpg`), streamed by a DataLoader.

Geometry (rescale to S or a per-image S in [S_min, S_max], random crop, flip) runs per sample in the workers
on PIL images; colour shift and mean subtraction run per batch on the device, as for in-memory data.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .data import DataConfig
from .transforms import preset

MEAN_SAMPLES = 1000


class RandomScale:
    """Isotropic rescale so the smaller side is S ~ U{s_min..s_max} (fixed when equal)."""

    def __init__(self, s_min: int, s_max: int) -> None:
        self.s_min, self.s_max = s_min, s_max

    def __call__(self, img):
        from torchvision.transforms import functional as TF

        return TF.resize(img, random.randint(self.s_min, self.s_max))


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
    train_tf = [RandomScale(s_min, s_max)]
    train_tf.append(T.RandomCrop(image_size) if aug.crop else T.CenterCrop(image_size))
    if aug.flip:
        train_tf.append(T.RandomHorizontalFlip())
    train_tf.append(T.PILToTensor())
    eval_tf = T.Compose([T.Resize(s_min), T.CenterCrop(image_size), T.PILToTensor()])
    to_rgb = T.Lambda(lambda img: img.convert("RGB"))
    train = ImageFolder(str(root / "train"), transform=T.Compose([to_rgb, *train_tf]))
    val = ImageFolder(str(root / "val"), transform=T.Compose([to_rgb, eval_tf]))
    if train.classes != val.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    gen = torch.Generator().manual_seed(seed)
    common = dict(batch_size=batch_size // world_size, num_workers=config.num_workers,
                  pin_memory=torch.cuda.is_available(), persistent_workers=config.num_workers > 0)
    if world_size == 1:
        train_loader = DataLoader(train, shuffle=True, drop_last=False, generator=gen, **common)
        val_loader = DataLoader(val, shuffle=False, **common)
    else:
        from torch.utils.data import DistributedSampler

        # The same permutation on every rank (seed + epoch); each rank takes every N-th index of it.
        sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=seed % 2 ** 31, drop_last=False)
        train_loader = DataLoader(train, sampler=sampler, drop_last=False, **common)
        share = range(len(val) * rank // world_size, len(val) * (rank + 1) // world_size)
        val_loader = DataLoader(val, sampler=list(share), **common)
    # Mean RGB over a seeded sample of training centre crops: exact enough for mean subtraction, and cheap.
    plain = ImageFolder(str(root / "train"), transform=T.Compose([to_rgb, eval_tf]))
    idx = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))[:MEAN_SAMPLES]
    sample = torch.stack([plain[int(i)][0] for i in idx]).float()
    return train_loader, val_loader, len(train.classes), sample.mean(dim=(0, 2, 3)) / 255
