"""The VGG family as data: the paper's Table 1 as layer lists, plus torchvision's names as aliases.

A layer list reads left to right through `features`:
    int n      a 3x3 convolution to n channels (stride 1, padding 1), then ReLU
    (n, 1)     a 1x1 convolution to n channels, then ReLU (configuration C)
    "LRN"      local response normalisation (configuration A-LRN)
    "M"        a 2x2 max-pool with stride 2 (five of them: the input shrinks 32-fold)
"""

from __future__ import annotations

from typing import Union

Layer = Union[int, tuple[int, int], str]

ARCHS: dict[str, list[Layer]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M",
          512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# torchvision's builder names -> (paper configuration, batch_norm)
ALIASES: dict[str, tuple[str, bool]] = {
    **{name: (arch, False) for name, arch in [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"), ("vgg19", "E")]},
    **{name + "_bn": (arch, True) for name, arch in [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"), ("vgg19", "E")]},
}

# Paper configurations whose layout torchvision also has (its state-dict keys match ours for these).
TORCHVISION_NAMES: dict[str, str] = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}

# Reduction of the spatial size by the five max-pools.
DOWNSAMPLE = 32


def arch_names() -> list[str]:
    """Every accepted architecture name: the paper's letters, then torchvision's aliases."""
    return [*ARCHS, *ALIASES]


def resolve_arch(name: str) -> tuple[str, bool | None]:
    """Map a user-given name to (paper configuration, batch_norm or None when the name does not say).

    Letters are case-insensitive ("d", "a-lrn"); a `_bn` suffix on a letter ("D_bn") asks for BatchNorm.
    """
    if not isinstance(name, str):
        raise ValueError(f"architecture must be a string, got {name!r}")
    key = name.strip()
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]
    bn = None
    if key.lower().endswith("_bn"):
        key, bn = key[:-3], True
    for arch in ARCHS:
        if arch.lower() == key.lower():
            return arch, bn
    raise ValueError(f"unknown architecture {name!r}; valid names: {', '.join(arch_names())}")
