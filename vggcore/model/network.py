"""The VGG network, built from a layer list by one builder.

    >>> from vggcore import build
    >>> model = build("D")                                # VGG-16, paper head, 1000 classes
    >>> model = build("vgg16_bn", num_classes=10)         # torchvision name, BatchNorm
    >>> model = build("A", width=0.25, image_size=32)     # CPU-sized

Module layout follows torchvision (`features.N`, `classifier.N`) so state dicts move both ways.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vggcore.model.archs import ARCHS
from vggcore.config import VGGConfig

# AlexNet's LRN (section 3.3 of Krizhevsky et al.), in Caffe's convention that PyTorch shares: alpha is divided
# by the window size, as in the cuda-convnet/Caffe code the VGG authors built on.
LRN_PARAMS = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


def make_features(config: VGGConfig) -> nn.Sequential:
    """The convolutional body: conv (BN) ReLU ... MaxPool, torchvision's index layout."""
    layers: list[nn.Module] = []
    channels = config.in_channels
    for token in ARCHS[config.arch]:
        if token == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif token == "LRN":
            layers.append(nn.LocalResponseNorm(**LRN_PARAMS))
        else:
            out, kernel = (token, 3) if isinstance(token, int) else token
            out = config.channels(out)
            layers.append(nn.Conv2d(channels, out, kernel_size=kernel, padding=kernel // 2))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
    return nn.Sequential(*layers)


def make_pool(config: VGGConfig) -> nn.Module:
    """What sits between the last max-pool and fc6 (the ablation the tutorial raises)."""
    if config.head == "torchvision":
        return nn.AdaptiveAvgPool2d((7, 7))
    if config.head == "gap":
        return nn.AdaptiveAvgPool2d(1)
    return nn.Identity()  # "paper": fc6 reads the last max-pool output as is


def make_classifier(config: VGGConfig, in_features: int) -> nn.Sequential:
    """fc6, fc7, fc8. Dropout with p=0 becomes Identity so indices (and state-dict keys) stay put."""
    hidden = config.fc_width

    def drop() -> nn.Module:
        return nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), drop(),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), drop(),
        nn.Linear(hidden, config.num_classes),
    )


class VGG(nn.Module):
    """features -> pool (head) -> flatten -> classifier. `config` says what it is."""

    def __init__(self, config: VGGConfig, initialise: bool = True) -> None:
        super().__init__()
        self.config = config
        self.features = make_features(config)
        self.pool = make_pool(config)
        last_channels = config.channels(512)
        self.classifier = make_classifier(config, last_channels * config.pool_size ** 2)
        if initialise:
            init_weights(self, config.init)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.in_channels, c.image_size, c.image_size)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.config.name} expects input of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                      # (N, C, H, W) -> (N, 512w, H/32, W/32)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)           # (N, 512w * pool_size^2)
        return self.classifier(x)                    # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


def build(arch_or_config: str | VGGConfig = "D", **overrides) -> VGG:
    """A VGG from an architecture name or a `VGGConfig`, with any `VGGConfig` field overridden."""
    if isinstance(arch_or_config, VGGConfig):
        config = dataclasses.replace(arch_or_config, **overrides) if overrides else arch_or_config
    else:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(VGGConfig)}
        if unknown:
            raise ValueError(f"unknown VGGConfig field(s) {sorted(unknown)}; "
                             f"allowed: {', '.join(f.name for f in dataclasses.fields(VGGConfig))}")
        config = VGGConfig(arch=arch_or_config, **overrides)
    return VGG(config)


def structure(config: VGGConfig) -> VGG:
    """The network's modules on the meta device, uninitialised: shapes and parameter counts, no memory and no
    initialisation (on meta tensors that does no arithmetic, but its first call imports torch._dynamo, about 1.3 s)."""
    with torch.device("meta"):
        return VGG(config, initialise=False)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise conv/linear/BN weights in place.

    "kaiming": torchvision's scheme: convs kaiming_normal_(fan_out, relu), linear N(0, 0.01^2), biases 0.
    "paper":   section 3.1: every weight from N(0, 10^-2), biases 0. The paper writes "variance 10^-2", which
               would be std 0.1; the authors' and most reimplementations use std 0.01, which we follow here.
    "xavier":  Glorot uniform, biases 0 (the authors' post-submission note: trains without pre-training).
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "paper":
                nn.init.normal_(m.weight, 0.0, 0.01)
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                raise ValueError(f"unknown init {scheme!r}; choose one of kaiming, paper, xavier")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_blocks(model: VGG) -> list[list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]]:
    """Per pooling block, the conv layers with their BatchNorm (if any) right after."""
    blocks: list[list] = [[]]
    layers = list(model.features)
    for i, m in enumerate(layers):
        if isinstance(m, nn.MaxPool2d):
            blocks.append([])
        elif isinstance(m, nn.Conv2d):
            bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d) else None
            blocks[-1].append((m, bn))
    return [b for b in blocks if b]


@torch.no_grad()
def init_from(deeper: VGG, trained_a: VGG) -> VGG:
    """The paper's pre-initialisation (section 3.1): copy net A's first four conv layers and its three FC layers
    into a deeper net; the rest keeps its random init.

    The paper's "first four layers" are placed where their shapes fit: A's conv1 and conv2 become the first conv
    of blocks 1 and 2, A's two block-3 convs the first two of block 3 (the deeper nets repeat each layer, so the
    literal first four, e.g. D's 64->64 conv1_2, cannot take A's 64->128 conv2). Returns `deeper`.
    """
    a_blocks, d_blocks = _conv_blocks(trained_a), _conv_blocks(deeper)
    pairs = [(a_blocks[0][0], d_blocks[0][0]), (a_blocks[1][0], d_blocks[1][0]),
             (a_blocks[2][0], d_blocks[2][0]), (a_blocks[2][1], d_blocks[2][1])]
    fcs = [m for m in trained_a.classifier if isinstance(m, nn.Linear)]
    fcd = [m for m in deeper.classifier if isinstance(m, nn.Linear)]
    for (src, src_bn), (dst, dst_bn) in pairs:
        _copy(src, dst)
        if src_bn is not None and dst_bn is not None:
            _copy(src_bn, dst_bn)
    for src, dst in zip(fcs, fcd):
        _copy(src, dst)
    return deeper


def _copy(src: nn.Module, dst: nn.Module) -> None:
    s, d = src.state_dict(), dst.state_dict()
    for key, value in s.items():
        if key not in d or d[key].shape != value.shape:
            raise ValueError(f"init_from: cannot copy {type(src).__name__} {key} of shape {tuple(value.shape)} into "
                             f"{tuple(d[key].shape) if key in d else 'nothing'}; build both nets with the same width, "
                             "image_size, head and num_classes")
    dst.load_state_dict(s)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

