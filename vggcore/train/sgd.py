"""The SGD every trainer and benchmark builds (the paper's, section 3.1), and which of torch's implementations runs
its update: the choices and each device's default as data, importable without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from vggcore.config import TrainConfig

if TYPE_CHECKING:
    import torch


# How torch.optim.SGD runs its update. "auto" leaves the choice to PyTorch (foreach on CUDA, the for-loop
# elsewhere); the others force one.
SGD_IMPLEMENTATIONS = {"auto": {}, "for-loop": {"foreach": False}, "foreach": {"foreach": True},
                       "fused": {"fused": True}}
# The implementations the benchmark's --vgg-optimizer takes (every one but PyTorch's own choice).
SGD_CHOICES = ("for-loop", "foreach", "fused")
# Which implementations give bit for bit the parameters of PyTorch's for-loop SGD (momentum and weight decay
# included), per device: tests/test_sgd_implementations.py checks every entry both ways on the devices it has.
# On CPU foreach runs the for-loop's own elementwise kernels one tensor after another (torch has no CPU foreach
# kernels), so its results are the for-loop's; fused rounds some of the elements past a tensor's last full vector
# differently (of a 31-element tensor, elements 24 and 26 were 4 and 1 ulp off after six steps; in a tiny VGG the
# 10-element last bias differed from the second step on), so it changes training's numerics.
# CUDA and MPS are not judged yet: only the for-loop is listed until the test has run there.
BITWISE_SGD = {"cpu": ("for-loop", "foreach"), "cuda": ("for-loop",), "mps": ("for-loop",)}
# The default per device: the fastest of the bit-for-bit ones, so choosing it changes no result and needs no
# config field (a run trained before this table existed, under "auto", is the same run). cpu: foreach, which on
# the AMX machine took 901 ms against the for-loop's 1,622 in a bf16 VGG-A step and here (AVX2, loaded)
# was as fast as the for-loop in the SGD step alone; the lead's A/B (docs/profile.md) confirms or flips
# it, and either way no number changes. cuda: foreach, PyTorch's own default there (so "auto" ran it already).
# mps: the for-loop, PyTorch's own default there.
DEFAULT_SGD = {"cpu": "foreach", "cuda": "foreach", "mps": "for-loop"}


def default_sgd(device: str) -> str:
    """The SGD implementation training and the benchmark use on `device` (cpu, cuda, cuda:1, mps)."""
    return DEFAULT_SGD.get(device.partition(":")[0], "auto")


def sgd(params: Iterable[torch.nn.Parameter], config: TrainConfig, *,
        implementation: str | None = None) -> torch.optim.SGD:
    """SGD with `config`'s lr, momentum and weight decay (TrainConfig()'s defaults are the paper's), run by
    `implementation` (SGD_IMPLEMENTATIONS), by default the one DEFAULT_SGD names for the parameters' device."""
    import torch

    params = list(params)
    if implementation is None:
        implementation = default_sgd(params[0].device.type if params else "cpu")
    if implementation not in SGD_IMPLEMENTATIONS:
        raise ValueError(f"unknown SGD implementation {implementation!r}; choose {', '.join(SGD_IMPLEMENTATIONS)}")
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           **SGD_IMPLEMENTATIONS[implementation])


def sgd_implementation(optimizer: torch.optim.Optimizer) -> str:
    """The SGD_IMPLEMENTATIONS name an optimizer `sgd` built runs ("auto" where it left the choice to PyTorch)."""
    defaults = optimizer.defaults
    if defaults.get("fused"):
        return "fused"
    return {True: "foreach", False: "for-loop"}.get(defaults.get("foreach"), "auto")
