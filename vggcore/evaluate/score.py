"""Top-1 / top-5 error under the paper's test protocols (section 3.2; what each one runs: `vggcore.evaluate.protocols`).

    >>> from vggcore.evaluate.protocols import Protocol, resolve
    >>> views = resolve(Protocol("dense", "multi"), 32, 1, 37, 37)     # dense at Q = 32 (see vggcore.evaluate.protocols)
    >>> errors = score_protocol(model, split.images, split.labels, mean_rgb, views)
    >>> evaluate(model, split.images, split.labels, mean_rgb, method="dense", scales=(32, 64, 96), flip=True)

A protocol's posterior for an image is the mean softmax over all its views (every crop, or the whole image for
dense, at every scale, and each one's mirror with flip); dense+multicrop is the mean of the dense and the
multi-crop posteriors, as in the paper's Table 5. Crops of a G x G grid lie evenly from one corner of the rescaled
image to the other; a 1 x 1 grid is the centre crop.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from vggcore.model.convert import fully_convolutional
from vggcore.errors import UserError
from vggcore.evaluate.protocols import PROTOCOLS, Protocol, ProtocolError, Resolved, resolve
from vggcore.data.transforms import centre_crop, rescale
from vggcore.world import World
from vggcore.train.distributed import all_sum, guarded
from vggcore.model.network import VGG
from vggcore.validation import ConfigError
from vggcore.data.batches import Batches
from vggcore.data.transforms import as_float

METHODS = PROTOCOLS


class EmptySplitError(UserError, ValueError):
    """There is nothing to score: the split has no images."""


def topk_errors(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(top-1 mistakes, top-5 mistakes) in a batch; top-5 is top-min(5, classes)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices                       # (B, k)
    hit = top == labels[:, None]
    return int((~hit[:, 0]).sum()), int((~hit.any(dim=1)).sum())


@torch.inference_mode()
def score(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
          autocast_dtype: torch.dtype | None = None, probabilities: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 error of `model` over (inputs, labels) batches. With `probabilities`, the batches
    hold averaged softmax scores already (multi-view evaluation) and `model` is not called."""
    n, loss, err1, err5 = 0, 0.0, 0, 0
    model.eval()
    for x, y in batches:
        if probabilities:
            logits = x.log()
        else:
            device_type = x.device.type
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(x).float()
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        e1, e5 = topk_errors(logits, y)
        err1, err5, n = err1 + e1, err5 + e5, n + len(y)
    if n == 0:
        raise EmptySplitError("nothing to evaluate: the split is empty (it has 0 images)")
    return {"loss": loss / n, "top1_error": err1 / n, "top5_error": err5 / n}


def grid_offsets(room: int, grid: int) -> list[int]:
    """Top (or left) offsets of `grid` crops spread evenly over `room` free pixels, corners included; one crop
    sits where `centre_crop` puts it."""
    if grid == 1:
        return [room // 2]
    return [i * room // (grid - 1) for i in range(grid)]


def _crops(x: torch.Tensor, size: int, grid: int) -> Iterator[torch.Tensor]:
    h, w = x.shape[-2:]
    for top in grid_offsets(h - size, grid):
        for left in grid_offsets(w - size, grid):
            yield x[..., top:top + size, left:left + size]


def _mean_softmax(net: torch.nn.Module, views: Iterator[torch.Tensor], flip: bool, autocast,
                  images_per_pass: int) -> torch.Tensor:
    """Mean softmax over `views` (each (B, 3, h, w), all of one shape) and, with `flip`, their mirrors: (B, classes).
    Views go through the net several at a time, up to `images_per_pass` images (at least one view) per pass."""
    every = [w for v in views for w in ((v, v.flip(-1)) if flip else (v,))]
    per_pass = max(1, images_per_pass // len(every[0]))
    total = None
    for i in range(0, len(every), per_pass):
        group = torch.cat(every[i:i + per_pass])                   # (k B, 3, h, w)
        with autocast(group.device.type):
            p = net(group).float().softmax(dim=1)
        p = p.reshape(-1, len(every[0]), p.shape[1]).sum(0)        # (B, classes)
        total = p if total is None else total + p
    return total / len(every)


def probability_batches(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor,
                        views: Resolved, *, batch_size: int = 250, autocast_dtype: torch.dtype | None = None
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(posteriors (B, classes), labels (B,)) per batch of uint8 images (N, 3, R, R) under one resolved protocol.
    `batch_size`: images per batch, and at most that many images (views of them) per forward pass."""
    size = model.config.image_size
    model.eval()
    dense = fully_convolutional(model).eval() if views.protocol in ("dense", "dense+multicrop") else None

    def autocast(device_type: str):
        if autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type, dtype=autocast_dtype)

    with torch.inference_mode():
        for i in range(0, len(labels), batch_size):
            base = as_float(images[i:i + batch_size], mean_rgb)       # (B, 3, R, R)
            parts = []
            for q in views.scales:
                scaled = rescale(base, q)                           # (B, 3, q, q)
                if views.protocol == "centre":
                    parts.append(("centre", _mean_softmax(model, iter([centre_crop(scaled, size)]), views.flip,
                                                          autocast, batch_size)))
                if dense is not None:
                    parts.append(("dense", _mean_softmax(dense, iter([scaled]), views.flip, autocast, batch_size)))
                if views.crops is not None:
                    parts.append(("crops", _mean_softmax(model, _crops(scaled, size, views.crops), views.flip,
                                                         autocast, batch_size)))
            yield _combine(parts, views), labels[i:i + batch_size]


def _combine(parts: list, views: Resolved) -> torch.Tensor:
    """Every scale has as many views as the others, so the mean over all views is the mean over scales; the
    combined protocol weighs its dense and its multi-crop posterior equally (the paper's Table 5)."""
    if views.protocol != "dense+multicrop":
        probs = torch.stack([p for _, p in parts]).mean(0)
    else:
        dense = torch.stack([p for kind, p in parts if kind == "dense"]).mean(0)
        crops = torch.stack([p for kind, p in parts if kind == "crops"]).mean(0)
        probs = (dense + crops) / 2
    return probs.clamp_min(1e-12)


def protocol_probabilities(model: torch.nn.Module, images: torch.Tensor, mean_rgb: torch.Tensor, views: Resolved,
                           **kwargs) -> torch.Tensor:
    """The posteriors (N, classes) of every image under `views` (for inspection and tests)."""
    labels = torch.zeros(len(images), dtype=torch.long, device=images.device)
    return torch.cat([p for p, _ in probability_batches(model, images, labels, mean_rgb, views, **kwargs)])


def score_protocol(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor,
                   views: Resolved, **kwargs) -> dict[str, float]:
    """Loss, top-1 and top-5 error of `model` on uint8 images (N, 3, R, R) under one resolved protocol."""
    return score(model, probability_batches(model, images, labels, mean_rgb, views, **kwargs), probabilities=True)


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor, *,
             method: str = "centre", scales: tuple[int, ...] | None = None, flip: bool = False, grid: int = 5,
             batch_size: int = 250) -> dict[str, float]:
    """Errors of `model` (a vggcore VGG) on uint8 images (N, 3, R, R) under one test protocol, scales in pixels
    (default: the training size), every value checked as `vggcore.evaluate.protocols.resolve` checks it."""
    if method not in METHODS:
        raise ProtocolError(f"unknown test protocol {method!r}; choose one of {', '.join(METHODS)}",
                            ("protocol",), method)
    c = model.config
    asked = Protocol(method, tuple(scales or (c.image_size,)), flip, grid if method in ("multicrop",
                                                                                       "dense+multicrop") else None)
    views = resolve(asked, c.image_size, c.pool_size, c.image_size, c.image_size)
    return score_protocol(model, images, labels, mean_rgb, views, batch_size=batch_size)


def score_split(model: VGG, batches: Batches, which: str, world: World, autocast_dtype=None) -> dict[str, float]:
    """`score` over a split; in a world of N each rank scores its share and the sums are all-reduced, so every
    image counts exactly once."""
    if not world.distributed:
        return score(model, batches.evaluation(which), autocast_dtype=autocast_dtype)
    counted = [0]

    def counting():
        for x, y in batches.evaluation(which):
            counted[0] += len(y)
            yield x, y

    try:
        local = guarded(world, f"evaluating {which}",
                        lambda: score(model, counting(), autocast_dtype=autocast_dtype))
    except ValueError:
        if counted[0]:
            raise
        local = {"loss": 0.0, "top1_error": 0.0, "top5_error": 0.0}  # an empty share (a split smaller than N)
    n = counted[0]
    loss, err1, err5, total = all_sum(world, [local["loss"] * n, local["top1_error"] * n,
                                              local["top5_error"] * n, n])
    if total == 0:
        raise ConfigError(f"nothing to evaluate: the {which} split is empty", ("dataset",), which)
    return {"loss": loss / total, "top1_error": round(err1) / total, "top5_error": round(err5) / total}



