"""The paper's preprocessing (section 3.1) as batched tensor ops on the training device.

Every geometric step (isotropic rescale to smallest side S, random crop to the training size, horizontal flip,
scale jittering with S drawn per image) is one per-image affine map, applied to a whole batch by a single
`grid_sample`. With integer crop offsets and S equal to the stored size it reproduces a plain crop exactly.
Then AlexNet's PCA colour shift and the training-set mean-RGB subtraction.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from vggcore.data.presets import Augment
from typing import Iterator

# AlexNet's "fancy PCA" on ImageNet RGB in [0, 1] (as used by fb.resnet.torch; ../shared/PAPER.md).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])
PCA_ALPHA_STD = 0.1


def crop_grid(batch: int, out: int, scale: torch.Tensor, offset: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Sampling grid for `out` x `out` crops of images rescaled to side `scale` (per image, pixels).

    offset: (B, 2) top-left corner (x, y) of the crop in the rescaled image, pixels; flip: (B,) bool.
    """
    frac = out / scale                                            # (B,) crop side as a fraction of the image
    centre = (offset + out / 2) / scale[:, None] * 2 - 1          # (B, 2) in [-1, 1]
    theta = torch.zeros(batch, 2, 3, device=scale.device)
    theta[:, 0, 0] = torch.where(flip, -frac, frac)
    theta[:, 1, 1] = frac
    theta[:, :, 2] = centre
    return F.affine_grid(theta, [batch, 1, out, out], align_corners=False)   # (B, out, out, 2)


def sample_geometry(batch: int, out: int, scale_min: int, scale_max: int, aug: Augment,
                    gen: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Per-image S, crop offset and flip for one batch, as a sampling grid. Draws happen on the CPU generator
    so a seed gives the same batch on every device."""
    if aug.jitter:
        scale = torch.randint(scale_min, scale_max + 1, (batch,), generator=gen).float()
    else:
        scale = torch.full((batch,), float(scale_min))
    room = scale - out                                            # (B,) free pixels around the crop
    if aug.crop:
        offset = torch.floor(torch.rand(batch, 2, generator=gen) * (room[:, None] + 1))
    else:
        offset = torch.floor(room[:, None] / 2).expand(batch, 2)
    flip = torch.rand(batch, generator=gen) < 0.5 if aug.flip else torch.zeros(batch, dtype=torch.bool)
    return crop_grid(batch, out, scale.to(device), offset.to(device), flip.to(device))


def color_shift(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Add V @ (alpha * lambda) to every pixel of each image (RGB in [0, 1]); alpha ~ N(0, 0.1) per image."""
    alpha = torch.randn(images.shape[0], 3, generator=gen) * PCA_ALPHA_STD            # (B, 3)
    shift = (alpha * PCA_EIGVAL) @ PCA_EIGVEC.T                                        # (B, 3) = V @ (alpha*lambda)
    return images + shift.to(images.device, images.dtype)[:, :, None, None]


def augment_batch(images_u8: torch.Tensor, out: int, scale_min: int, scale_max: int, aug: Augment,
                  mean_rgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 (B, 3, R, R) stored images -> float (B, 3, out, out), mean-subtracted, ready for the model."""
    x = images_u8.float().div_(255)                               # (B, 3, R, R) in [0, 1]
    b, _, r, _ = x.shape
    identity = not (aug.crop or aug.flip or aug.jitter) and scale_min == r == out
    if not identity:
        grid = sample_geometry(b, out, scale_min, scale_max, aug, gen, x.device)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if aug.color:
        x = color_shift(x, gen)
    return x - mean_rgb.to(x.device, x.dtype)[None, :, None, None]


def rescale(images: torch.Tensor, side: int) -> torch.Tensor:
    """Isotropic rescale of float (B, C, H, W) images so the smaller side is `side`."""
    h, w = images.shape[-2:]
    if min(h, w) == side:
        return images
    size = (side, round(w * side / h)) if h <= w else (round(h * side / w), side)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=side < min(h, w))


def centre_crop(images: torch.Tensor, out: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - out) // 2, (w - out) // 2
    return images[..., top:top + out, left:left + out]


def as_float(images_u8: torch.Tensor, mean_rgb: torch.Tensor) -> torch.Tensor:
    x = images_u8.float().div_(255)
    return x - mean_rgb.to(x.device)[None, :, None, None]


def centre_batches(images: torch.Tensor, labels: torch.Tensor, mean_rgb: torch.Tensor, size: int, scale: int,
                   batch_size: int = 500) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float inputs: rescale stored uint8 images to smallest side `scale`, centre crop `size`, subtract mean."""
    for i in range(0, len(labels), batch_size):
        x = centre_crop(rescale(as_float(images[i:i + batch_size], mean_rgb), scale), size)
        yield x, labels[i:i + batch_size]
