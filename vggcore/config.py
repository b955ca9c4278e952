"""`VGGConfig`: everything that decides the shape and starting point of one VGG network."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .archs import DOWNSAMPLE, TORCHVISION_NAMES, resolve_arch

HEADS = ("paper", "torchvision", "gap")
INITS = ("kaiming", "paper", "xavier")
MIN_IMAGE_SIZE = DOWNSAMPLE  # five 2x2 pools need at least 32 pixels


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

    def __post_init__(self) -> None:
        arch, bn = resolve_arch(self.arch)
        # Normalise aliases so equal networks have equal configs ("vgg16_bn" == D with batch_norm).
        object.__setattr__(self, "arch", arch)
        if bn:
            object.__setattr__(self, "batch_norm", True)
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        _check_int("num_classes", self.num_classes, 1)
        _check_int("in_channels", self.in_channels, 1)
        _check_int("image_size", self.image_size, MIN_IMAGE_SIZE,
                   f"; five 2x2 max-pools need at least {MIN_IMAGE_SIZE} pixels")
        if self.head == "paper" and self.image_size % DOWNSAMPLE:
            raise ValueError(
                f"head 'paper' flattens the last max-pool output, so image_size must be a multiple of "
                f"{DOWNSAMPLE}; got {self.image_size} (try {self.image_size // DOWNSAMPLE * DOWNSAMPLE} "
                f"or head='torchvision'/'gap')")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if not isinstance(self.width, (int, float)) or self.width <= 0:
            raise ValueError(f"width must be a positive number, got {self.width!r}")

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


def _check_int(name: str, value: object, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}{hint}")


def config_fields() -> list[str]:
    return [f.name for f in fields(VGGConfig)]
