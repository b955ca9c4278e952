"""Datasets by name, held as whole uint8 tensors when they fit in memory (the fast path), plus ImageFolder.

digits       scikit-learn's 1,797 real handwritten digits (shipped inside scikit-learn: no download),
             upscaled to the stored size and given 3 channels; fixed seeded 70/15/15 train/val/test split
cifar10      CIFAR-10 / CIFAR-100 in their python-pickle format, read from `data_root` through
cifar100     vggcore.data.safe_pickle, which runs no code a file names (train: 45k/50k for training, 5k
             seeded validation split; test: the official test batch)
imagefolder  `data_root/train/<class>/*` and `data_root/val/<class>/*` (ImageNet layout); val serves as
             the validation and the test split, as in the paper, which reports on ILSVRC's validation set
synthetic    random images and labels of the configured shape, for smoke tests and benchmarks
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from vggcore.data import safe_pickle
from vggcore.errors import UserError
from vggcore.config import DataConfig


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class DataRootError(UserError, FileNotFoundError):
    """The data root is missing or lacks the files or folders its dataset needs."""


class DataFileError(UserError, ValueError):
    """A file in the dataset that is not what its name says (a damaged CIFAR batch, an unreadable image)."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker's error reaches the main process rebuilt from its traceback text ("Caught
        # DataFileError in DataLoader worker process 0.\nOriginal Traceback ... DataFileError: <message>"):
        # keep the one line that names the file, so the command line still prints one line.
        prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last[len(prefix):] if last.startswith(prefix) else message
        super().__init__(message)


@dataclass
class Split:
    images: torch.Tensor   # (N, 3, R, R) uint8
    labels: torch.Tensor   # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean_rgb: torch.Tensor   # (3,) in [0, 1], from the training split

    def to(self, device: torch.device | str) -> "Dataset":
        move = lambda s: Split(s.images.to(device), s.labels.to(device))  # noqa: E731
        return Dataset(self.name, move(self.train), move(self.val), move(self.test), self.num_classes,
                       self.mean_rgb)


def load(config: DataConfig, image_size: int) -> Dataset:
    """The in-memory splits of a dataset, images stored at the largest training scale (digits, synthetic) or
    their native size (CIFAR)."""
    _, s_max = config.scales(image_size)
    if config.dataset == "digits":
        images, labels = _digits(s_max)
        return _split_three(config, images, labels, 10)
    if config.dataset == "synthetic":
        gen = torch.Generator().manual_seed(config.split_seed)
        images = torch.randint(0, 256, (config.synthetic_samples, 3, s_max, s_max), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, config.synthetic_classes, (config.synthetic_samples,), generator=gen)
        return _split_three(config, images, labels, config.synthetic_classes)
    if config.dataset in ("cifar10", "cifar100"):
        return _cifar(config)
    raise ValueError("imagefolder data is streamed: use vggcore.data.folder.loaders()")


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: (1797, 8, 8) images in 0..16 and their labels, read from the package's own
    digits.csv.gz as `load_digits` reads it, without importing sklearn.datasets (about 1.2 s, in every training
    process); `load_digits` itself where the file is not in its place."""
    spec = importlib.util.find_spec("sklearn")   # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _digits_arrays()
    x = torch.from_numpy(images).float()[:, None] / 16.0              # (1797, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()   # (1797, 3, S, S)
    return x, torch.from_numpy(labels).long()


def _mean_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(0, 2, 3)) / 255


def _permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _split_three(config: DataConfig, images: torch.Tensor, labels: torch.Tensor, classes: int) -> Dataset:
    perm = _permutation(len(labels), config.split_seed)
    n_hold = round(len(labels) * config.val_fraction)
    val, test, train = perm[:n_hold], perm[n_hold:2 * n_hold], perm[2 * n_hold:]
    split = lambda idx: Split(images[idx], labels[idx])  # noqa: E731
    return Dataset(config.dataset, split(train), split(val), split(test), classes, _mean_rgb(images[train]))


# ------------------------------------------------------------------------------------------------- CIFAR
CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels", 100),
}


CIFAR_META = {"cifar10": "batches.meta", "cifar100": "meta"}   # class names; not needed for training


CIFAR_BATCH, CIFAR_META_FILE = "a CIFAR python-format batch", "a CIFAR python-format meta file"


CIFAR_PIXELS = 3 * 32 * 32


def _cifar_dir(config: DataConfig) -> Path:
    folder, train_files, test_file, _, _ = CIFAR_LAYOUT[config.dataset]
    root = Path(config.data_root).expanduser()
    if not root.is_dir():
        raise DataRootError(f"data root {root} is not a directory")
    for candidate in (root, root / folder):
        if all((candidate / f).is_file() for f in [*train_files, test_file]):
            return candidate
    raise DataRootError(
        f"no {config.dataset} files under {root}: expected {', '.join([*train_files, test_file])} in {root} or "
        f"{root / folder}. Get the python version from {CIFAR_URL} and extract it there (vggbench never downloads)")


def _not_cifar(path: Path, why: str) -> DataFileError:
    return DataFileError(f"{path} is not {CIFAR_BATCH} ({why})")


def read_cifar_file(path: Path, label_key: bytes, classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled CIFAR batch -> uint8 (N, 3, 32, 32) and int64 labels (in range(classes) when given).

    Read through vggcore.data.safe_pickle, so a file that names anything but plain data and numpy arrays is
    refused before any of it runs. Checked like the real files: a dict with b"data", a numpy array of
    N x 3072 integers in 0..255, and `label_key`, a list (or 1-D array) of N integers."""
    batch = safe_pickle.load(path, what=CIFAR_BATCH)
    if not isinstance(batch, dict):
        raise _not_cifar(path, f"it holds a {type(batch).__name__}, not a dict")
    for key in (b"data", label_key):
        if key not in batch:
            keys = ", ".join(_key(k) for k in list(batch)[:8])
            raise _not_cifar(path, f"no {key!r} entry; it has {keys or 'none'}")
    data, labels = batch[b"data"], batch[label_key]
    # An array only: a nested list could be a few bytes of shared references that np.asarray would expand to
    # any size, while an unpickled array holds exactly the bytes the file holds.
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "ui":
        kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise _not_cifar(path, f"b'data' is {kind}, not a numpy array of uint8 pixels")
    if data.size % CIFAR_PIXELS:
        raise _not_cifar(path, f"b'data' holds {data.size} values, not a multiple of 3 x 32 x 32 = {CIFAR_PIXELS}")
    if data.dtype != np.uint8 and data.size and (data.min() < 0 or data.max() > 255):
        raise _not_cifar(path, f"b'data' holds values outside 0..255 ({data.min()}..{data.max()})")
    images = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)
    labels = _labels(path, label_key, labels)
    if len(images) != len(labels):
        raise DataFileError(f"{path}: {len(images)} images but {len(labels)} labels")
    if classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = int(labels[(labels < 0) | (labels >= classes)][0])
        raise DataFileError(f"{path}: label {bad} in {label_key!r} is outside 0..{classes - 1}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def _key(key) -> str:
    return repr(key) if len(repr(key)) <= 40 else repr(key)[:40] + "..."


def _labels(path: Path, label_key: bytes, labels) -> np.ndarray:
    """The labels as int64: a list or tuple of ints (as in the real files) or a 1-D integer array."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "ui":
            raise _not_cifar(path, f"{label_key!r} is a {labels.ndim}-D {labels.dtype} array, not 1-D integers")
        if labels.dtype.kind == "u" and labels.size and labels.max() > np.iinfo(np.int64).max:
            raise _not_cifar(path, f"{label_key!r} holds a label beyond int64")
        return labels.astype(np.int64)
    if not isinstance(labels, (list, tuple)) or not all(type(v) is int for v in labels):
        what = type(labels).__name__ if not isinstance(labels, (list, tuple)) else "a list holding non-integers"
        raise _not_cifar(path, f"{label_key!r} is {what}, not a list of integer labels")
    try:
        return np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise _not_cifar(path, f"{label_key!r} holds a label beyond int64") from None


def read_cifar_meta(path: Path) -> dict[str, list[str]]:
    """The class names in a CIFAR meta file (CIFAR-10's batches.meta: "label_names"; CIFAR-100's meta:
    "fine_label_names" and "coarse_label_names"), read through vggcore.data.safe_pickle like the batches."""
    meta = safe_pickle.load(path, what=CIFAR_META_FILE)
    if not isinstance(meta, dict):
        raise DataFileError(f"{path} is not {CIFAR_META_FILE} (it holds a {type(meta).__name__}, not a dict)")
    names = {}
    for key, value in meta.items():
        if isinstance(key, bytes) and key.endswith(b"label_names"):
            if not isinstance(value, list) or not all(isinstance(v, (bytes, str)) for v in value):
                raise DataFileError(f"{path}: {key!r} is not a list of names")
            names[key.decode("ascii", "replace")] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                                                     for v in value]
    if not names:
        raise DataFileError(f"{path} is not {CIFAR_META_FILE} (no label_names entry)")
    return names


def _cifar(config: DataConfig) -> Dataset:
    folder, train_files, test_file, label_key, classes = CIFAR_LAYOUT[config.dataset]
    root = _cifar_dir(config)
    parts = [read_cifar_file(root / f, label_key, classes) for f in train_files]
    images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    test = Split(*read_cifar_file(root / test_file, label_key, classes))
    perm = _permutation(len(labels), config.split_seed)
    n_val = round(len(labels) * config.val_fraction)
    val, train = perm[:n_val], perm[n_val:]
    return Dataset(config.dataset, Split(images[train], labels[train]), Split(images[val], labels[val]), test,
                   classes, _mean_rgb(images[train]))


