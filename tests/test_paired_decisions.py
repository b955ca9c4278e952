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

from ablations.calibration.calibrate import paired_figures
from ablations.stats.frames import effects
from ablations.stats.robust import compare
from ablations.calibration.simulate import simulate
from ablations.stats.sequential import look_levels, look_step, new_state, paired_levels
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


def _single_paired(studies, n0, cap, rule="obf", seed=34):
    """The paired t alone under --until-decided, no margin: one variant whose seeds differ from the baseline's by
    exactly normal noise (the t's own model), so every look is a paired t with n - 1 degrees of freedom."""
    rng = np.random.default_rng([seed, n0, cap])
    base = 0.5 + 0.01 * rng.standard_normal((studies, 1, cap))
    values = np.concatenate([base, base + 0.01 * rng.standard_normal((studies, 1, cap))], axis=1)
    r = simulate(values, None, n0, cap, look_levels(n0, cap, rule=rule), None, statistic="paired")
    assert np.all(r["used"] == "paired_t")
    return float(np.mean(r["ever_rejected"]))


@pytest.mark.parametrize("n0, cap", [(3, 7), (3, 16)])
def test_the_paired_t_over_the_looks_holds_alpha_on_its_own_model(n0, cap):
    """Each look's paired t re-estimates the spread, so the t statistics of successive looks are less correlated
    than the z the look levels were computed for: at the z levels the paired t crossed at some look in 5.6-5.8% of
    null studies (normal differences, 2-15 degrees of freedom). Its own levels (`paired_levels`) give it the
    z's crossing probability at every look. 40,000 studies: two standard errors are 0.2 points."""
    rate = _single_paired(40_000, n0, cap)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 40_000), rate
    assert rate >= 0.05 - 4 * np.sqrt(0.05 * 0.95 / 40_000), rate   # not bought by throwing alpha away


def test_the_paired_levels_are_the_z_levels_spent_by_a_t():
    """The paired t's level at each look spends what the z's does: below the z level where the t has few degrees of
    freedom, nearly the z level once it has many, never above it at the first look (a lone look: the same
    level)."""
    z = look_levels(3, 7)
    t = paired_levels(tuple(z), tuple(range(3, 8)))
    assert t[0] == pytest.approx(z[0]) and np.all(t[1:] < z[1:]), (t, z)
    far = look_levels(40, 44)
    assert paired_levels(tuple(far), tuple(range(40, 45))) == pytest.approx(far, rel=0.1)


def test_a_paired_row_states_the_paired_levels_and_decides_as_the_family_does():
    """A look where the paired t is used: the row's level is the paired level, its interval the paired t's at that
    level, and its adjusted p is compared with that level (the same decision the family's scaled p gives)."""
    rng = np.random.default_rng(35)
    shared = 0.3 + 0.02 * rng.standard_normal(5)
    seen = np.stack([shared] + [shared + shift + 0.004 * rng.standard_normal(5) for shift in (0.04, 0, 0, 0)])[None]
    z = look_levels(5, 8)
    s = look_step(new_state(1, 4), seen, None, z[0], 0, None, statistic="paired")
    t = paired_levels((float(z[0]),), (5,))[0]
    ref = sps.ttest_rel(seen[0, 1], seen[0, 0])
    assert s["level"][0, 0] == pytest.approx(t) and s["p"][0, 0] == pytest.approx(ref.pvalue)
    assert [s["low"][0, 0], s["high"][0, 0]] == pytest.approx(list(ref.confidence_interval(1 - t)))
    assert (s["codes"][0, 0] == 2) == (s["p_adjusted"][0, 0] < t)


GRID = 1 / 270   # test errors of the digits demo are multiples of 1 / 270 (its test split)


@pytest.mark.parametrize("steps", [[6, 6, 6], [6, 6, 6, 6, 6, 6, 7]])
def test_differences_on_the_metrics_grid_have_at_least_the_grids_spread(steps):
    """Test errors are multiples of 1 / test images, so paired differences can be exactly equal (the demo's
    augment=paper_colour: three seeds each +6/270) or nearly (six of seven equal): a paired t would have zero or
    too little spread. The values tell their grid; a difference of two values each known to the grid's step q
    carries at least the rounding variance q^2 / 6 (Sheppard), which floors the differences' variance."""
    base = np.array([4, 8, 5, 7, 3, 6, 9][:len(steps)]) / 270
    var = base + np.array(steps) / 270
    n = len(steps)
    d = var - base
    sd = max(np.std(d, ddof=1), GRID / np.sqrt(6))
    t = np.mean(d) / (sd / np.sqrt(n))
    c = compare(var, base, statistic="paired", alpha=0.01)
    assert c.method == "paired_t" and float(c.p) == pytest.approx(2 * sps.t.sf(t, n - 1))
    half = sps.t.ppf(0.995, n - 1) * sd / np.sqrt(n)
    assert [float(c.low), float(c.high)] == pytest.approx([np.mean(d) - half, np.mean(d) + half])
    # values off any grid (continuous) keep their own spread
    jitter = 1e-4 * np.arange(n)
    c = compare(var + jitter, base, statistic="paired", alpha=0.01)
    assert float(c.p) == pytest.approx(sps.ttest_rel(var + jitter, base).pvalue)


def test_identical_differences_off_any_grid_carry_no_spread_and_get_the_unpaired_comparison():
    """Equal differences between values that lie on no grid the values tell (nothing floors their spread): a paired t
    would say p 0 with a zero-width interval. Such pairs are compared unpaired."""
    b = np.array([0.0148, 0.0296, 0.0185]) + np.pi * 1e-7
    v = b + 0.0222
    c = compare(v, b, statistic="paired", alpha=0.0028)
    unpaired = compare(v, b, statistic="trained", alpha=0.0028)
    assert c.method == "welch_trained" and float(c.p) == pytest.approx(float(unpaired.p)) and float(c.p) > 0.01
    assert float(c.high) > float(c.low)
