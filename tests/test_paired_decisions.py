"""The 'paired' decision statistic: where a variant and the baseline have the same trained seeds (the default
design runs every arm on the same seeds, the same data order and, for same-shaped nets, the same initial weights),
the decision uses the per-seed differences (paired t); where a pair is broken (a seed failed, diverged, did not
train or is missing on one side) it is the unpaired default. Seeded simulations of --until-decided hold the
family-wise rate at pair correlations from -0.5 to 0.6 and show what pairing gains (docs/statistics.md,
section 6)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ablations.stats.calibrate import paired_figures
from ablations.stats.frames import effects
from ablations.stats.robust import compare
from ablations.store import Plan

STUDIES = 2000


def test_whole_pairs_get_the_paired_t_and_a_broken_pair_the_unpaired_default():
    rng = np.random.default_rng(3)
    shared = 0.02 + 0.006 * rng.standard_normal(6)
    b = np.abs(shared + 0.002 * rng.standard_normal(6))
    v = np.abs(shared + 0.004 + 0.002 * rng.standard_normal(6))
    c = compare(v, b, statistic="paired", alpha=0.01)
    ref = sps.ttest_rel(v, b)
    assert c.method == "paired_t" and float(c.p) == pytest.approx(ref.pvalue)
    assert [float(c.low), float(c.high)] == pytest.approx(list(ref.confidence_interval(0.99)))
    assert float(c.diff) == pytest.approx(np.mean(v - b))
    # the same seeds with one of the variant's missing (or not trained): the pairs are broken
    for ok in (None, np.array([True] * 5 + [False])):
        broken = v.copy() if ok is not None else np.where(np.arange(6) == 5, np.nan, v)
        c = compare(broken, b, ok_variant=ok, statistic="paired", alpha=0.01)
        trained = compare(broken, b, ok_variant=ok, statistic="trained", alpha=0.01)
        assert c.method == "welch_trained" and float(c.p) == pytest.approx(float(trained.p))
    # a seed lost on both sides leaves whole pairs
    both = compare(np.where(np.arange(6) == 5, np.nan, v), np.where(np.arange(6) == 5, np.nan, b),
                   statistic="paired")
    assert both.method == "paired_t" and float(both.p) == pytest.approx(sps.ttest_rel(v[:5], b[:5]).pvalue)


def test_a_paired_study_names_its_estimand_on_the_row():
    rows = []
    rng = np.random.default_rng(5)
    shared = 0.02 + 0.006 * rng.standard_normal(5)
    for variant, shift in (("baseline", 0.0), ("a=1", 0.01)):
        for seed in range(5):
            x = float(abs(shared[seed] + shift + 0.002 * rng.standard_normal()))
            rows.append({"study": "s", "variant": variant, "seed": seed, "status": "ok", "test_top1_error": x,
                         "first_train_loss": 2.3, "final_train_loss": 0.05, "rule_error": x, "num_classes": 10.0})
    runs = pd.DataFrame(rows)
    plan = Plan(min_effect=0.03, max_seeds=5, initial_seeds=3, statistic="paired")
    row = effects(runs, "test_top1_error", min_effect=0.03, statistic="paired",
                  schedule=plan.schedule()).set_index("variant").loc["a=1"]
    seen = runs[runs["seed"] < 2 + row["look"]].pivot(index="seed", columns="variant", values="test_top1_error")
    assert row["diff_method"] == "paired_t" and row["estimand"] == "mean of paired differences"
    assert row["p_value"] == pytest.approx(sps.ttest_rel(seen["a=1"], seen["baseline"]).pvalue)


def _bound(rate: float = 0.05) -> float:
    return rate + 2 * np.sqrt(rate * (1 - rate) / STUDIES)   # nominal plus two binomial standard errors


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.6])
@pytest.mark.parametrize("fail", [0.0, 0.1])
def test_both_statistics_hold_the_family_wise_rate_in_the_demos_design(rho, fail):
    """The demo's design: baseline 0.015, sd 0.008, min_effect 0.03, 3 to 7 seeds, four variants, Holm."""
    f = paired_figures(np.random.default_rng([30, int(rho * 10) + 10, int(fail * 10)]), STUDIES, rho, fail, 0.0,
                       max_seeds=7)
    for label, r in f.items():
        assert r["fwer"] <= _bound(), (label, r)


def test_without_a_margin_negative_pair_correlation_breaks_the_unpaired_rate_and_pairing_keeps_it():
    """No min_effect: every no-effect variant runs to the cap of 7, the harshest case. Seeds correlated -0.5 with
    the baseline's make the difference of two means vary more than Welch assumes (it treats the arms as
    independent): the unpaired default's family-wise rate goes above 5%; the paired t, whose variance is that
    of the differences, keeps it (docs/statistics.md, section 6, says so and gives the figures)."""
    f = paired_figures(np.random.default_rng(32), STUDIES, -0.5, 0.0, 0.0, max_seeds=7, min_effect=None)
    assert f["unpaired: trained"]["fwer"] > 0.05 + 2 * np.sqrt(0.05 * 0.95 / STUDIES), f
    assert f["paired where the pairs are whole"]["fwer"] <= _bound(), f


def test_pairing_finds_more_only_when_paired_seeds_are_strongly_correlated():
    """At the demo's baseline and a +0.02 change: at a pair correlation of 0.8 the paired t finds it more often
    than the unpaired default; at 0 it finds it less often (it pays degrees of freedom for nothing)."""
    strong = paired_figures(np.random.default_rng(31), STUDIES, 0.8, 0.0, 0.02, max_seeds=7)
    none = paired_figures(np.random.default_rng(33), STUDIES, 0.0, 0.0, 0.02, max_seeds=7)
    key_p, key_u = "paired where the pairs are whole", "unpaired: trained"
    assert strong[key_p]["detected"] > strong[key_u]["detected"], strong
    assert none[key_p]["detected"] < none[key_u]["detected"], none


def test_identical_differences_carry_no_spread_and_get_the_unpaired_comparison():
    """Test errors are multiples of 1 / test images, so at 3 pairs every difference can be the same (it happened on
    the demo's records: augment=paper_colour's first three seeds, each +0.0222): a paired t would have zero spread,
    p 0 and a zero-width interval. Such pairs are compared unpaired."""
    b = np.array([0.0148, 0.0296, 0.0185])
    v = b + 0.0222
    c = compare(v, b, statistic="paired", alpha=0.0028)
    unpaired = compare(v, b, statistic="trained", alpha=0.0028)
    assert c.method == "welch_trained" and float(c.p) == pytest.approx(float(unpaired.p)) and float(c.p) > 0.01
    assert float(c.high) > float(c.low)
