"""Which two settings `--vgg-ab` interleaves: vggcore against torchvision (the default) or any case against the
same case with other options (`--vgg-ab-against dtype=bf16,channels_last=on`).

    pytest bench --benchmark-only --vgg-ab --vgg-archs A --vgg-batch-sizes 8            # vggcore vs torchvision
    pytest bench --benchmark-only --vgg-ab-against channels_last=on --vgg-archs A --vgg-modes forward
    pytest bench --benchmark-only --vgg-ab-against dtype=bf16 --vgg-archs D --vgg-batch-sizes 4
    pytest bench --benchmark-only --vgg-ab-against optimizer=fused --vgg-modes train_step --vgg-batch-sizes 8
"""

from __future__ import annotations

import dataclasses

from vggcore.config import HEADS
from vggcore.device import DTYPES
from vggcore.train.sgd import SGD_CHOICES

from .cases import IMPLEMENTATIONS, BenchCase, OptionError

# setting -> (allowed values, how the text becomes the BenchCase field)
SETTINGS = {
    "implementation": (IMPLEMENTATIONS, str),
    "dtype": (tuple(DTYPES), str),
    "channels_last": (("on", "off"), lambda v: v == "on"),
    "compiled": (("on", "off"), lambda v: v == "on"),
    "head": (HEADS, str),
    "optimizer": (SGD_CHOICES, str),   # the SGD implementation of train_step cases
}
DEFAULT_AGAINST = {"implementation": "torchvision"}


def parse_against(text: str | None) -> dict:
    """'dtype=bf16,channels_last=on' -> {'dtype': 'bf16', 'channels_last': True}; OptionError naming the bad part."""
    if text is None:
        return dict(DEFAULT_AGAINST)
    out = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        if not sep or key not in SETTINGS:
            raise OptionError(f"--vgg-ab-against: {part!r} is not SETTING=VALUE with SETTING one of "
                              f"{', '.join(SETTINGS)}")
        allowed, convert = SETTINGS[key]
        if value not in allowed:
            raise OptionError(f"--vgg-ab-against: {key}={value!r} is not allowed; {key} takes {', '.join(allowed)}")
        out[key] = convert(value)
    if not out:
        raise OptionError("--vgg-ab-against: empty; give SETTING=VALUE, e.g. dtype=bf16")
    return out


def twin(case: BenchCase, against: dict) -> BenchCase:
    """The B side of an A/B pair: `case` with the `against` settings."""
    return dataclasses.replace(case, **against)


def describe(against: dict) -> str:
    """{'dtype': 'bf16', 'channels_last': True} -> 'dtype=bf16 channels_last=on'."""
    return " ".join(f"{k}={'on' if v is True else 'off' if v is False else v}" for k, v in against.items())
