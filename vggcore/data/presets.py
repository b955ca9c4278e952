"""The augmentation presets by name: which of the paper's training-time steps each applies (data, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Augment:
    crop: bool = False          # random crop (else the centre crop)
    flip: bool = False          # random horizontal flip, p = 0.5
    color: bool = False         # PCA colour shift, alpha ~ N(0, 0.1) per image
    jitter: bool = False        # S drawn per image from [scale_min, scale_max] (else S = scale)


PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "flip": Augment(flip=True),
    "crop": Augment(crop=True),          # for data that a mirror changes (digits)
    "crop_flip": Augment(crop=True, flip=True),
    "paper": Augment(crop=True, flip=True, color=True),
    "paper_jitter": Augment(crop=True, flip=True, color=True, jitter=True),
}


def preset(name: str) -> Augment:
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
