"""The figures of one time-to-accuracy case over its seeds: MLPerf's olympic mean and validity rule, the median and
its distribution-free interval. Pure functions of the runs' records (`bench.tta.timed_run`).

    >>> summarize(runs)["olympic_mean_s"], summarize(runs)["median_s"], summarize(runs)["valid"]

A run that did not reach the target has no time; here it counts as slower than every run that did (infinite),
which is what it is: its time to the target lies beyond the epoch cap.

Why the median's order-statistic interval (`vggcore.intervals`) and not a t interval on the olympic mean:
times to a target come in lumps (a run stops after a whole epoch: 4, 5 or 6 epochs' worth) and a run may not
converge at all. The interval from order statistics covers the population median at its exact binomial rate
whatever the distribution, ties and not-converged runs included (they are just the largest values). Simulated
(tests/test_time_to_accuracy.py, 40,000 cases each): on two lumps of 2 and 3 epochs the 20%-trimmed-mean
(olympic) t interval covered its truth 58% of the time at 5 seeds, and with 10% not-converged runs 79-87%, while
the median interval held its rate everywhere. Its price: with 5 seeds the best distribution-free interval is the
fastest to the slowest run, at 93.75% (6 seeds give 96.9%); the record says which level it has.
"""

from __future__ import annotations

import math
import statistics

from vggcore.intervals import median_interval, median_rank_interval

INF = math.inf
MIN_RUNS = 3   # the olympic mean drops two runs and averages at least one


def times(runs: list[dict]) -> list[float]:
    """Each run's seconds to the target, infinite for a run that did not reach it."""
    return [r["seconds"] if r["status"] == "reached" else INF for r in runs]


def finite(value: float) -> float | None:
    """A time for the record: None where the run (or the statistic) lies beyond the cap."""
    return value if math.isfinite(value) else None


def olympic_mean(values: list[float]) -> float | None:
    """MLPerf's score: drop the fastest and the slowest run and average the rest. None with fewer than 3 runs, or
    when a run that did not converge is left after the drop (two or more did not)."""
    if len(values) < MIN_RUNS:
        return None
    kept = sorted(values)[1:-1]
    return finite(statistics.fmean(kept)) if all(map(math.isfinite, kept)) else None


def median(values: list[float]) -> float | None:
    """The median run; None when it lies beyond the cap (half the runs or more did not converge)."""
    ordered = sorted(values)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return finite(middle)


def interval(values: list[float]) -> tuple[float | None, float | None, float]:
    """(low, high, confidence): the distribution-free interval of the median run's time at the least rank
    distance that keeps 95% where the seeds allow it (else the fastest to the slowest, at its lower level); an end
    beyond the cap is None."""
    low, high = median_interval(values)
    return finite(low), finite(high), median_rank_interval(len(values))[2]


def validity(n: int, not_converged: int) -> tuple[bool, str]:
    """MLPerf's rule: more than one run that does not reach the target makes the result invalid; fewer than 3 runs
    leave no olympic mean."""
    if n < MIN_RUNS:
        return False, f"{n} run(s): the olympic mean needs at least {MIN_RUNS} (MLPerf asks for 5 or more)"
    if not_converged > 1:
        return False, f"{not_converged} of {n} runs did not reach the target (MLPerf allows one)"
    return True, ""


def summarize(runs: list[dict]) -> dict:
    """The case's figures from its runs' records, named as they go into pytest-benchmark's extra_info."""
    values = times(runs)
    low, high, confidence = interval(values)
    missed = sum(r["status"] != "reached" for r in runs)
    valid, why = validity(len(runs), missed)
    reached_runs = [r for r in runs if r["status"] == "reached"]
    return {
        "tta_seconds": [finite(v) for v in values],
        "tta_epochs": [r["epochs"] for r in runs],
        "tta_status": [r["status"] for r in runs],
        "test_accuracy": [r["test_accuracy"] for r in runs],
        "confirmed": [r["confirmed"] for r in runs],
        "olympic_mean_s": olympic_mean(values),
        "median_s": median(values),
        "tta_low_s": low,
        "tta_high_s": high,
        "interval_confidence": round(confidence, 6),
        "not_converged": missed,
        "confirmed_runs": sum(bool(r["confirmed"]) for r in reached_runs),
        "valid": valid,
        "valid_reason": why,
        "median_epochs": statistics.median([r["epochs"] for r in reached_runs]) if reached_runs else None,
        "train_images": [r["train_images"] for r in runs],
        "eval_images": [r["eval_images"] for r in runs],
        "train_images_to_target": (statistics.median([r["train_images"] for r in reached_runs])
                                   if reached_runs else None),
        # what a setting does to the quality reached (a faster one that rounds coarser may stop at a worse net):
        # the test accuracy each run ended with, at its target or its cap; a diverged run has none
        "median_test_accuracy": (statistics.median(tested) if (tested := [r["test_accuracy"] for r in runs
                                                                          if r["test_accuracy"] is not None])
                                 else None),
    }


def round_times(runs: list[dict]) -> list[float]:
    """The rounds handed to pytest-benchmark, one per seed: the time to the target, or for a run that missed it
    the time it ran to the cap (a lower bound of its time to the target). Those runs ran every epoch, so they sit
    at the top and pytest-benchmark's median is the case's median while fewer than half missed."""
    return [r["seconds"] if r["status"] == "reached" else r["elapsed"] for r in runs]
