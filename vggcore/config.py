"""A run's configuration, in one place: the network (`VGGConfig`), its data (`DataConfig`), its training
(`TrainConfig`), and the four as one frozen `RunConfig` that owns its JSON form and its ids.

    >>> from vggcore.config import DataConfig, RunConfig, TrainConfig, VGGConfig
    >>> run = RunConfig(VGGConfig("A", batch_norm=True, width=0.25, image_size=32), DataConfig("digits"),
    ...                 TrainConfig(epochs=5, batch_size=64))
    >>> run.run_id, run.training_id          # stable hashes of the JSON form: the same on every machine
    >>> RunConfig.from_json(run.to_json()) == run

Every field is checked when a config is built (`vggcore.validation`): a bad value is a `ConfigError` naming the
field, the value and what is allowed. Nothing here imports torch, so a study file is read and checked cheaply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from vggcore.data.presets import PRESETS
from vggcore.evaluate.protocols import Protocol
from vggcore.model.archs import DOWNSAMPLE, TORCHVISION_NAMES, resolve_arch
from vggcore.train.schedules import SCHEDULES
from vggcore.world import per_rank
from vggcore.validation import (
    SEED_MAX,
    Check,
    ConfigError,
    boolean,
    check_fields,
    choice,
    integer,
    number,
    optional,
    text,
)

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder", "synthetic")
IN_MEMORY = ("digits", "cifar10", "cifar100", "synthetic")   # held as whole tensors; imagefolder is streamed


HEADS = ("paper", "torchvision", "gap")
INITS = ("kaiming", "paper", "xavier")
MIN_IMAGE_SIZE = DOWNSAMPLE  # five 2x2 pools need at least 32 pixels
MAX_WIDTH = 64               # fc6 alone would be 275 GB at 64x the paper's width: no machine holds more


@dataclass(frozen=True)
class VGGConfig:
    arch: str = "D"              # paper configuration (A, A-LRN, B, C, D, E) or torchvision alias (vgg16, vgg16_bn, ...)
    batch_norm: bool = False     # BatchNorm2d after every convolution (torchvision's `_bn` models)
    num_classes: int = 1000      # width of the last FC layer
    image_size: int = 224        # side of the square training input, pixels
    head: str = "paper"          # between the last max-pool and fc6: "paper" flatten, "torchvision" AdaptiveAvgPool2d(7), "gap"
    dropout: float = 0.5         # p of the dropout after fc6 and fc7; 0 removes it
    width: float = 1.0           # multiplier on every conv channel count and on the FC width (4096)
    in_channels: int = 3         # input image channels
    init: str = "kaiming"        # "kaiming" (torchvision), "paper" (N(0, 0.01^2)), "xavier" (Glorot)

    CHECKS: ClassVar[dict[str, Check]] = {
        "arch": text, "batch_norm": boolean, "num_classes": integer(1), "in_channels": integer(1),
        "image_size": integer(MIN_IMAGE_SIZE, hint=f" (five 2x2 max-pools need at least {MIN_IMAGE_SIZE} pixels)"),
        "head": choice(HEADS), "dropout": number(0, 1, high_open=True),
        "width": number(0, MAX_WIDTH, low_open=True), "init": choice(INITS)}

    def __post_init__(self) -> None:
        check_fields(self, self.CHECKS)
        try:
            arch, bn = resolve_arch(self.arch)
        except ValueError as err:
            raise ConfigError(str(err), ("arch",), self.arch) from None
        # Normalise aliases so equal networks have equal configs ("vgg16_bn" == D with batch_norm).
        object.__setattr__(self, "arch", arch)
        if bn:
            object.__setattr__(self, "batch_norm", True)
        if self.head == "paper" and self.image_size % DOWNSAMPLE:
            raise ConfigError(
                f"head 'paper' flattens the last max-pool output, so image_size must be a multiple of "
                f"{DOWNSAMPLE}; got {self.image_size} (try {self.image_size // DOWNSAMPLE * DOWNSAMPLE} "
                f"or head='torchvision'/'gap')", ("image_size", "head"), self.image_size)

    def channels(self, n: int) -> int:
        """Channel count after the width multiplier (never below 1)."""
        return max(1, round(n * self.width))

    @property
    def fc_width(self) -> int:
        return self.channels(4096)

    @property
    def pool_size(self) -> int:
        """Side of the feature map that fc6 sees."""
        return {"paper": self.image_size // DOWNSAMPLE, "torchvision": 7, "gap": 1}[self.head]

    @property
    def name(self) -> str:
        return self.arch + ("_bn" if self.batch_norm else "")

    @property
    def torchvision_name(self) -> str | None:
        """torchvision's builder for this configuration (vgg16_bn, ...), or None where it has none."""
        base = TORCHVISION_NAMES.get(self.arch)
        return base and base + ("_bn" if self.batch_norm else "")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"          # one of DATASETS
    data_root: str | None = None     # folder holding cifar/imagefolder files
    augment: str = "crop_flip"       # preset in vggcore.data.presets.PRESETS
    scale: int | None = None         # S, the training images' smaller side before cropping; None: size * 256/224
    scale_max: int | None = None     # upper end of scale jittering; None: 2 * scale (the paper's [256, 512])
    val_fraction: float = 0.15       # held-out share of the training data (digits, cifar) for validation
    split_seed: int = 0              # fixes the train/val/test split, independently of the training seed
    synthetic_samples: int = 512     # size of the synthetic dataset
    synthetic_classes: int = 10
    num_workers: int = 2             # DataLoader workers (imagefolder only)

    CHECKS: ClassVar[dict[str, Check]] = {
        "dataset": choice(DATASETS, "dataset"), "data_root": optional(text), "augment": choice(PRESETS, "augmentation"),
        "scale": optional(integer(1)), "scale_max": optional(integer(1)),
        "val_fraction": number(0, 1, low_open=True, high_open=True), "split_seed": integer(0, SEED_MAX),
        "synthetic_samples": integer(1), "synthetic_classes": integer(1), "num_workers": integer(0)}

    def __post_init__(self) -> None:
        check_fields(self, self.CHECKS)
        if self.dataset in ("cifar10", "cifar100", "imagefolder") and not self.data_root:
            raise ConfigError(f"dataset {self.dataset!r} needs a data_root (--data-root DIR)",
                              ("dataset", "data_root"), self.data_root)

    def scales(self, image_size: int) -> tuple[int, int]:
        """(S_min, S_max) for the training size: fixed S unless the preset jitters."""
        s = self.scale or round(image_size * 256 / 224)
        if s < image_size:
            raise ConfigError(f"scale S={s} is smaller than the {image_size}px training crop", ("scale",), s)
        jitter = PRESETS[self.augment].jitter
        s_max = (self.scale_max or 2 * s) if jitter else s
        if s_max < s:
            raise ConfigError(f"scale_max {s_max} is below scale {s}", ("scale_max",), s_max)
        return s, s_max


DEVICE_FORMS = "cpu, cuda, cuda:N or mps"


def _device_form(name: str, value: object) -> None:
    """The device's spelling only: whether it exists is checked on the machine that runs the run (`_fit`)."""
    kind, _, index = value.partition(":") if isinstance(value, str) else ("", "", "")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise ConfigError(f"unknown device {value!r}; choose {DEVICE_FORMS}", (name,), value)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 74                 # the paper's 370K iterations at batch 256 on ImageNet
    batch_size: int = 256            # effective batch: images per SGD step
    micro_batch: int | None = None   # images per forward/backward; smaller than batch_size -> accumulation
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"        # plateau (the paper), step, cosine, constant
    warmup_epochs: int = 0           # linear lr warm-up epochs
    gamma: float = 0.1               # lr factor of plateau and step
    step_epochs: int = 10            # step: epochs between drops
    patience: int = 2                # plateau: epochs without val-accuracy gain before a drop
    max_drops: int = 3               # plateau: the paper dropped 3 times
    bf16: bool = False               # bf16 autocast for forward/backward
    channels_last: bool = False      # NHWC memory format
    device: str = "cpu"
    seed: int = 0                    # init, batch order, augmentation and dropout
    eval_batch_size: int = 500
    init_from_a_epochs: int = 0      # > 0: first train net A this long and copy it in (the paper's pre-init)
    threads: int | None = None       # torch intra-op threads; None leaves torch's default (under torchrun on
                                     # CPU: the machine's cores split between its ranks)
    sync_bn: bool = False            # data-parallel: SyncBatchNorm normalises over the global batch (needs
                                     # batch_norm); False: each rank normalises over its own slice
    nproc: int = 1                   # processes the ablation executors launch for this run (torchrun); 1 leaves
                                     # the world size to whoever launched train()
    bn_recalibrate: int = 0          # > 0: before every evaluation, BatchNorm's statistics recomputed over this
                                     # many training batches (precise BN); 0 keeps the running estimates

    CHECKS: ClassVar[dict[str, Check]] = {
        "epochs": integer(1), "batch_size": integer(1), "micro_batch": optional(integer(1)),
        "lr": number(0, low_open=True), "momentum": number(0, 1, high_open=True), "weight_decay": number(0),
        "schedule": choice(SCHEDULES, "schedule"), "warmup_epochs": integer(0), "gamma": number(0, 1, low_open=True),
        "step_epochs": integer(1), "patience": integer(0), "max_drops": integer(0), "bf16": boolean,
        "channels_last": boolean, "device": _device_form, "seed": integer(0, SEED_MAX), "eval_batch_size": integer(1),
        "init_from_a_epochs": integer(0), "threads": optional(integer(1)), "sync_bn": boolean,
        "nproc": integer(1), "bn_recalibrate": integer(0)}

    def __post_init__(self) -> None:
        check_fields(self, self.CHECKS)
        if self.micro_batch is not None and self.micro_batch > self.batch_size:
            raise ConfigError(f"micro_batch must be between 1 and batch_size ({self.batch_size}), got "
                              f"{self.micro_batch}", ("micro_batch", "batch_size"), self.micro_batch)
        if self.nproc > 1 and self.batch_size % self.nproc:
            try:
                per_rank(self.batch_size, self.nproc)
            except ValueError as err:
                raise ConfigError(str(err), ("batch_size", "nproc"), self.batch_size) from None



SECTIONS = ("model", "data", "train", "eval")
TRAINING = ("model", "data", "train")   # the sections a run's training depends on; "eval" only scores it
# Fields added after runs were already recorded, with the value that reproduces those runs: a checkpoint or a run
# id without them is the same run when they are at these values.
LATER_FIELDS = {("train", "sync_bn"): False, ("train", "nproc"): 1, ("train", "bn_recalibrate"): 0}


@dataclass(frozen=True)
class RunConfig:
    """One run: what the network is, what it trains on, how, and (optionally) the test protocol that scores it.

    Its JSON form (`to_json`) is what checkpoints, metrics.json and study records store; `run_id` and
    `training_id` hash that form, so a run has the same ids in every study expansion and on every machine."""
    model: VGGConfig
    data: DataConfig
    train: TrainConfig
    eval: Protocol | None = None     # None: scored as training scores it (a centre crop at Q = S)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """{"model": {...}, "data": {...}, "train": {...}} plus "eval" when there is one (a run without one keeps
        the id it had before eval sections existed)."""
        out = {s: dataclasses.asdict(getattr(self, s)) for s in TRAINING}
        if self.eval is not None:
            evaluation = dataclasses.asdict(self.eval)
            if isinstance(evaluation["scales"], tuple):
                evaluation["scales"] = list(evaluation["scales"])
            out["eval"] = evaluation
        return out

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        """The config of a stored JSON form; fields added since it was written take their defaults (LATER_FIELDS
        are those defaults), and an unknown or ill-typed field is a ConfigError naming it."""
        if not isinstance(data, dict) or not all(isinstance(data.get(s), dict) for s in TRAINING):
            raise ConfigError("a run configuration needs model, data and train sections", TRAINING, data)
        built = {}
        for section, kind in (("model", VGGConfig), ("data", DataConfig), ("train", TrainConfig), ("eval", Protocol)):
            if data.get(section) is None:
                continue
            fields = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(data[section]) - fields)
            if unknown:
                raise ConfigError(f"unknown {section} field(s) {', '.join(unknown)}", tuple(unknown), None,
                                  ", ".join(sorted(fields)))
            built[section] = kind(**data[section])
        return cls(**built)

    def resolved(self, num_classes: int) -> "RunConfig":
        """The config training runs: the network's classes are the dataset's."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, num_classes=num_classes))

    @property
    def run_id(self) -> str:
        return config_id(self.to_json())

    @property
    def training_id(self) -> str:
        """The id of the training this run scores: `run_id` without the eval section (runs that differ in it alone
        share one training and one run folder)."""
        return config_id({s: v for s, v in self.to_json().items() if s in TRAINING})


def config_id(config: dict) -> str:
    """A 12-hex-digit hash of a run's JSON form. Fields added since runs were first recorded are left out at the
    values that reproduce those runs, so a folder recorded before they existed keeps its ids and resumes."""
    kept = {section: {key: value for key, value in fields.items()
                      if (section, key) not in LATER_FIELDS or LATER_FIELDS[(section, key)] != value}
            if isinstance(fields, dict) else fields for section, fields in config.items()}
    blob = json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
