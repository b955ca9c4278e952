"""Top-1 / top-5 error under the paper's test protocols (section 3.2).

    centre      rescale to smallest side Q, one centre crop of the training size
    dense       rescale to Q and run the whole image through the fully-convolutional net; class scores
                spatially averaged
    multicrop   a g x g grid of training-size crops per scale (the paper: 5 x 5), each also flipped
    flip=True   average the softmax of each view and its horizontal flip (centre and dense)
    scales      several Q: softmax averaged over scales

    >>> evaluate(model, split.images, split.labels, mean_rgb, method="dense", scales=(32, 40, 48), flip=True)
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from .convert import fully_convolutional
from .transforms import centre_crop, rescale

METHODS = ("centre", "dense", "multicrop")


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
        raise ValueError("nothing to evaluate: the split is empty")
    return {"loss": loss / n, "top1_error": err1 / n, "top5_error": err5 / n}


def _float(images_u8: torch.Tensor, mean_rgb: torch.Tensor) -> torch.Tensor:
    x = images_u8.float().div_(255)
    return x - mean_rgb.to(x.device)[None, :, None, None]


def centre_batches(images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor, size: int, scale: int,
                   batch_size: int = 500) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float inputs: rescale stored uint8 images to smallest side `scale`, centre crop `size`, subtract mean."""
    for i in range(0, len(labels), batch_size):
        x = centre_crop(rescale(_float(images[i:i + batch_size], mean_rgb), scale), size)
        yield x, labels[i:i + batch_size]


def _views(x: torch.Tensor, method: str, size: int, grid: int) -> Iterator[torch.Tensor]:
    if method == "centre":
        yield centre_crop(x, size)
    elif method == "dense":
        yield x
    else:
        h, w = x.shape[-2:]
        tops = [round(i * (h - size) / max(1, grid - 1)) for i in range(grid)]
        lefts = [round(j * (w - size) / max(1, grid - 1)) for j in range(grid)]
        for t in tops:
            for left in lefts:
                yield x[..., t:t + size, left:left + size]


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor, *,
             method: str = "centre", scales: tuple[int, ...] | None = None, flip: bool = False, grid: int = 5,
             batch_size: int = 250) -> dict[str, float]:
    """Errors of `model` (a vggcore VGG) on uint8 images (N, 3, R, R) under one test protocol.

    scales: the test scales Q (smallest side); default: the model's training size. multicrop always flips.
    """
    if method not in METHODS:
        raise ValueError(f"unknown evaluation method {method!r}; choose one of {', '.join(METHODS)}")
    size = model.config.image_size
    scales = tuple(scales or (size,))
    if min(scales) < size:
        raise ValueError(f"test scales {scales} must be at least the training size {size}")
    net = fully_convolutional(model) if method == "dense" else model
    flips = (False, True) if (flip or method == "multicrop") else (False,)
    model.eval()
    net.eval()

    def averaged() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(labels), batch_size):
            base = _float(images[i:i + batch_size], mean_rgb)
            probs, count = 0.0, 0
            for q in scales:
                scaled = rescale(base, q)
                for view in _views(scaled, method, size, grid):
                    for flipped in flips:
                        v = view.flip(-1) if flipped else view
                        probs = probs + net(v).float().softmax(dim=1)
                        count += 1
            yield (probs / count).clamp_min(1e-12), labels[i:i + batch_size]

    return score(net, averaged(), probabilities=True)
