"""Conversions: the paper's fully-convolutional test net (section 3.2) and torchvision interchange."""

from __future__ import annotations

import torch
from torch import nn

from vggcore.model.archs import TORCHVISION_NAMES
from vggcore.config import VGGConfig
from vggcore.model.network import VGG, structure


class DenseVGG(nn.Module):
    """VGG with fc6/fc7/fc8 as convolutions: runs on any image at least as large as the training size, and
    spatially averages the class score map (the paper's dense evaluation)."""

    def __init__(self, features: nn.Sequential, pool: nn.Module, convs: nn.Sequential, config: VGGConfig) -> None:
        super().__init__()
        self.config = config
        self.features, self.pool, self.classifier = features, pool, convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.in_channels or min(x.shape[2:]) < c.image_size:
            raise ValueError(f"dense evaluation expects (N, {c.in_channels}, H, W) with H, W >= {c.image_size}, "
                             f"got {tuple(x.shape)}")
        scores = self.classifier(self.pool(self.features(x)))   # (N, classes, h, w): one score per window
        return scores.mean(dim=(2, 3))                           # (N, classes)


@torch.no_grad()
def fully_convolutional(model: VGG) -> DenseVGG:
    """fc6 becomes a k x k convolution (k = the map side fc6 was trained on: 7 at 224), fc7 and fc8 1x1
    convolutions. Weights are shared copies, so the dense net agrees with `model` at the training size."""
    config = model.config
    k = config.pool_size
    layers: list[nn.Module] = []
    in_channels = config.channels(512)
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            size = k if not layers else 1
            conv = nn.Conv2d(in_channels, m.out_features, kernel_size=size)
            conv.weight.copy_(m.weight.reshape(m.out_features, in_channels, size, size))
            conv.bias.copy_(m.bias)
            conv.to(m.weight.device, m.weight.dtype)
            layers.append(conv)
            in_channels = m.out_features
        else:
            layers.append(type(m)(m.p) if isinstance(m, nn.Dropout) else type(m)())
    # "torchvision" pools every input to 7x7, which would make dense evaluation a plain resize; the dense net
    # reads the raw feature map instead (identical at 224). "gap" keeps its global average.
    pool = nn.AdaptiveAvgPool2d(1) if config.head == "gap" else nn.Identity()
    dense = DenseVGG(model.features, pool, nn.Sequential(*layers), config)
    return dense.train(model.training)


def _arch_signature(state: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((k, tuple(v.shape)) for k, v in state.items())


def _torchvision_config(state: dict[str, torch.Tensor], **overrides) -> VGGConfig:
    num_classes = state["classifier.6.weight"].shape[0] if "classifier.6.weight" in state else None
    in_channels = state["features.0.weight"].shape[1] if "features.0.weight" in state else 3
    if num_classes is None:
        raise ValueError("not a torchvision VGG state dict: no classifier.6.weight")
    signature = _arch_signature(state)
    for arch in TORCHVISION_NAMES:
        for bn in (False, True):
            config = VGGConfig(arch=arch, batch_norm=bn, num_classes=num_classes, in_channels=in_channels,
                               head="torchvision", **overrides)
            candidate = structure(config)
            if _arch_signature(candidate.state_dict()) == signature:
                return config
    raise ValueError("state dict matches none of torchvision's vgg11/13/16/19 (with or without _bn) layouts")


def from_torchvision(module_or_state_dict: nn.Module | dict, **overrides) -> VGG:
    """A vggcore model equal to a torchvision VGG (same logits, same state-dict keys).

    The architecture, BatchNorm and class count are read off the weights; `head` is "torchvision"
    (AdaptiveAvgPool2d(7)) so any input size behaves as in torchvision. `overrides` set other `VGGConfig`
    fields (image_size, dropout, ...).
    """
    state = module_or_state_dict.state_dict() if isinstance(module_or_state_dict, nn.Module) else module_or_state_dict
    if not isinstance(state, dict):
        raise ValueError(f"expected a torchvision VGG module or its state dict, got {type(module_or_state_dict)}")
    config = _torchvision_config(state, **overrides)
    model = structure(config).to_empty(device=state["classifier.6.weight"].device)
    model.load_state_dict(state)
    if isinstance(module_or_state_dict, nn.Module):
        model.train(module_or_state_dict.training)
    return model


def to_torchvision(model: VGG) -> nn.Module:
    """The torchvision VGG that equals `model` (A/B/D/E, torchvision head, width 1, 3 input channels)."""
    import torchvision

    c = model.config
    lacks = None
    if c.torchvision_name is None:
        lacks = (f"configuration {c.arch}", f"torchvision has {', '.join(TORCHVISION_NAMES)} "
                                            f"({', '.join(TORCHVISION_NAMES.values())})")
    elif c.width != 1:
        lacks = (f"width {c.width:g}", "torchvision's VGG has width 1 only")
    elif c.head != "torchvision":
        lacks = (f"head {c.head!r}", "build with head='torchvision' (its AdaptiveAvgPool2d((7, 7)))")
    elif c.in_channels != 3:
        lacks = (f"in_channels {c.in_channels}", "torchvision's VGG takes 3-channel images")
    if lacks:
        raise ValueError(f"to_torchvision: {lacks[0]} has no torchvision counterpart; {lacks[1]}")
    tv = getattr(torchvision.models, c.torchvision_name)(weights=None, num_classes=c.num_classes, dropout=c.dropout)
    tv.load_state_dict(model.state_dict())
    return tv.train(model.training)
