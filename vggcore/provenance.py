"""Where a result came from: package versions, the source commit, the machine."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "vggbench")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the vggbench source tree (with '-dirty' for local changes), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict[str, str | None]:
    import torch
    import torchvision

    # The modules' own strings carry the build (e.g. "+cu130"), which the distribution metadata drops.
    out: dict[str, str | None] = {"python": sys.version.split()[0], "torch": torch.__version__,
                                  "torchvision": torchvision.__version__}
    for name in PACKAGES[2:]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(device: str = "cpu") -> dict:
    import torch

    from vggcore.device import device_name

    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "machine": {"hostname": socket.gethostname(), "platform": platform.platform(),
                    "processor": device_name("cpu"), "threads": torch.get_num_threads()},
        "device": {"type": device, "name": device_name(device)},
    }
