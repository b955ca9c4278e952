"""vggcore: the VGG family (Simonyan & Zisserman, 2014), its data, training, evaluation and measurement.

    >>> from vggcore import DataConfig, TrainConfig, VGGConfig, build, train
    >>> net = build(VGGConfig("D", batch_norm=True))                    # torchvision's vgg16_bn, key for key
    >>> result = train(VGGConfig("A", width=0.25, image_size=32), DataConfig("digits"), TrainConfig(epochs=5))

The rooms, each a package whose docstring says what lives there and what it may import:
    model/     the architecture table, the network builder, torchvision conversion, the analytic summary
    data/      datasets, the paper's preprocessing and augmentation, the batch iterator
    train/     the loop and its resume, one epoch, the SGD step, schedules, data-parallel training, checkpoints
    evaluate/  scoring, the paper's test protocols, precise BatchNorm, scoring trained run folders
    profile/   per-layer profiles against the roofline measured in the same run
    cli/       the `vggbench` core commands (list, summary, train, evaluate, profile) and their parser
and the infrastructure beside them: config (every configuration, one module), errors, validation, files (atomic
writes), lock, provenance, device, memory, peaks (the machine's measured FLOP/s), threads, seeds, world (a
data-parallel world as data), intervals.

The public names below are imported on first use, so `import vggcore` (and any light module, such as
`vggcore.errors` or `vggcore.config`) does not import torch.
"""

from __future__ import annotations

import importlib

# public name -> the module that owns it
PUBLIC = {
    "ALIASES": "vggcore.model.archs", "ARCHS": "vggcore.model.archs", "arch_names": "vggcore.model.archs",
    "resolve_arch": "vggcore.model.archs",
    "HEADS": "vggcore.config", "INITS": "vggcore.config", "VGGConfig": "vggcore.config", "DataConfig": "vggcore.config",
    "TrainConfig": "vggcore.config", "RunConfig": "vggcore.config",
    "VGG": "vggcore.model.network", "build": "vggcore.model.network", "init_from": "vggcore.model.network",
    "init_weights": "vggcore.model.network", "param_count": "vggcore.model.network",
    "DenseVGG": "vggcore.model.convert", "from_torchvision": "vggcore.model.convert",
    "fully_convolutional": "vggcore.model.convert", "to_torchvision": "vggcore.model.convert",
    "summary": "vggcore.model.summary", "totals": "vggcore.model.summary",
    "train": "vggcore.train.loop", "Trainer": "vggcore.train.trainer",
    "Protocol": "vggcore.evaluate.protocols", "evaluate_run": "vggcore.evaluate.runs",
    "profile_step": "vggcore.profile.profiler",
}
__all__ = sorted(PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in PUBLIC:
        value = getattr(importlib.import_module(PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vggcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC))
