"""Decisions as the report, `run --until-decided` and `ablations status` make them (ablations.stats.frames):
a folder started under the even split keeps its decisions (a fixture written by that code), a new plan replays its
looks at the O'Brien-Fleming-like levels, a seed that did not train is counted apart, and bad input is one line."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablations.cli import main as ablations_main
from ablations.stats.frames import COLUMNS, MetricMissing, effects
from ablations.stats.sequential import look_levels
from ablations.store import Plan, Store
from reports.cli import main as reports_main
from reports.load import load_ablations
from reports.sections.studies import study_effects

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVEN = FIXTURES / "study_bb88bf6"   # written --until-decided by the code at bb88bf6 (see fixtures/README.md)


# ------------------------------------------------------------------------ a folder of the even split
def test_an_even_split_folder_reads_as_the_rule_it_ran_under():
    plan = Store(EVEN).plan()
    assert (plan.rule, plan.statistic, plan.freeze, plan.looks) == ("even", "welch", False, 3)
    assert plan.levels == pytest.approx((0.05 / 3,) * 3)


def test_an_even_split_folder_gives_the_decisions_its_code_gave():
    eff, _ = study_effects(load_ablations([EVEN]))
    got = eff["evensplit"].set_index("variant")
    want = pd.read_csv(EVEN / "expected_effects.csv").set_index("variant")
    assert got["decision"].to_dict() == want["decision"].to_dict()
    assert got.loc["width=w25", "decision"] == "undecided"   # equivalent at looks 1-2, re-decided at look 3
    for column in ("n", "n_ok", "diff", "diff_low", "diff_high", "p_value", "p_adjusted", "alpha"):
        np.testing.assert_allclose(got.loc[want.index, column].to_numpy(float), want[column].to_numpy(float),
                                   rtol=1e-9, atol=1e-15, err_msg=column)
    assert set(got["rule"]) == {"even"} and set(got["looks"]) == {"3 of 3"}


def test_rerunning_an_even_split_folder_continues_under_its_rule(tmp_path, capsys):
    folder = Path(shutil.copytree(EVEN, tmp_path / "even"))
    before = (folder / "results.jsonl").read_text(), (folder / "adaptive.json").read_text()
    assert ablations_main(["run", str(EVEN / "fixture.toml"), "--out", str(folder), "--until-decided",
                           "--quiet"]) == 0
    out = capsys.readouterr().out
    assert ("(even rule): 3 look(s), ran 0 run(s); init=kaiming equivalent (n=5), eval=b250 equivalent (n=3), "
            "width=w25 undecided (n=3), classes=c100 worse (n=3)") in out
    assert ((folder / "results.jsonl").read_text(), (folder / "adaptive.json").read_text()) == before


# --------------------------------------------------------------------------- replaying a new plan's looks
def _runs(values: dict[str, list[float]], metric="m", first_loss=2.3, final_loss=0.05) -> pd.DataFrame:
    """Runs that trained by the loss criterion (2.3 -> 0.05), each with its value as its test error too (a test
    error of 0.03 where the metric is not an error rate)."""
    rows = []
    for variant, xs in values.items():
        for seed, x in enumerate(xs):
            rows.append({"study": "s", "variant": variant, "seed": seed, "status": "ok", metric: x,
                         "first_train_loss": first_loss, "final_train_loss": final_loss,
                         "rule_error": x if metric in ("m", "test_top1_error") else 0.03,
                         "num_classes": 10.0})
    return pd.DataFrame(rows)


def test_a_new_plan_replays_its_looks_and_keeps_a_decision():
    """3 to 5 seeds: a large effect decided at look 1 keeps look 1's analysis (and does not receive more seeds);
    the baseline and the open variant go on to look 3, each analysed at its look's level."""
    rng = np.random.default_rng(1)
    base = list(0.03 + 0.004 * rng.standard_normal(5))
    big = list(0.30 + 0.004 * rng.standard_normal(3))
    same = list(0.03 + 0.004 * rng.standard_normal(5))
    plan = Plan(min_effect=0.001, max_seeds=5, initial_seeds=3)
    eff = effects(_runs({"baseline": base, "a=big": big, "a=same": same}), "m", min_effect=0.001,
                  schedule=plan.schedule()).set_index("variant")
    levels = look_levels(3, 5, rule="obf")
    assert eff.loc["a=big", "decision"] == "worse" and eff.loc["a=big", "look"] == 1
    assert eff.loc["a=big", "alpha"] == pytest.approx(levels[0]) and eff.loc["a=big", "n_compared_baseline"] == 3
    assert eff.loc["a=same", "look"] == 3 and eff.loc["a=same", "alpha"] == pytest.approx(levels[2])
    assert eff.loc["a=same", "n_compared"] == 5 and set(eff["looks"]) == {"3 of 3"}
    # a look counts only once the baseline and every open variant have run its seed: without a=same's last seed,
    # the replay stops after look 2
    cut = _runs({"baseline": base, "a=big": big, "a=same": same[:4]})
    part = effects(cut, "m", min_effect=0.001, schedule=plan.schedule()).set_index("variant")
    assert part.loc["a=same", "look"] == 2 and set(part["looks"]) == {"2 of 3"}


# ----------------------------------------------------------------------------- seeds that did not train
def test_a_seed_that_did_not_train_is_counted_apart_and_leaves_the_others_alone():
    base = [0.030, 0.025, 0.040]
    values = {"baseline": base, "a=1": [0.03, 0.05, 0.04], "b=1": [0.031, 0.02, 0.045]}
    err = "test_top1_error"
    clean = effects(_runs(values, err), err, min_effect=0.02).set_index("variant")
    bad = _runs({**values, "h=tv": [0.52, 0.20, 0.02]}, err)          # the head=torchvision seeds
    eff = effects(bad, err, min_effect=0.02).set_index("variant")
    assert eff.loc["h=tv", "n_not_trained"] == 1 and eff.loc["h=tv", "n_used"] == 2   # 0.52 >= 0.45: near chance
    assert eff.loc["h=tv", "not_trained_low"] < 1 / 3 < eff.loc["h=tv", "not_trained_high"]
    assert eff.loc["h=tv", "mean"] == pytest.approx(0.11) and eff.loc["h=tv", "mean_all"] == pytest.approx(0.74 / 3)
    # the other variants' comparisons and seeds-needed are untouched by it (Holm's family grew by one)
    for v in ("a=1", "b=1"):
        for column in ("diff", "diff_low", "diff_high", "p_value", "seeds_needed"):
            if column == "seeds_needed":   # planned for Bonferroni over 3 comparisons instead of 2
                assert eff.loc[v, column] <= 1.3 * clean.loc[v, column]
            else:
                assert eff.loc[v, column] == pytest.approx(clean.loc[v, column])
    assert eff.loc["h=tv", "seeds_needed"] > 10 * eff.loc[["a=1", "b=1"], "seeds_needed"].max()
    assert "1 of 3 seeds did not train" in eff.loc["h=tv", "seeds_needed_reason"]


def test_a_variant_whose_seeds_diverge_did_not_train_and_is_decided_by_its_failure_rate():
    """A diverged run (a non-finite training loss, no result) did not train. The same planted study as the test
    below, with h=tv's five seeds diverged instead of stuck, must decide h=tv the same way (worse by its failure
    rate at look 3) and count them the same; before, the failure test saw finished seeds only, so h=tv stayed
    undecided up to any cap. A failed run (an error, not a training outcome) is still counted apart."""
    err = "test_top1_error"
    rng = np.random.default_rng(7)
    clean = {"baseline": list(0.03 + 0.003 * rng.standard_normal(6)),
             "a=1": list(0.03 + 0.003 * rng.standard_normal(6)), "b=1": list(0.06 + 0.003 * rng.standard_normal(6))}
    plan = Plan(min_effect=0.02, max_seeds=6, initial_seeds=3)
    stuck = _runs({"h=tv": [0.9] * 5}, err, first_loss=2.3, final_loss=2.3)
    diverged = stuck.assign(status="diverged", **{err: np.nan, "rule_error": np.nan, "final_train_loss": np.nan})
    by_stuck, by_diverged = (effects(pd.concat([_runs(clean, err), tv]), err, min_effect=0.02,
                                     schedule=plan.schedule()).set_index("variant") for tv in (stuck, diverged))
    tv = by_diverged.loc["h=tv"]
    assert (tv["decision"], tv["decided_by"], tv["look"], tv["n_not_trained"], tv["n_diverged"], tv["n_ok"]) == (
        "worse", "failure rate", 3, 5, 5, 0)
    for column in ("p_value", "p_adjusted", "excess_failure_p", "not_trained_low", "not_trained_high",
                   "n_compared"):
        assert tv[column] == pytest.approx(by_stuck.loc["h=tv", column]), column
    assert by_diverged.drop(index="h=tv")[["decision", "p_value"]].equals(
        by_stuck.drop(index="h=tv")[["decision", "p_value"]])
    failed = stuck.assign(status="failed", **{err: np.nan, "rule_error": np.nan})
    apart = effects(pd.concat([_runs(clean, err), failed]), err, min_effect=0.02,
                    schedule=plan.schedule()).set_index("variant").loc["h=tv"]
    assert (apart["decision"], apart["n_not_trained"], apart["n_failed"]) == ("undecided", 0, 5)


def test_excess_failure_p_is_its_own_column():
    values = {"baseline": [0.03, 0.03, 0.04], "a=1": [0.9, 0.88, 0.9]}
    eff = effects(_runs(values, "test_top1_error"), "test_top1_error").set_index("variant")
    assert eff.loc["a=1", "n_not_trained"] == 3 and eff.loc["a=1", "excess_failure_p"] == pytest.approx(1 / 20)
    assert eff.loc["a=1", "decision"] == "undecided" and np.isnan(eff.loc["a=1", "diff"])   # nothing trained
    assert np.isnan(eff.loc["baseline", "excess_failure_p"])


def test_a_variant_whose_seeds_do_not_train_is_decided_worse_by_its_failure_rate():
    """A planted --until-decided folder's records (no training), 3 to 6 seeds: h=tv's seeds all did not train
    (loss stuck at its first epoch's, test error 0.9), the baseline's and the others' all trained. The old look left
    h=tv undecided for ever (no trained seeds to compare). Now b=1 is worse and a=1 equivalent at look 1 (their p
    stay in Holm's family of three), and at look 3, 5 vs 5 seeds, h=tv's p is 2 x Fisher's 1/252, which Holm's
    second step (x 2) carries below that look's 0.0257: worse by its failure rate, with no seed added after it.
    The others' comparisons and decisions are those without it."""
    from ablations.adaptive import progress
    from reports.sections.studies import effects_detail, failure_lines, method_detail
    from reports.readable import readable

    err = "test_top1_error"
    rng = np.random.default_rng(7)
    clean = {"baseline": list(0.03 + 0.003 * rng.standard_normal(6)),
             "a=1": list(0.03 + 0.003 * rng.standard_normal(6)), "b=1": list(0.06 + 0.003 * rng.standard_normal(6))}
    stuck = _runs({"h=tv": [0.9] * 5}, err, first_loss=2.3, final_loss=2.3)
    plan = Plan(min_effect=0.02, max_seeds=6, initial_seeds=3)
    eff = effects(pd.concat([_runs(clean, err), stuck]), err, min_effect=0.02,
                  schedule=plan.schedule()).set_index("variant")
    alone = effects(_runs(clean, err), err, min_effect=0.02, schedule=plan.schedule()).set_index("variant")
    tv = eff.loc["h=tv"]
    assert (tv["decision"], tv["decided_by"], tv["look"], tv["n_not_trained"], tv["n_used"]) == (
        "worse", "failure rate", 3, 5, 0)
    assert tv["p_value"] == pytest.approx(2 / 252) and tv["p_adjusted"] == pytest.approx(2 * 2 / 252)
    assert tv["p_adjusted"] < tv["alpha"] == pytest.approx(plan.levels[2]) and np.isnan(tv["diff"])
    # the failure test of the deciding look: 5 of 5 vs 0 of 5 (not the baseline's 6 seeds of the last look)
    assert tv["excess_failure_p"] == pytest.approx(1 / 252)
    assert (tv["k_compared"], tv["n_compared"], tv["k_compared_baseline"], tv["n_compared_baseline"]) == (5, 5, 0, 5)
    for v in ("a=1", "b=1"):
        assert eff.loc[v, "decided_by"] == "trained seeds"
        assert eff.loc[v, ["decision", "look"]].tolist() == alone.loc[v, ["decision", "look"]].tolist()
        assert eff.loc[v, ["diff", "diff_low", "diff_high", "p_value"]].tolist() == pytest.approx(
            alone.loc[v, ["diff", "diff_low", "diff_high", "p_value"]].tolist())
    assert eff.loc["b=1", "decision"] == "worse" and eff.loc["a=1", "decision"] == "equivalent"
    flat = eff.reset_index()
    assert "decided by" in readable(effects_detail(flat)).headers
    assert "decided by" not in readable(effects_detail(alone.reset_index())).headers
    lines = failure_lines(flat)
    assert ("h=tv fails to train more often than the baseline? at look 3, 5 of 5 vs 0 of 5 did not train "
            "(one-sided Fisher p 0.00397) (part of the decision: a seed of the pair did not train, so the "
            "variant's p is 2 x the smaller of this p and the trained seeds' p, at most 1); decided worse by its "
            "failure rate") in lines
    a1 = next(line for line in lines if line.startswith("a=1 fails to train"))
    assert a1.endswith("p 1)")   # no failures in that pair: not part of its decision
    assert "fail to train more often than the baseline's by a one-sided Fisher exact test" in method_detail(flat)
    comp = eff[eff.index != "baseline"]
    seeds = pd.Series({"baseline": 6, "h=tv": 5, "a=1": 6, "b=1": 6})
    line = progress(3, plan, comp, seeds, [], err, eff.loc["baseline"])
    assert ("  h=tv: worse (fails to train: 5 of 5 vs 0 of 5 did not train (one-sided Fisher p 0.00397)), n=5"
            in line and "(decided at look 3)" in line)
    assert "test_top1_error no trained seed (5 vs 5 (0 vs 5 trained) seeds" in line and "nan" not in line   # not "diff +nan [+nan, +nan]"


def test_the_studies_section_says_it_in_words():
    """The report's studies section: did-not-train counts and seeds used as plain headers, the effect among the
    trained seeds, which variant is expensive and why, the statistic and rule in force; after --until-decided the
    interval headers say each row sits at its look's level."""
    from reports.readable import readable
    from reports.sections.studies import effects_detail, expensive_text, failure_lines, method_detail

    err = "test_top1_error"
    values = {"baseline": [0.030, 0.025, 0.040], "a=1": [0.03, 0.05, 0.04], "h=tv": [0.52, 0.20, 0.02]}
    eff = effects(_runs(values, err), err, min_effect=0.02)
    table = readable(effects_detail(eff))
    assert {"did not train", "seeds used", "seeds needed", "95% interval", "95% interval of the difference"} <= \
        set(table.headers) and "at look" not in table.headers   # fixed seeds: one look
    lines = failure_lines(eff)
    assert any(line.startswith("h=tv: 1 of 3 seeds did not train (33%, 95% interval 1%-91%); effect among the "
                               "seeds that trained at look 1:") for line in lines)
    assert "Expensive to decide: h=tv" in expensive_text(eff) and "1 of 3 seeds did not train" in expensive_text(eff)
    text = method_detail(eff)
    assert "Decision statistic: on the seeds that trained" in text and "Fixed seeds: one analysis" in text
    rng = np.random.default_rng(1)
    plan = Plan(min_effect=0.001, max_seeds=5, initial_seeds=3)
    looked = effects(_runs({"baseline": list(0.03 + 0.004 * rng.standard_normal(5)),
                            "a=big": list(0.30 + 0.004 * rng.standard_normal(3)),
                            "a=same": list(0.03 + 0.004 * rng.standard_normal(5))}), "m", min_effect=0.001,
                     schedule=plan.schedule())
    headers = readable(effects_detail(looked)).headers
    assert "interval (at the row's level)" in headers and "at look" in headers and "level (alpha)" in headers
    assert "O'Brien-Fleming-like" in method_detail(looked) and "3 of 3 planned looks" in method_detail(looked)


# ------------------------------------------------------------------------------------------- bad input
def test_a_metric_without_known_bounds_is_treated_as_unbounded_and_says_so():
    eff = effects(_runs({"baseline": [5.0, 6.0, 7.0], "a=1": [6.0, 7.0, 8.0]}, "train_seconds"), "train_seconds",
                  min_effect=2.0)   # a margin beyond [0, 1] is fine here
    assert set(eff["ci_method"]) == {eff["ci_method"].iloc[0]}
    assert "train_seconds has no known bounds: treated as unbounded" in eff["ci_method"].iloc[0]
    assert eff.set_index("variant").loc["baseline", "ci_low"] < 5.0


def test_a_metric_missing_from_the_records_is_one_line_naming_it(tmp_path, capsys):
    runs = _runs({"baseline": [0.1, 0.2], "a=1": [0.1, 0.3]}, "test_top1_error")
    with pytest.raises(MetricMissing, match=r"study s: metric 'val_top1_error' is in none of its 4 finished "
                                            r"records; they hold test_top1_error"):
        effects(runs, "val_top1_error")
    folder = Path(shutil.copytree(FIXTURES / "study_5687e3f", tmp_path / "f"))
    manifest = json.loads((folder / "study.json").read_text())
    (folder / "study.json").write_text(json.dumps({**manifest, "metric": "val_top1_error"}))
    # the fixture's ok runs recorded val_top1_error: blank it to make the metric missing
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for r in lines:
        if r.get("final"):
            r["final"].pop("val_top1_error", None)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    before = sorted(p.name for p in folder.iterdir())
    assert reports_main(["build", "--ablations", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "metric 'val_top1_error' is in none of its 3 finished records" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists() and sorted(p.name for p in folder.iterdir()) == before


def test_a_min_effect_larger_than_the_range_is_one_line(tmp_path, capsys):
    runs = _runs({"baseline": [0.1, 0.2], "a=1": [0.1, 0.3]}, "test_top1_error")
    with pytest.raises(ValueError, match=r"min_effect 2.0 is larger than test_top1_error's whole range \[0, 1\]; "
                                         "give at most 1"):
        effects(runs, "test_top1_error", min_effect=2.0)
    assert reports_main(["build", "--ablations", str(FIXTURES / "study_5687e3f"), "--out", str(tmp_path / "r"),
                         "--min-effect", "3"]) == 2
    err = capsys.readouterr().err
    assert "min_effect 3.0 is larger than test_top1_error's whole range [0, 1]" in err and len(err.splitlines()) == 1


def test_every_column_is_documented():
    eff = effects(_runs({"baseline": [0.1, 0.2], "a=1": [0.1, 0.3]}), "m")
    assert list(eff.columns) == list(COLUMNS) and all(COLUMNS.values())


# ------------------------------------------------------------------------------- a tiny real study
TINY_REAL = """
[study]
name = "notrain"
seeds = [0, 1, 2]
metric = "test_top1_error"
min_effect = 0.2

[base.model]
arch = "A"
batch_norm = true
width = 0.125
image_size = 32
dropout = 0.0

[base.data]
augment = "none"

[base.train]
epochs = 5
batch_size = 16
lr = 0.05
schedule = "constant"
threads = 1

# lr 1e-7: no seed of this variant can train (its loss stays at ln 10); 2 epochs are enough to show it
[factors.lr]
levels.normal = { "train.lr" = 0.05 }
levels.tiny = { "train.lr" = 1e-7, "train.epochs" = 2 }
"""
# Two variants that change nothing the training sees (an eval batch size, a loader worker count: the same runs
# under other ids), planted as copies of the baseline's real records rather than trained again.
NO_OP = ("eval=b250", "loader=w1")


@pytest.mark.slow
def test_a_tiny_real_study_with_a_variant_that_cannot_train(tmp_path):
    """6 real runs at width 0.125 (the baseline, 5 epochs, and lr=tiny, 2 epochs, whose seeds cannot train) and two
    no-op variants copied from the baseline's records; then one seed of eval=b250 is planted from a run that did not
    train. The report counts them, the other variants' effects are those without them, and seeds-needed stays
    per variant where one pooled sd would explode."""
    from ablations.stats import seeds_needed as pooled_seeds_needed

    study = tmp_path / "notrain.toml"
    study.write_text(TINY_REAL)
    out = tmp_path / "out"
    assert ablations_main(["run", str(study), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    factor = {"eval=b250": "eval", "loader=w1": "loader"}
    lines += [{**r, "run_id": f"{v}-{r['seed']}", "variant": v, "levels": {**r["levels"], factor[v]: v[-4:]}}
              for v in NO_OP for r in lines if r["variant"] == "baseline"]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    eff = effects_of(out, tmp_path / "rep")
    tiny, b250, w1 = (eff.loc[v] for v in ("lr=tiny", *NO_OP))
    assert (tiny["n_not_trained"], tiny["n_ok"], tiny["n_used"]) == (3, 3, 0)
    assert tiny["excess_failure_p"] == pytest.approx(1 / 20) and tiny["decision"] == "undecided"
    assert eff.loc["baseline", "n_not_trained"] == 0 and b250["n_not_trained"] == w1["n_not_trained"] == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "lr=tiny: 3 of 3 seeds did not train (100%, 95% interval 29%-100%)" in md
    assert ("lr=tiny fails to train more often than the baseline? at look 1, 3 of 3 vs 0 of 3 did not train "
            "(one-sided Fisher p 0.05)") in md
    assert "Seeds that did not train: a seed did not train when" in md
    # the others' comparisons are what they are without lr=tiny's runs (Holm's family aside)
    runs = load_ablations([out]).runs
    alone = effects(runs[runs["variant"] != "lr=tiny"], "test_top1_error", min_effect=0.2).set_index("variant")
    for v in NO_OP:
        assert eff.loc[v, ["diff", "diff_low", "diff_high", "p_value"]].tolist() == pytest.approx(
            alone.loc[v, ["diff", "diff_low", "diff_high", "p_value"]].tolist())
    assert b250["diff"] == pytest.approx(0, abs=1e-12) and w1["diff"] == pytest.approx(0, abs=1e-12)

    # plant: eval=b250's seed 0 becomes a run that did not train (lr=tiny's seed 0, relabelled)
    donor = next(r for r in lines if r["variant"] == "lr=tiny" and r["seed"] == 0)
    lines = [({**donor, "run_id": r["run_id"], "variant": r["variant"], "levels": r["levels"]}
              if r["variant"] == "eval=b250" and r["seed"] == 0 else r) for r in lines]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    planted = effects_of(out, tmp_path / "rep2")
    b250p = planted.loc["eval=b250"]
    assert (b250p["n_not_trained"], b250p["n_used"]) == (1, 2)
    assert "eval=b250: 1 of 3 seeds did not train" in (tmp_path / "rep2" / "report.md").read_text()
    # its effect among the two trained seeds is still no effect; loader=w1 is untouched
    assert b250p["diff"] == pytest.approx(0, abs=0.05)
    assert planted.loc["loader=w1", "seeds_needed"] == pytest.approx(w1["seeds_needed"])
    assert planted.loc["loader=w1", "seeds_needed"] < 50
    # one pooled sd over every finished seed, as the old report computed it, is dominated by the planted seed
    ok = runs[runs["status"] == "ok"]
    trained = ok[ok["variant"] != "lr=tiny"].copy()
    trained.loc[(trained["variant"] == "eval=b250") & (trained["seed"] == 0), "test_top1_error"] = \
        donor["final"]["test_top1_error"]
    pooled = np.sqrt(sum(((g - g.mean()) ** 2).sum() for _, g in trained.groupby("variant")["test_top1_error"])
                     / (len(trained) - trained["variant"].nunique()))
    assert pooled_seeds_needed(pooled, 0.2) > 2 * planted.loc["loader=w1", "seeds_needed"]


def effects_of(out, report):
    assert reports_main(["build", "--ablations", str(out), "--out", str(report)]) == 0
    return pd.read_csv(report / "tables" / "effects.csv").set_index("variant")
