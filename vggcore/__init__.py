"""vggcore: the VGG family (Simonyan & Zisserman, 2014), its data, training, evaluation and measurement."""

from .archs import ALIASES, ARCHS, arch_names, resolve_arch
from .config import HEADS, INITS, VGGConfig
from .convert import DenseVGG, from_torchvision, fully_convolutional, to_torchvision
from .model import VGG, build, init_from, init_weights, param_count
from .summary import summary, totals

__all__ = [
    "ALIASES", "ARCHS", "HEADS", "INITS", "DenseVGG", "VGG", "VGGConfig", "arch_names", "build",
    "from_torchvision", "fully_convolutional", "init_from", "init_weights", "param_count", "resolve_arch",
    "summary", "to_torchvision", "totals",
]
__version__ = "0.1.0"
