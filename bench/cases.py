"""Benchmark cases: what one timed measurement is, and how the command-line options expand into cases."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vggcore.model.archs import ARCHS, TORCHVISION_NAMES, resolve_arch
from vggcore.config import HEADS, VGGConfig
from vggcore.errors import UserError
from vggcore.device import DEVICES, DTYPE_NAMES, device_available, dtype_unsupported_reason
from vggcore.train.sgd import SGD_CHOICES, default_sgd
from vggcore.validation import ConfigError, check_field

MODES = ("forward", "forward_backward", "train_step")
TTA_MODE = "time_to_accuracy"   # not a step mode: --vgg-modes time_to_accuracy runs bench/test_tta.py (bench/tta.py)
IMPLEMENTATIONS = ("vggcore", "torchvision")
GRIDS = {
    # name: defaults for options the user did not give (per device where it matters)
    "quick": dict(archs=["A", "D"], batch_sizes={"cpu": [1, 4], "cuda": [32, 64], "mps": [8, 16]}, dtypes=None),
    "full": dict(archs=list(ARCHS), batch_sizes={"cpu": [1, 8, 32], "cuda": [1, 16, 64, 128, 256],
                                                 "mps": [1, 8, 32, 64]}, dtypes="all"),
}


@dataclass(frozen=True)
class BenchCase:
    arch: str               # paper configuration, "_bn" suffix for BatchNorm
    mode: str               # forward (inference), forward_backward (loss + backward), train_step (+ SGD step)
    batch_size: int         # images per step
    image_size: int         # square input side, pixels
    width: float            # channel/FC width multiplier (1.0 = the paper)
    device: str             # cpu, cuda or mps
    dtype: str              # fp32, or bf16/fp16 under autocast
    channels_last: bool     # NHWC memory format for model and input
    compiled: bool          # torch.compile'd model
    implementation: str     # vggcore or torchvision
    head: str = "paper"     # vggcore's head; torchvision's own is always its AdaptiveAvgPool2d((7, 7))
    optimizer: str = ""     # train_step: the SGD implementation (vggcore.train.sgd.SGD_CHOICES; "" = the device's
                            # default, vggcore.train.sgd.DEFAULT_SGD); "" for the modes that take no SGD step

    def __post_init__(self) -> None:
        if self.mode == "train_step" and not self.optimizer:   # record the implementation that runs, by name
            object.__setattr__(self, "optimizer", default_sgd(self.device))

    def _settings(self, short: bool) -> list[str]:
        """The non-default settings, in the test id's short form or the group's readable one. The optimizer shows
        where it is not the device's default, so the ids of runs taken before it was a setting stay theirs."""
        sgd = bool(self.optimizer) and self.optimizer != default_sgd(self.device)
        tags = [(self.head != "paper", f"{self.head}head" if short else f"{self.head} head"),
                (self.channels_last, "cl" if short else "channels_last"), (self.compiled, "compiled"),
                (sgd, f"sgd-{self.optimizer}" if short else f"SGD {self.optimizer}")]
        return [text for on, text in tags if on]

    @property
    def id(self) -> str:
        return "-".join([self.arch, self.mode, self.device, self.dtype, f"{self.image_size}px", f"w{self.width:g}",
                         f"b{self.batch_size}", *self._settings(short=True), self.implementation])

    @property
    def group(self) -> str:
        """One pytest-benchmark table per (arch, mode, device, dtype, image size, width, settings)."""
        return " ".join([self.arch, self.mode, self.device, self.dtype, f"{self.image_size}px",
                         f"width {self.width:g}", *self._settings(short=False)])

    def skip_reason(self) -> str | None:
        reason = dtype_unsupported_reason(self.device, self.dtype)
        if reason:
            return reason
        if self.optimizer and self.mode != "train_step":
            return f"optimizer={self.optimizer} applies to train_step cases only; this case is {self.mode}"
        if self.implementation == "torchvision":
            arch = self.arch.removesuffix("_bn")
            if arch not in TORCHVISION_NAMES:
                return f"torchvision has no configuration {arch} (only A/B/D/E as vgg11/13/16/19)"
            if self.width != 1:
                return "torchvision's VGG has fixed widths; its reference runs at --vgg-width 1 only"
        return None


class OptionError(UserError, ValueError):
    """A bad --vgg-* value: becomes a pytest usage error."""


def split(option: str, raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise OptionError(f"{option}: empty list")
    return values


def choose(option: str, values: list[str], allowed: tuple[str, ...] | list[str]) -> list[str]:
    for v in values:
        if v not in allowed:
            raise OptionError(f"{option}: unknown value {v!r}; allowed: {', '.join(allowed)}")
    return values


def positive_ints(option: str, values: list[str]) -> list[int]:
    out = []
    for v in values:
        if not v.isdigit() or int(v) <= 0:
            raise OptionError(f"{option}: {v!r} is not a positive integer")
        out.append(int(v))
    return out


def selected_modes(raw: str | None) -> tuple[bool, bool]:
    """(the step-time grid runs, the time-to-accuracy benchmark runs) for a raw --vgg-modes (None: the grid only)."""
    modes = split("--vgg-modes", raw) or list(MODES)
    return any(m != TTA_MODE for m in modes), TTA_MODE in modes


def switches(option: str, raw: str) -> list[bool]:
    """'on', 'off' or a list of both -> the settings to benchmark."""
    return [v == "on" for v in choose(option, split(option, raw), ("off", "on"))]


def canonical_arch(option: str, name: str) -> str:
    try:
        arch, bn = resolve_arch(name)
    except ValueError as err:
        raise OptionError(f"{option}: {err}") from None
    return arch + ("_bn" if bn else "")


def optimizers(raw: str | None) -> list[str] | None:
    """--vgg-optimizer: SGD implementations for the train_step cases (None: the device's default)."""
    values = split("--vgg-optimizer", raw)
    return None if values is None else list(dict.fromkeys(choose("--vgg-optimizer", values, SGD_CHOICES)))


def expand(options: dict[str, str | None], *, compiled: list[bool] = (False,),
           channels_last: list[bool] = (False,), reference: bool = False) -> list[BenchCase]:
    """All cases for the given raw option strings (None = not given, take the grid's default)."""
    grid_name = options.get("grid") or "quick"
    if grid_name not in GRIDS:
        raise OptionError(f"--vgg-grid: unknown value {grid_name!r}; allowed: {', '.join(GRIDS)}")
    grid = GRIDS[grid_name]

    archs = [canonical_arch("--vgg-archs", a) for a in split("--vgg-archs", options.get("archs")) or grid["archs"]]
    devices = split("--vgg-devices", options.get("devices"))
    if devices is None:
        devices = [d for d in DEVICES if device_available(d)]
    else:
        choose("--vgg-devices", devices, DEVICES)
        for d in devices:
            if not device_available(d):
                raise OptionError(f"--vgg-devices: {d!r} is not available on this machine; "
                                  f"available: {', '.join(x for x in DEVICES if device_available(x))}")
    modes = choose("--vgg-modes", split("--vgg-modes", options.get("modes")) or list(MODES), (*MODES, TTA_MODE))
    modes = [m for m in modes if m != TTA_MODE]
    dtypes_raw = split("--vgg-dtypes", options.get("dtypes"))
    if dtypes_raw is not None:
        choose("--vgg-dtypes", dtypes_raw, DTYPE_NAMES)
    sizes_raw = split("--vgg-batch-sizes", options.get("batch_sizes"))
    batch_sizes = positive_ints("--vgg-batch-sizes", sizes_raw) if sizes_raw else None
    image_size = positive_ints("--vgg-image-size", [options.get("image_size") or "224"])[0]
    if image_size < 32:
        raise OptionError(f"--vgg-image-size: {image_size} is below 32, the smallest input five max-pools take")
    try:
        width = float(options.get("width") or "1")
        check_field(VGGConfig.CHECKS, "width", width)   # finite, > 0, at most MAX_WIDTH: as VGGConfig itself
    except ConfigError as err:
        raise OptionError(f"--vgg-width: {options.get('width')!r}: {err}") from None
    except ValueError:
        raise OptionError(f"--vgg-width: {options.get('width')!r} is not a number") from None
    head = choose("--vgg-head", [options.get("head") or "paper"], HEADS)[0]
    sgds = optimizers(options.get("optimizer")) or [""]   # "": each device's default
    if head == "paper" and image_size % 32:
        raise OptionError(f"--vgg-image-size: {image_size} is not a multiple of 32, which the paper's head "
                          f"(flatten the last max-pool) needs; try {image_size // 32 * 32} or --vgg-head gap")

    cases = []
    impls = IMPLEMENTATIONS if reference else IMPLEMENTATIONS[:1]
    for device in devices:
        dtypes = dtypes_raw or (list(DTYPE_NAMES) if grid["dtypes"] == "all" else ["fp32"])
        for arch, mode, dtype, cl, comp, bs, impl in itertools.product(
                archs, modes, dtypes, channels_last, compiled, batch_sizes or grid["batch_sizes"][device], impls):
            for sgd in sgds if mode == "train_step" else [""]:
                cases.append(BenchCase(arch=arch, mode=mode, batch_size=bs, image_size=image_size, width=width,
                                       device=device, dtype=dtype, channels_last=cl, compiled=comp,
                                       implementation=impl, head=head, optimizer=sgd))
    return cases
