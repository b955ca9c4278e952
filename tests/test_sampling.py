"""The adaptive stopping rule and the stability verdict, on synthetic timings with a fake clock."""

import math
import random
import statistics

import numpy as np
import pytest

from bench.sampling import SamplingRule, ratio_sample, rule_from_options, sample, sample_pairs, summarize
from vggcore.intervals import median_interval, median_rank_interval


class FakeClock:
    """A clock that only moves when a fake step says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def step(self, durations):
        it = iter(durations)

        def run():
            self.now += next(it)
        return run


def run_rule(durations, **rule):
    clock = FakeClock()
    return sample(clock.step(durations), SamplingRule(**rule), clock), clock.now


def test_constant_step_stops_at_the_minimum():
    result, _ = run_rule([0.5] * 100)
    assert len(result.times) == SamplingRule().min_rounds == 6
    assert result.stop == "precision" and not result.unstable and result.reasons == []
    assert result.low == result.high == result.median == 0.5


def test_noisy_step_runs_longer_until_precise():
    rng = random.Random(0)
    result, _ = run_rule([rng.lognormvariate(0, 0.05) for _ in range(10_000)], max_time=1e6)
    assert 10 < len(result.times) < 1000
    assert result.stop == "precision" and result.rel_half_width <= 0.02


def test_budget_is_respected():
    rng = random.Random(1)
    durations = [rng.lognormvariate(0, 0.4) for _ in range(10_000)]
    result, elapsed = run_rule(durations, max_time=30)
    assert result.stop == "time budget" and elapsed <= 30
    assert len(result.times) >= 6 and result.unstable
    assert any("wider than the +-2.0% target" in r for r in result.reasons)


def test_minimum_rounds_even_past_the_budget():
    result, elapsed = run_rule([2.0, 3.0] * 50, max_time=1)
    assert len(result.times) == 6 and elapsed == 15.0


def test_bimodal_rounds_are_unstable_and_tight_ones_are_not():
    rng = random.Random(2)
    bimodal = [rng.gauss(1.0, 0.005) for _ in range(10)] + [rng.gauss(1.4, 0.005) for _ in range(10)]
    rng.shuffle(bimodal)
    verdict = summarize(bimodal, 0.02)
    assert verdict.unstable and any("two clusters, around 0.9973 s and 1.398 s" in r for r in verdict.reasons)
    tight = summarize([rng.gauss(1.0, 0.005) for _ in range(20)], 0.02)
    assert not tight.unstable and tight.reasons == []


def test_one_slow_outlier_is_not_a_cluster():
    times = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.01, 1.0, 0.99, 1.6]
    assert not any("clusters" in r for r in summarize(times, 0.02).reasons)


def test_clusters_are_rare_in_unimodal_rounds():
    """Seeded simulation: log-normal rounds (5% spread) are called clustered in under 5% of samples."""
    rng = np.random.default_rng(3)
    flagged = sum(any("clusters" in r for r in summarize(list(np.exp(rng.normal(0, 0.05, n))), 0.02).reasons)
                  for n in (6, 10, 20, 40) for _ in range(250))
    assert flagged / 1000 <= 0.05


def test_median_interval_coverage_is_nominal():
    """Seeded simulation over skewed (log-normal) rounds: the interval holds the true median >= 95% of the time."""
    rng = np.random.default_rng(4)
    for n in (6, 9, 20, 50):
        hits = 0
        for _ in range(2000):
            low, high = median_interval(np.exp(rng.normal(0, 0.2, n)))
            hits += low <= 1.0 <= high
        assert hits / 2000 >= 0.95 - 0.01, n  # 0.01: the simulation's own standard error is 0.005
        assert median_rank_interval(n)[2] >= 0.95


def test_paired_ratio_interval_coverage_and_drift():
    """A/B pairs under a drifting machine: the ratio's interval covers the true 1.25 at its nominal rate."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(1000):
        drift = np.exp(np.cumsum(rng.normal(0, 0.05, 12)))  # the machine slows and speeds up over the run
        a = drift * np.exp(rng.normal(0, 0.03, 12))
        b = 1.25 * drift * np.exp(rng.normal(0, 0.03, 12))
        r = ratio_sample(list(a), list(b), 0.02)
        hits += r["ratio_low"] <= 1.25 <= r["ratio_high"]
    assert hits / 1000 >= 0.95 - 0.015


def test_pairs_alternate_and_stop():
    clock = FakeClock()
    order = []

    def step(name, seconds):
        def run():
            order.append(name)
            clock.now += seconds
        return run

    a, b, stop = sample_pairs(step("a", 1.0), step("b", 2.0), SamplingRule(), clock)
    assert stop == "precision" and len(a) == len(b) == 6
    assert order[:4] == ["a", "b", "b", "a"]
    assert statistics.median(b) / statistics.median(a) == 2.0


@pytest.mark.parametrize("max_time,precision,seconds,fraction", [
    (None, None, 2.0, 0.02), ("5", "1%", 5.0, 0.01), ("0.5", "0.05", 0.5, 0.05)])
def test_rule_from_options(max_time, precision, seconds, fraction):
    rule = rule_from_options(max_time, precision)
    assert rule.max_time == seconds and math.isclose(rule.precision, fraction)
