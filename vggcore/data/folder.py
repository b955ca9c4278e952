"""ImageNet-style folders (`root/train/<class>/*.jpg`, `root/val/<class>/*.jpg`), streamed by a DataLoader.

Geometry (rescale to S or a per-image S in [S_min, S_max], random crop, flip) runs per sample in the workers
on PIL images; colour shift and mean subtraction run per batch on the device, as for in-memory data.

Resumable exactly: the sampler tags every index with its epoch, and each image's draws come from a generator
seeded by (seed, epoch, index) alone. So no draw depends on worker processes' RNG state (persistent workers are
seeded once, when the first epoch starts, which differs between a resumed run and an uninterrupted one), on
which worker serves the image, or on how many workers there are.

Every image is read by `ImageReader`, which checks the size its header declares before decoding it: an image
above MAX_IMAGE_PIXELS (PIL's default, 89,478,485 pixels; the environment variable VGGBENCH_MAX_IMAGE_PIXELS
sets another) is refused as a possible decompression bomb, and one that will not decode (truncated, not an
image) is refused too: a one-line DataFileError naming the file, never a skipped file, a hang or an
out-of-memory kill. Refused, not skipped: a skipped image silently changes the data set the run reports on
(and the index-to-image map an exact resume relies on); the fix is the user's: replace the file with a good
copy and rerun the command, which resumes from the last finished epoch (deleting it instead changes the data
set, so start that run over in a new folder). A seeded sample of up to 1,000 training
images is read before training starts (for the mean colour); the other images when an epoch first reaches
them, val/ at the end of the first epoch. No file is scanned ahead: a header pass over ImageNet's 1.3M
files would cost minutes at every start, and a truncated file shows only when it is decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vggcore.config import DataConfig
from vggcore.data.datasets import DataFileError, DataRootError
from vggcore.seeds import derive as mix
from vggcore.data.presets import preset
from vggcore.validation import ConfigError

MEAN_SAMPLES = 1000
# Images above this many pixels are refused unread. PIL's own default, fixed here rather than read from
# PIL.Image.MAX_IMAGE_PIXELS: PIL only warns between 1x and 2x its limit, and refuses above 2x on its own
# whatever this says (so a limit above 2 x 89,478,485 also needs PIL's raised).
MAX_IMAGE_PIXELS = 89_478_485
PIXELS_ENV = "VGGBENCH_MAX_IMAGE_PIXELS"


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


def max_image_pixels() -> int:
    """The pixel limit: VGGBENCH_MAX_IMAGE_PIXELS when set (a positive integer), else MAX_IMAGE_PIXELS. An
    environment setting, not a DataConfig field: it guards the machine and is no part of what a run means
    (a config field would change every run's resolved config)."""
    raw = os.environ.get(PIXELS_ENV)
    if raw is None or not raw.strip():
        return MAX_IMAGE_PIXELS
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{PIXELS_ENV}={raw!r}: expected a positive whole number of pixels (default "
                          f"{MAX_IMAGE_PIXELS:,})", (PIXELS_ENV,), raw)
    return value


class ImageReader:
    """path -> RGB PIL image, refusing an image above `max_pixels` before decoding it, and one that will not
    decode, with a DataFileError naming the file. A picklable object, so workers get the limit the main
    process read."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __call__(self, path: str):
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # The limit is checked below; PIL's warning band (1x-2x its own limit) would only add noise.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:              # reads the header only
                    w, h = img.size
                    if w * h > self.max_pixels:
                        raise self.too_large(path, w, h)
                    return img.convert("RGB")              # decodes: a truncated file fails here
        except Image.DecompressionBombError as err:      # above PIL's own hard limit
            raise DataFileError(f"{path}: refused as a possible decompression bomb ({err})") from None
        except DataFileError:
            raise
        except MemoryError:
            raise
        except Exception as err:  # OSError (truncated, unreadable), UnidentifiedImageError, SyntaxError, ...
            detail = str(err).splitlines()[0] if str(err) else ""
            raise DataFileError(f"{path} is not a readable image ({type(err).__name__}: {detail}); replace or "
                                "delete it and run again") from None

    def too_large(self, path: str, w: int, h: int) -> DataFileError:
        return DataFileError(f"{path}: {w} x {h} = {w * h:,} pixels is above the limit of {self.max_pixels:,} "
                             f"({PIXELS_ENV} sets it); refused as a possible decompression bomb")


def _check(root: Path) -> None:
    if not root.is_dir():
        raise DataRootError(f"data root {root} is not a directory")
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir() or not any(p.is_dir() for p in d.iterdir()):
            raise DataRootError(f"imagefolder expects {d}/<class name>/<images>; {d} is missing or has no "
                                "class folders")


def _image_folder(path: Path, reader: ImageReader, transform=None):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(path), transform=transform, loader=reader)
    except FileNotFoundError as err:  # torchvision's: a class folder without images of a known extension
        raise DataRootError(f"{path}: {err}") from None


def loaders(config: DataConfig, image_size: int, batch_size: int, seed: int, *, rank: int = 0,
            world_size: int = 1) -> tuple[DataLoader, DataLoader, int, torch.Tensor]:
    """(train loader, val loader, number of classes, mean RGB in [0, 1]); batches are uint8 (B, 3, T, T).

    In a world of N ranks (`rank`, `world_size`): training batches are this rank's batch_size / N images through
    a DistributedSampler (seeded from `seed`, reshuffled by `set_epoch`), and the val loader serves this rank's
    contiguous share of val/, every image in exactly one share (no padding, so evaluation stays exact).
    """
    from torchvision import transforms as T

    root = Path(config.data_root).expanduser()
    _check(root)
    reader = ImageReader(max_image_pixels())
    s_min, s_max = config.scales(image_size)
    aug = preset(config.augment)
    eval_tf = T.Compose([T.Resize(s_min), T.CenterCrop(image_size), T.PILToTensor()])
    train = SeededFolder(_image_folder(root / "train", reader),
                         SeededGeometry(image_size, s_min, s_max, aug.crop, aug.flip), seed)
    val = _image_folder(root / "val", reader, eval_tf)
    if train.folder.classes != val.classes:
        only = sorted(set(train.folder.classes) ^ set(val.classes))
        raise DataRootError(f"{root}: train/ and val/ have different class folders ({', '.join(only[:5])} "
                            f"{'is' if len(only) == 1 else 'are'} in one only)")
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
    plain = _image_folder(root / "train", reader, eval_tf)
    idx = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))[:MEAN_SAMPLES]
    sample = torch.stack([plain[int(i)][0] for i in idx]).float()
    return train_loader, val_loader, len(val.classes), sample.mean(dim=(0, 2, 3)) / 255
