"""The paired comparison of protocols (ablations.paired): its interval and p-value held to their nominal rates by a
seeded simulation at 3, 5 and 10 seeds, the way the paired runs arise (one trained net per seed, scored twice:
most of the seed-to-seed spread is shared), and its frame function on tidy runs."""

import numpy as np
import pandas as pd
import pytest

from ablations.paired import COLUMNS, paired_effects, paired_t
from ablations.stats import welch

SIMS = 20_000
ALPHA = 0.05
# the binomial sd of a 5% rate over SIMS studies is 0.0015; 4 sd either way
TOLERANCE = 4 * np.sqrt(ALPHA * (1 - ALPHA) / SIMS)


def pairs(rng, n, delta, shared=0.03, own=0.005, sims=SIMS):
    """(a, b) of shape (sims, n): seed-level error shared by both protocols (sd `shared`) plus each protocol's own
    (sd `own`), a's mean `delta` above b's."""
    seed_level = rng.normal(0.1, shared, (sims, n))
    return seed_level + delta + rng.normal(0, own, (sims, n)), seed_level + rng.normal(0, own, (sims, n))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_paired_interval_covers_and_the_test_holds_its_level(n):
    rng = np.random.default_rng(n)
    for delta in (0.0, 0.004):
        a, b = pairs(rng, n, delta)
        diff, low, high, p, count = paired_t(a, b, ALPHA)
        assert (count == n).all()
        coverage = np.mean((low <= delta) & (delta <= high))
        assert abs(coverage - (1 - ALPHA)) < TOLERANCE, (n, delta, coverage)
        if delta == 0:
            false_positive = np.mean(p < ALPHA)
            assert abs(false_positive - ALPHA) < TOLERANCE, (n, false_positive)
            assert np.array_equal(p < ALPHA, (low > 0) | (high < 0))  # the test and the interval agree


@pytest.mark.parametrize("n", [3, 5, 10])
def test_pairing_is_what_finds_a_small_protocol_effect(n):
    """The reason to pair: with the spread shared, Welch's unpaired interval is far wider at the same coverage."""
    rng = np.random.default_rng(100 + n)
    a, b = pairs(rng, n, 0.01, sims=4000)
    _, low, high, p, _ = paired_t(a, b)
    _, wlow, whigh, wp = welch(a.mean(1), a.var(1, ddof=1), n, b.mean(1), b.var(1, ddof=1), n)
    assert np.median(high - low) < np.median(whigh - wlow) / 2
    assert np.mean(p < ALPHA) > np.mean(wp < ALPHA)


def test_holm_over_three_protocols_holds_the_family_rate():
    """Three protocols scored from one net per seed, none better: Holm keeps the chance of any false call <= 5%."""
    from ablations.stats import adjust

    rng = np.random.default_rng(7)
    n = 5
    seed_level = rng.normal(0.1, 0.03, (SIMS, 1, n))
    runs = seed_level + rng.normal(0, 0.005, (SIMS, 4, n))        # arm 0 the reference
    _, _, _, p, _ = paired_t(runs[:, 1:], runs[:, :1])
    family = np.mean((adjust(p, "holm") < ALPHA).any(axis=1))
    assert family <= ALPHA + TOLERANCE, family


def test_missing_and_degenerate_pairs():
    diff, low, high, p, n = paired_t([0.75, np.nan, 0.3, 1.0], [0.25, 0.5, np.nan, 0.5])
    assert n == 2 and diff == low == high == 0.5 and p == 0.0   # NaN on either side drops the pair
    diff, low, high, p, n = paired_t([0.2, 0.2], [0.2, 0.2])
    assert (diff, low, high, p) == (0.0, 0.0, 0.0, 1.0)
    diff, low, high, p, n = paired_t([0.2], [0.1])
    assert n == 1 and diff == pytest.approx(0.1) and np.isnan(low) and np.isnan(p)


def runs_frame():
    rows = []
    for seed in range(4):
        base = 0.1 + 0.02 * seed
        for variant, level, train, value in [("baseline", "own", f"t{seed}", base),
                                             ("test=dense", "dense", f"t{seed}", base - 0.01),
                                             ("test=crops", "crops", f"t{seed}", base - 0.01 + 0.001 * seed),
                                             ("dropout=off", "own", f"d{seed}", base + 0.05)]:
            rows.append({"study": "s", "variant": variant, "seed": seed, "status": "ok", "train_id": train,
                         "level.test": level, "level.dropout": "off" if variant == "dropout=off" else "on",
                         "test_top1_error": value})
    rows[-2]["status"] = "failed"   # one protocol run of seed 3 failed: that pair is left out
    return pd.DataFrame(rows)


def test_paired_effects_pairs_each_protocol_with_its_reference():
    table = paired_effects(runs_frame(), "test_top1_error")
    assert list(table.columns) == COLUMNS
    table = table.set_index("variant")
    assert set(table.index) == {"test=dense", "test=crops"}          # dropout=off trains its own net: not paired
    assert (table["reference"] == "baseline").all() and (table["factors"] == "test").all()
    dense, crops = table.loc["test=dense"], table.loc["test=crops"]
    assert dense["n_pairs"] == 4 and dense["diff"] == pytest.approx(-0.01) and dense["decision"] == "better"
    assert crops["n_pairs"] == 3 and crops["n_seeds"] == 4
    assert crops["diff"] == pytest.approx(-0.01 + 0.001)
    assert crops["p_adjusted"] >= crops["p_value"]


def test_paired_effects_without_shared_trainings_is_empty():
    frame = runs_frame()
    frame = frame[~frame["variant"].str.startswith("test=")]
    assert paired_effects(frame, "test_top1_error").empty


def test_seed_pairs_measures_how_correlated_paired_seeds_are():
    from ablations.paired import seed_pairs

    rng = np.random.default_rng(4)
    shared = rng.standard_normal(8)
    base, var = 0.02 + 0.005 * shared, 0.03 + 0.005 * (0.8 * shared + 0.6 * rng.standard_normal(8))
    rows = [{"study": "s", "variant": v, "seed": i, "status": "ok", "m": x}
            for v, xs in (("baseline", base), ("a=1", var)) for i, x in enumerate(xs)]
    rows.append({"study": "s", "variant": "a=1", "seed": 9, "status": "ok", "m": 0.5})   # no pair: left out
    got = seed_pairs(pd.DataFrame(rows), "m").iloc[0]
    assert got["n_pairs"] == 8 and got["correlation"] == pytest.approx(np.corrcoef(var, base)[0, 1])
    assert got["correlation_low"] < got["correlation"] < got["correlation_high"]
    assert got["variance_ratio"] == pytest.approx(np.var(var - base, ddof=1) / (np.var(var, ddof=1)
                                                                              + np.var(base, ddof=1)))
