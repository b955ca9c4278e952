"""The paper's test protocols (section 3.2) as data: what to run, with the paper's defaults, checked against a net.

    protocol          what one test image becomes                                   paper
    centre            rescale to smallest side Q, one training-size centre crop     (the usual single crop)
    dense             rescale to Q, the whole image through the fully-convolutional Table 3, 4, 5 "dense"
                      net, class scores averaged over the score map
    multicrop         a G x G grid of training-size crops at each Q                 Table 5 "multi-crop"
    dense+multicrop   the mean of the dense and the multi-crop posteriors           Table 5 "multi-crop & dense"

With flip, every view (a crop, or the whole image for dense) is also run mirrored. A protocol's posterior is the
mean softmax over all its views: every scale has the same number of views, so that is also the mean over the
scales of the mean over each scale's views (and over each view and its mirror).

Defaults, the paper's where it is explicit (a run of training size `size`, training scale S or [S_min, S_max]):
    scales "single"   Table 3: Q = S for fixed S; Q = 0.5 (S_min + S_max) for jittered training
    scales "multi"    Table 4: {S - 32, S, S + 32} for fixed S, the 32 scaled as size / 224 (5 px at 32); {S_min,
                      0.5 (S_min + S_max), S_max} for jittered training
    centre            "single", no flip (the training's own test score; the paper names no centre protocol)
    dense             "single", flip: section 3.2 averages the softmax of the image and of its mirror
    multicrop         "multi", 5 x 5 crops, flip: 5 x 5 x 2 x 3 = the paper's 150 crops
    dense+multicrop   "multi", 5 x 5 crops, flip (both parts)
S itself is scaled the same way: vggcore.data.datasets's default is S = size * 256 / 224 (37 px at 32).

Dense evaluation needs scales the net can take whole: a multiple of 32 (the five 2x2 max-pools would drop the last
rows and columns of any other size), and at least the side fc6 was trained on (the training size for the paper
head, 224 for torchvision's, whose fc6 becomes a 7x7 convolution). A default scale is rounded to the nearest such
scale, duplicates merged: at 224 the paper's Q all are multiples of 32 already; at 32 px "single" (37) becomes 32
and "multi" at fixed S collapses to {32}. Scales given as numbers are checked, never rounded, unless they are
given for another training size (`scales_for`, a study's 224): then they are scaled by size / scales_for and rounded
like the defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from vggcore.model.archs import DOWNSAMPLE
from vggcore.validation import Check, ConfigError, boolean, check_fields, choice, integer, optional

PROTOCOLS = ("centre", "dense", "multicrop", "dense+multicrop")
SCALE_SETS = ("single", "multi")
PAPER_CROP = 224      # the paper's training crop: its scales are in pixels at this size
PAPER_STEP = 32       # Table 4's S - 32, S, S + 32
PAPER_GRID = 5        # 5 x 5 crops per scale
CROPPED = ("multicrop", "dense+multicrop")       # protocols that take crops
WHOLE = ("dense", "dense+multicrop")             # protocols that run the whole image through the dense net


class ProtocolError(ConfigError):
    """A test protocol that cannot be run as given (a UserError: one line at the command line)."""


def _scales(name: str, value: Any) -> None:
    if isinstance(value, str):
        if value not in SCALE_SETS:
            raise ProtocolError(f"{name} {value!r}: give {' or '.join(SCALE_SETS)}, or test scales in pixels",
                                (name,), value)
        return
    if not isinstance(value, (list, tuple)) or not value:
        raise ProtocolError(f"{name} must be single, multi or a non-empty list of test scales, got {value!r}",
                            (name,), value)
    for q in value:
        if isinstance(q, bool) or not isinstance(q, int) or q < DOWNSAMPLE:
            raise ProtocolError(f"test scale {q!r} in {name}: a test scale is a whole number of pixels, at least "
                                f"{DOWNSAMPLE} (five 2x2 max-pools) and the training size", (name,), q)
    if len(set(value)) != len(value):
        raise ProtocolError(f"{name} {list(value)} lists a scale twice", (name,), value)


@dataclass(frozen=True)
class Protocol:
    """A test protocol as asked for; `resolve` turns it into the exact views for one trained net."""
    protocol: str = "centre"                  # one of PROTOCOLS
    scales: str | tuple[int, ...] | None = None  # "single" (Table 3), "multi" (Table 4), or test scales Q in
                                              # pixels; None: multi for the multicrop protocols, else single
    flip: bool | None = None                  # also run each view mirrored; None: the protocol's paper default
    crops: int | None = None                  # multicrop: G for a G x G grid per scale; None: the paper's 5
    scales_for: int | None = None             # the training size numeric scales are given for (a study's 224:
                                              # [224, 256, 288] is S - 32, S, S + 32 at any size); None: this run's

    CHECKS: ClassVar[dict[str, Check]] = {
        "protocol": choice(PROTOCOLS, "test protocol"), "scales": optional(_scales), "flip": optional(boolean),
        "crops": optional(integer(1, hint=" (the side of the G x G grid of crops per scale)")),
        "scales_for": optional(integer(DOWNSAMPLE))}

    def __post_init__(self) -> None:
        try:
            check_fields(self, self.CHECKS)
        except ProtocolError:
            raise
        except ConfigError as err:
            raise ProtocolError(str(err), err.fields, err.value, err.allowed) from None
        if isinstance(self.scales, list):
            object.__setattr__(self, "scales", tuple(self.scales))
        if self.crops is not None and self.protocol not in CROPPED:
            raise ProtocolError(f"crops {self.crops} applies to {' and '.join(CROPPED)} only, not "
                                f"{self.protocol}", ("crops", "protocol"), self.crops)


@dataclass(frozen=True)
class Resolved:
    """One protocol made exact for one trained net: every number it runs with."""
    protocol: str                 # one of PROTOCOLS
    scales: tuple[int, ...]       # test scales Q, pixels, ascending
    flip: bool                    # each view also mirrored
    crops: int | None             # G of the G x G grid (multicrop protocols), else None

    @property
    def views(self) -> int:
        """Forward passes per test image."""
        per_scale = {"centre": 1, "dense": 1, "multicrop": (self.crops or 0) ** 2,
                     "dense+multicrop": 1 + (self.crops or 0) ** 2}[self.protocol]
        return per_scale * len(self.scales) * (2 if self.flip else 1)

    def key(self) -> tuple:
        """What makes two evaluations the same: a record keeps one entry per key."""
        return (self.protocol, self.scales, self.flip, self.crops)

    def to_json(self) -> dict:
        return {**asdict(self), "scales": list(self.scales), "views": self.views}

    def label(self) -> str:
        crops = f" {self.crops}x{self.crops} crops" if self.crops else ""
        return f"{self.protocol} Q={','.join(map(str, self.scales))}{crops}{' +flip' if self.flip else ''}"


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def dense_minimum(image_size: int, pool_size: int) -> int:
    """The smallest scale the dense net takes whole: a multiple of 32, at least the training size and the side
    fc6 reads (pool_size cells of 32 px)."""
    least = max(image_size, DOWNSAMPLE * pool_size)
    return -(-least // DOWNSAMPLE) * DOWNSAMPLE


def paper_scales(which: str, image_size: int, s_min: int, s_max: int) -> tuple[float, ...]:
    """Table 3's single Q or Table 4's three, in (unrounded) pixels of a run at `image_size`."""
    if which == "single":
        return (float(s_min),) if s_min == s_max else ((s_min + s_max) / 2,)
    if s_min == s_max:
        step = PAPER_STEP * image_size / PAPER_CROP
        return (s_min - step, float(s_min), s_min + step)
    return (float(s_min), (s_min + s_max) / 2, float(s_max))


def resolve(protocol: Protocol, image_size: int, pool_size: int, s_min: int, s_max: int) -> Resolved:
    """The exact views of `protocol` for a net trained at `image_size` (fc6 reading `pool_size` cells) on scales
    [s_min, s_max]; ProtocolError for scales it cannot take."""
    name = protocol.protocol
    cropped = name in CROPPED
    scales = protocol.scales if protocol.scales is not None else ("multi" if cropped else "single")
    if isinstance(scales, str):
        qs = _rounded(name, paper_scales(scales, image_size, s_min, s_max), image_size, pool_size, None, scales)
    elif protocol.scales_for is not None and protocol.scales_for != image_size:
        f = protocol.scales_for
        qs = _rounded(name, tuple(q * image_size / f for q in scales), image_size, pool_size, f, scales)
    else:
        qs = tuple(sorted(scales))
        for q in qs:
            _check_pixels(name, q, image_size, pool_size)
    flip = protocol.flip if protocol.flip is not None else name != "centre"   # the paper flips dense and crops
    return Resolved(name, qs, flip, (protocol.crops or PAPER_GRID) if cropped else None)


def _check_pixels(name: str, q: int, image_size: int, pool_size: int) -> None:
    if q < image_size:
        raise ProtocolError(f"test scale {q} is below the training size {image_size}: every test scale must be at "
                            f"least {image_size} (the crop the net was trained on)", ("scales",), q)
    low = dense_minimum(image_size, pool_size)
    if name in WHOLE and (q % DOWNSAMPLE or q < low):
        raise ProtocolError(f"test scale {q} cannot be taken by {name} evaluation: it takes multiples of "
                            f"{DOWNSAMPLE} from {low} up ({low}, {low + DOWNSAMPLE}, {low + 2 * DOWNSAMPLE}, ...), "
                            f"since the net's five 2x2 max-pools drop the last rows and columns of any other size"
                            + (f" and fc6 reads {pool_size}x{pool_size} cells" if low > image_size else ""),
                            ("scales",), q)


def _rounded(name: str, wanted: tuple[float, ...], image_size: int, pool_size: int, given_for: int | None,
             asked) -> tuple[int, ...]:
    """Scales computed (the paper's sets) or given for another training size, rounded to what the net takes: the
    nearest pixel, and for dense the nearest multiple of 32; duplicates merged."""
    out = []
    for q, a in zip(wanted, asked if given_for is not None else wanted):
        px = max(image_size, _round(q)) if given_for is None else _round(q)
        if px < image_size:
            raise ProtocolError(f"test scale {a} (given for {given_for} px training) is {px} px at this run's "
                                f"{image_size}, below its training size: scales given for {given_for} must be at "
                                f"least {given_for}", ("scales",), a)
        if name in WHOLE:
            px = DOWNSAMPLE * max(-(-image_size // DOWNSAMPLE), _round(px / DOWNSAMPLE))
        _check_pixels(name, px, image_size, pool_size)
        out.append(px)
    return tuple(sorted(set(out)))


def own_protocol(image_size: int, s_min: int) -> Resolved:
    """What `vggcore train` scores the test split with: one centre crop at Q = S_min, no flip."""
    return Resolved("centre", (max(image_size, s_min),), False, None)
