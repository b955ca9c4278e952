"""`VGGConfig`: everything that decides the shape and starting point of one VGG network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .archs import DOWNSAMPLE, TORCHVISION_NAMES, resolve_arch
from .validation import ConfigError, Check, boolean, check_fields, choice, integer, number, text

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
