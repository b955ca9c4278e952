"""Adaptive sampling of one benchmark step: time rounds until the median is known well enough, then judge how
stable the rounds were. Pure functions of a step and a clock, so the stopping rule is tested on synthetic timings.

    from bench.sampling import SamplingRule, sample
    result = sample(step, SamplingRule(precision=0.02, max_time=2.0))
    result.median, result.low, result.high, result.unstable, result.reasons

The median's interval is distribution-free (order statistics of the rounds, binomial coverage): step times on a
shared machine are skewed and have outliers, so a normal-theory interval would be too narrow where it matters.
Rounds of one run are not independent of the machine's state; `reports.compare` adds the between-run noise.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from vggcore.intervals import CONFIDENCE, MIN_ROUNDS_95, median_interval
from vggcore.validation import Check, ConfigError, check_field, check_fields, integer, number

from .cases import OptionError

# 6 is the smallest sample whose min..max brackets the median with >= 95% confidence (1 - 2/2^6 = 96.9%);
# with 5 rounds (the least the harness ever takes) the best distribution-free interval has only 93.75%.
MIN_ROUNDS = MIN_ROUNDS_95
SPREAD_LIMIT = 0.10    # interquartile range over median above which rounds are "too spread" (pyperf warns at 10%)
CLUSTER_GAP = 0.05     # a gap of 5% or more between two groups of rounds can be two machine states


@dataclass(frozen=True)
class SamplingRule:
    precision: float = 0.02       # target relative half-width of the median's 95% interval (0.02 = +-2%)
    max_time: float = 2.0         # seconds of timed rounds per case; only the minimum rounds may go past it
    min_rounds: int = MIN_ROUNDS  # never fewer timed rounds, whatever the budget says
    max_rounds: int = 1000        # a cap for microsecond steps, so a case never times forever

    CHECKS: ClassVar[dict[str, Check]] = {
        "precision": number(0, 1, low_open=True, high_open=True), "max_time": number(0, low_open=True),
        "min_rounds": integer(1), "max_rounds": integer(1)}

    def __post_init__(self) -> None:
        check_fields(self, self.CHECKS)


@dataclass(frozen=True)
class Sample:
    times: list[float]            # seconds of every timed round, in order
    median: float                 # median round, seconds
    low: float                    # 95% interval of the median, seconds
    high: float
    rel_half_width: float         # (high - low) / 2 / median
    stop: str                     # why sampling stopped: "precision", "time budget" or "round cap"
    unstable: bool                # rounds too spread, in separate clusters, or interval wider than the target
    reasons: list[str] = field(default_factory=list)  # one plain sentence per reason, empty when stable

    def extra_info(self) -> dict:
        """The fields a benchmark records in pytest-benchmark's extra_info."""
        return {"median_low": self.low, "median_high": self.high,
                "median_rel_half_width": round(self.rel_half_width, 5), "unstable": self.unstable,
                "unstable_reason": "; ".join(self.reasons), "stop_reason": self.stop,
                "round_times": [round(t, 9) for t in self.times]}


def relative_half_width(times, confidence: float = CONFIDENCE) -> float:
    low, high = median_interval(times, confidence)
    return (high - low) / 2 / statistics.median(times)


def clusters(times) -> tuple[float, float] | None:
    """Medians of two separate groups of rounds, or None for one group.

    Rounds split in two when the widest gap between sorted log-times, with at least a fifth of the rounds (and
    two) on either side, is at least `CLUSTER_GAP` and wider than either group's own range: a machine that flips
    between two states (another job, a frequency change) rather than one state with jitter.
    """
    logs = sorted(math.log(t) for t in times)
    n = len(logs)
    least = max(2, math.ceil(n / 5))
    best = None
    for i in range(least, n - least + 1):
        lower, upper = logs[:i], logs[i:]
        gap = upper[0] - lower[-1]
        if gap >= CLUSTER_GAP and gap > max(lower[-1] - lower[0], upper[-1] - upper[0]):
            if best is None or gap > best[0]:
                best = (gap, math.exp(statistics.median(lower)), math.exp(statistics.median(upper)))
    return None if best is None else best[1:]


def stability(times, precision: float) -> list[str]:
    """Plain reasons why the rounds cannot be trusted as one stable figure (empty list when they can)."""
    reasons = []
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    if (q3 - q1) / median > SPREAD_LIMIT:
        reasons.append(f"rounds spread: interquartile range is {(q3 - q1) / median:.0%} of the median "
                       f"(limit {SPREAD_LIMIT:.0%})")
    split = clusters(times)
    if split:
        reasons.append(f"rounds fall into two clusters, around {split[0]:.4g} s and {split[1]:.4g} s")
    half = relative_half_width(times)
    if half > precision:
        reasons.append(f"the median's 95% interval is +-{half:.1%}, wider than the +-{precision:.1%} target")
    return reasons


def _stop(rule: SamplingRule, values: list[float], next_round_ends: Callable[[], float]) -> str:
    """Why to stop after these rounds ("" to go on): `values` are the round times (or paired ratios) whose median
    must be known to `rule.precision`; `next_round_ends()` is when one more round would end, in budget seconds
    (asked last, so the clock is read exactly when the budget is what decides)."""
    if len(values) < rule.min_rounds:
        return ""
    if relative_half_width(values) <= rule.precision:
        return "precision"
    if len(values) >= rule.max_rounds:
        return "round cap"
    if next_round_ends() > rule.max_time:  # the next round would overrun
        return "time budget"
    return ""


def sample(step: Callable[[], object], rule: SamplingRule, clock: Callable[[], float] = time.perf_counter) -> Sample:
    """Time `step` round after round (each round one call) until the median's relative 95% half-width is at most
    `rule.precision` or the next round would end past `rule.max_time`, never fewer than `rule.min_rounds`."""
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        step()
        times.append(clock() - t0)
        stop = _stop(rule, times, lambda: clock() - start + statistics.median(times))
        if stop:
            break
    return summarize(times, rule.precision, stop)


def summarize(times: list[float], precision: float, stop: str = "given") -> Sample:
    low, high = median_interval(times)
    median = statistics.median(times)
    reasons = stability(times, precision) if len(times) >= 2 else ["a single round"]
    return Sample(times=list(times), median=median, low=low, high=high, rel_half_width=(high - low) / 2 / median,
                  stop=stop, unstable=bool(reasons), reasons=reasons)


def sample_pairs(step_a: Callable[[], object], step_b: Callable[[], object], rule: SamplingRule,
                 clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[float], str]:
    """Time `step_a` and `step_b` in alternation (the order flips every round so neither always runs on a warm
    cache) until the median ratio b/a is known to `rule.precision` or the budget runs out; (times_a, times_b, stop)."""
    times: tuple[list[float], list[float]] = ([], [])
    start = clock()
    while True:
        order = (0, 1) if len(times[0]) % 2 == 0 else (1, 0)
        for which in order:
            t0 = clock()
            (step_a, step_b)[which]()
            times[which].append(clock() - t0)
        stop = _stop(rule, [b / a for a, b in zip(*times)],
                     lambda: clock() - start + statistics.median(times[0]) + statistics.median(times[1]))
        if stop:
            break
    return times[0], times[1], stop


def ratio_sample(times_a: list[float], times_b: list[float], precision: float) -> dict:
    """Paired rounds of two steps timed in alternation: the median of per-round ratios b/a with its 95% interval.

    Each pair saw the same machine state, so drift cancels in the ratio; the pairs are the i.i.d. units.
    """
    ratios = [b / a for a, b in zip(times_a, times_b)]
    low, high = median_interval(ratios)
    median = statistics.median(ratios)
    return {"ratio": median, "ratio_low": low, "ratio_high": high,
            "ratio_rel_half_width": round((high - low) / 2 / median, 5),
            "ratio_unstable": (high - low) / 2 / median > precision}


# option -> (SamplingRule field, what its value means)
OPTIONS = {"--vgg-max-time": ("max_time", "seconds of timed rounds per case"),
           "--vgg-precision": ("precision", "a fraction: 0.02 or 2%")}


def _parse(option: str, raw: str) -> float:
    """'0.02' or '2%' -> 0.02; OptionError naming the option."""
    try:
        return float(raw.strip().removesuffix("%")) / (100 if raw.strip().endswith("%") else 1)
    except ValueError:
        raise OptionError(f"{option}: {raw!r} is not a number ({OPTIONS[option][1]})") from None


def rule_from_options(max_time: str | None, precision: str | None) -> SamplingRule:
    """--vgg-max-time (seconds) and --vgg-precision (0.02 or 2%) -> the rule; OptionError naming the option."""
    values = {}
    for option, raw in (("--vgg-max-time", max_time), ("--vgg-precision", precision)):
        if raw is None:
            continue
        name, meaning = OPTIONS[option]
        value = _parse(option, raw)
        try:
            check_field(SamplingRule.CHECKS, name, value)
        except ConfigError as err:
            raise OptionError(f"{option}: {raw!r}: {err} ({meaning})") from None
        values[name] = value
    return SamplingRule(**values)


def record_rounds(benchmark, times: list[float]) -> None:
    """Hand rounds timed here to pytest-benchmark, as `pedantic` would have recorded them.

    `pedantic` fixes its rounds before the first one runs; adaptive stopping decides after each round, so the
    rounds are timed here (same clock, `time.perf_counter`) and added to the fixture's statistics through the
    hook `pedantic` itself uses. That hook (`_make_stats`) and the once-only guard (`_mode`) are private to
    pytest-benchmark: pyproject.toml bounds its version, and tests/test_bench_plugin.py fails when they change."""
    benchmark._mode = "benchmark.pedantic(...)"  # the fixture may still be used only once
    stats = benchmark._make_stats(1)
    for t in times:
        stats.update(t)


UNSTABLE_ADVICE = ("give it more time (--vgg-max-time), fewer threads (OMP_NUM_THREADS / torch.set_num_threads), "
                   "or an idle machine; compare such cases with several runs per side (python -m reports compare)")
