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
TTA = pytest.StashKey[list]()                        # --vgg-modes time_to_accuracy: the bench.tta.TTACase list
TTA_DONE = pytest.StashKey[list[tuple[str, dict]]]()  # (test id, bench.tta_stats.summarize figures) per case run
AB_DONE = pytest.StashKey[list[tuple[str, dict]]]()   # (test id, bench/test_ab.py's extra_info) per A/B case run
PROFILE = pytest.StashKey["bench.profiling.ProfileOptions"]()  # --vgg-profile and its companions, parsed
ROOFS = pytest.StashKey[dict]()                      # (device, dtype) -> vggcore.profile.roofs.Roofs measured this session
UNPROFILED = pytest.StashKey[list[tuple[str, str]]]()  # (case id, reason) of every case left without a profile


def note_unstable(config: pytest.Config, name: str, reason: str) -> None:
    """Remember an unstable case for the terminal summary."""
    config.stash.setdefault(UNSTABLE, []).append((name, reason))


def unstable_cases(config: pytest.Config) -> list[tuple[str, str]]:
    return config.stash.get(UNSTABLE, [])


def note_tta(config: pytest.Config, name: str, summary: dict) -> None:
    """Remember a time-to-accuracy case's figures for the terminal summary."""
    config.stash.setdefault(TTA_DONE, []).append((name, summary))


def tta_lines(config: pytest.Config) -> list[str]:
    """One line per time-to-accuracy case run: olympic mean, median with its interval, misses, validity."""
    def s(value) -> str:
        return "not reached" if value is None else f"{value:.2f} s"

    def accuracy(value) -> str:
        return "" if value is None else f", median test accuracy {value:.1%}"

    lines = []
    for name, f in config.stash.get(TTA_DONE, []):
        epochs = "" if f["median_epochs"] is None else f", median {f['median_epochs']:g} epochs"
        lines.append(f"{name}: olympic mean {s(f['olympic_mean_s'])}, median {s(f['median_s'])} "
                     f"[{s(f['tta_low_s'])}, {s(f['tta_high_s'])}] ({f['interval_confidence']:.1%} interval){epochs}; "
                     f"{f['not_converged']} of {len(f['tta_status'])} not converged, confirmed on test "
                     f"{f['confirmed_runs']}{accuracy(f.get('median_test_accuracy'))}; "
                     f"{'valid' if f['valid'] else 'INVALID: ' + f['valid_reason']}")
    return lines


def note_ab(config: pytest.Config, name: str, info: dict) -> None:
    """Remember an A/B case's figures for the terminal summary."""
    config.stash.setdefault(AB_DONE, []).append((name, info))


def ab_speed(ratio: float, low: float, high: float) -> str:
    """The speed of A over B with its 95% interval as docs/profile.md's A/B table writes it: 0.997x [0.879, 1.041]."""
    return f"{ratio:.3f}x [{low:.3f}, {high:.3f}]"


def ab_lines(config: pytest.Config) -> list[str]:
    """One line per A/B case run: both medians, the speed of A over B with its 95% interval, the rounds."""
    return [f"{name} against {f['against']}: A median {f['a_median_s'] * 1e3:.4g} ms, B median "
            f"{f['b_median_s'] * 1e3:.4g} ms, speed of A over B "
            f"{ab_speed(f['a_over_b_speed'], f['a_over_b_speed_low'], f['a_over_b_speed_high'])} (95% interval), "
            f"{f['rounds']} rounds per side{'; UNSTABLE: ' + f['unstable_reason'] if f['unstable'] else ''}"
            for name, f in config.stash.get(AB_DONE, [])]


def report_cases(terminalreporter, title: str, cases: list[tuple[str, str]], closing: str) -> None:
    """A yellow terminal section listing (case, reason) pairs and one closing line; nothing when there are none."""
    if not cases:
        return
    terminalreporter.section(title, yellow=True)
    for name, reason in cases:
        terminalreporter.line(f"{name}: {reason}")
    terminalreporter.line(closing)
