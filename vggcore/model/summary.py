"""Analytic per-layer counts: output shapes, parameters, multiply-accumulates and activation memory.

Nothing runs a forward pass: shapes are propagated layer by layer from the config. Tests check the figures
against torch's FLOP counter and autograd's saved tensors.

Columns of `summary()` (one row per layer, in forward order):
    layer             module path, torchvision's naming (features.0, classifier.3, ...)
    kind              conv3x3, conv1x1, bn, relu, lrn, maxpool, avgpool, flatten, linear, dropout, identity
    output_shape      (N, C, H, W) or (N, F)
    params            trainable parameters
    macs              multiply-accumulates of the forward pass (matmul/conv only; 1 MAC = 2 FLOPs)
    activation_bytes  bytes of the output tensor the layer allocates (fp32; 0 for in-place ReLU and views)
    saved_bytes       bytes this layer adds to what autograd keeps for backward in training mode on the CPU in
                      fp32 (de-duplicated: a tensor already kept by an earlier layer is not counted again)
"""

from __future__ import annotations

from math import prod

import pandas as pd
from torch import nn

from vggcore.config import VGGConfig
from vggcore.model.network import VGG, structure

FP32 = 4
INT64 = 8


def _as_config(obj: str | VGGConfig | VGG, image_size: int | None) -> VGGConfig:
    if isinstance(obj, VGG):
        config = obj.config
    elif isinstance(obj, VGGConfig):
        config = obj
    else:
        config = VGGConfig(arch=obj)
    if image_size is not None and image_size != config.image_size:
        config = VGGConfig(**{**config.__dict__, "image_size": image_size})
    return config


def summary(model_or_config: str | VGGConfig | VGG, image_size: int | None = None, batch_size: int = 1,
            **overrides) -> pd.DataFrame:
    """Per-layer table of a network at `image_size` (default: the config's) for a batch of `batch_size`."""
    config = _as_config(model_or_config, image_size)
    if overrides:
        config = VGGConfig(**{**config.__dict__, **overrides})
    if isinstance(model_or_config, VGG) and config == model_or_config.config:
        model = model_or_config
    else:
        model = structure(config)   # no memory for 138M parameters, no initialisation
    return pd.DataFrame(_walk(model, batch_size))


def _walk(model: VGG, n: int) -> list[dict]:
    c = model.config
    shape: tuple[int, ...] = (n, c.in_channels, c.image_size, c.image_size)
    rows: list[dict] = []
    # Autograd bookkeeping: tensors are identified by the layer that allocated them; in-place ReLU reuses its
    # input. `kept` holds the tensors some layer has already saved for backward.
    current, kept = "input", set()

    def keep(tensor_id: str, nbytes: int) -> int:
        if tensor_id in kept:
            return 0
        kept.add(tensor_id)
        return nbytes

    named = [(f"features.{i}", m) for i, m in enumerate(model.features)]
    named += [("pool", model.pool), ("flatten", None)]
    named += [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    for name, m in named:
        numel_in = prod(shape)
        params = sum(p.numel() for p in m.parameters()) if m is not None else 0
        macs, saved, produces = 0, 0, name
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0]
            kind = f"conv{k}x{k}"
            shape = (n, m.out_channels, shape[2], shape[3])
            macs = prod(shape) * m.in_channels * k * k
            saved = keep(current, numel_in * FP32)                        # input, for the weight gradient
        elif isinstance(m, nn.BatchNorm2d):
            kind = "bn"
            saved = keep(current, numel_in * FP32) + 2 * shape[1] * FP32  # input, batch mean and inv-std
        elif isinstance(m, nn.ReLU):
            kind, produces = "relu", current                              # in place: keeps its result
            saved = keep(current, numel_in * FP32)
        elif isinstance(m, nn.LocalResponseNorm):
            kind = "lrn"
            # torch's LRN: x*x padded along channels and averaged (kept: the padded (N,1,C+size-1,H,W) tensor),
            # then two intermediate maps of the input's size; the input itself is kept by the square.
            padded = n * (shape[1] + m.size - 1) * shape[2] * shape[3] * FP32
            saved = keep(current, numel_in * FP32) + padded + 2 * numel_in * FP32
        elif isinstance(m, nn.MaxPool2d):
            kind = "maxpool"
            shape = (n, shape[1], shape[2] // 2, shape[3] // 2)
            saved = keep(current, numel_in * FP32) + prod(shape) * INT64  # input and argmax indices
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
            kind = "avgpool"
            if tuple(out) != (1, 1):      # a global average is a mean, which keeps nothing
                saved = keep(current, numel_in * FP32)
            shape = (n, shape[1], *out)
        elif m is None:
            kind, produces = "flatten", current                           # a view
            shape = (n, prod(shape) // n)
        elif isinstance(m, nn.Linear):
            kind = "linear"
            shape = (n, m.out_features)
            macs = n * m.in_features * m.out_features
            saved = keep(current, numel_in * FP32)
        elif isinstance(m, nn.Dropout):
            kind = "dropout"
            saved = numel_in * FP32                                       # the scaled keep-mask (CPU kernel)
        elif isinstance(m, nn.Identity):
            kind, produces = "identity", current
        else:  # pragma: no cover - the builder makes nothing else
            raise TypeError(f"summary: unexpected layer {type(m).__name__}")
        current = produces
        rows.append(dict(layer=name, kind=kind, output_shape=shape, params=params, macs=macs,
                         activation_bytes=prod(shape) * FP32 if produces == name else 0,
                         saved_bytes=saved))
    return rows


def totals(table: pd.DataFrame) -> dict[str, int]:
    return {col: int(table[col].sum()) for col in ("params", "macs", "activation_bytes", "saved_bytes")}
