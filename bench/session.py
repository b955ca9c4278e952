"""What the benchmark suite keeps for one pytest session, on `config.stash` (pytest's typed plugin storage).

bench/conftest.py fills the keys from the --vgg-* options when the session starts; the tests read them through
its fixtures, and `note_unstable` collects the cases that the terminal summary lists at the end.
"""

from __future__ import annotations

import pytest

from .cases import BenchCase
from .memory_guard import MemoryLimit
from .sampling import SamplingRule
from .scaling import ScalingCase

CASES = pytest.StashKey[list[BenchCase]]()          # the single-process grid, one test per case
AB_AGAINST = pytest.StashKey[dict]()                 # --vgg-ab-against, parsed: the B side's settings
RULE = pytest.StashKey[SamplingRule]()               # --vgg-max-time and --vgg-precision
SCALING = pytest.StashKey[list[ScalingCase]]()       # --vgg-world-sizes: the data-parallel cases
MEMORY_LIMIT = pytest.StashKey[MemoryLimit]()        # --vgg-memory-limit, parsed
UNSTABLE = pytest.StashKey[list[tuple[str, str]]]()  # (test id, reason) of every case whose rounds were unstable
PROFILE = pytest.StashKey["bench.profiling.ProfileOptions"]()  # --vgg-profile and its companions, parsed
ROOFS = pytest.StashKey[dict]()                      # (device, dtype) -> vggcore.roofs.Roofs measured this session
UNPROFILED = pytest.StashKey[list[tuple[str, str]]]()  # (case id, reason) of every case left without a profile


def note_unstable(config: pytest.Config, name: str, reason: str) -> None:
    """Remember an unstable case for the terminal summary."""
    config.stash.setdefault(UNSTABLE, []).append((name, reason))


def unstable_cases(config: pytest.Config) -> list[tuple[str, str]]:
    return config.stash.get(UNSTABLE, [])
