"""One row, one look: every number on an effects row comes from the seeds of the look that decided it.

A stored --until-decided folder is written here by code (study.json, adaptive.json, results.jsonl as the runner
writes them; 3 listed seeds, a cap of 8, O'Brien-Fleming-like looks): `a=early` is decided worse at look 3 (5
seeds) while the baseline goes on to 8 seeds, `h=fail`'s seeds never train and it is decided worse by its failure
rate at look 4, and `b=late` stays open to the last look (8 vs 8 seeds, the rank statistic). The report's effects
table is read back from its CSV, and each row is recomputed from the records of its own look alone with scipy:
Welch (`ttest_ind(equal_var=False)`), Fisher (`fisher_exact`), Mann-Whitney (`mannwhitneyu`), Holm by hand."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special
from scipy import stats as sps

from ablations.store import Manifest, Plan
from reports.cli import main as reports_main

TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "study_5687e3f" / "results.jsonl"
PLAN = Plan(min_effect=0.03, max_seeds=8, initial_seeds=3)
# test errors per seed, as the procedure ran them: a decided variant gets no more seeds
VALUES = {"baseline": [0.0213, 0.0257, 0.0003, 0.0142, 0.0211, 0.0231, 0.0189, 0.024],
          "a=early": [0.0473, 0.0494, 0.0464, 0.0364, 0.0382],
          "b=late": [0.0608, 0.071, 0.0345, 0.0627, 0.0169, 0.0187, 0.0366, 0.0406],
          "h=fail": [0.9, 0.9, 0.9, 0.9, 0.9, 0.9]}
WHEN = {"a=early": 3, "h=fail": 4, "b=late": 6}   # the look each row must come from


def write_folder(folder: Path) -> None:
    template = json.loads(TEMPLATE.read_text().splitlines()[0])
    lines, listed = [], []
    for variant, values in VALUES.items():
        for seed, x in enumerate(values):
            r = copy.deepcopy(template)
            r.update(run_id=f"{variant}-{seed}", study="onelook", variant=variant, seed=seed,
                     levels={} if variant == "baseline" else {variant.split("=")[0]: variant.split("=")[1]})
            r["config"]["model"]["num_classes"] = 10
            stuck = x >= 0.45   # h=fail: the loss stays at its first epoch's
            r["history"] = [{**r["history"][0], "epoch": e + 1, "train_loss": 2.3 if stuck or e == 0 else 0.05}
                            for e in range(2)]
            r["final"] = {**r["final"], "test_top1_error": x}
            lines.append(json.dumps(r))
            if seed < PLAN.initial_seeds:
                listed.append(r["run_id"])
    folder.mkdir()
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    manifest = Manifest(study="onelook", run_ids=tuple(listed), metric="test_top1_error", min_effect=0.03)
    (folder / "study.json").write_text(json.dumps(manifest.to_json()))
    (folder / "adaptive.json").write_text(json.dumps(PLAN.to_json()))


def seen(variant: str, look: int) -> np.ndarray:
    """The values look `look` (1-based) saw of an arm: the listed seeds and one more per look after the first."""
    return np.array(VALUES[variant][:PLAN.initial_seeds + look - 1])


def bounded_mean_interval(x: np.ndarray, level: float) -> tuple[float, float]:
    """The union of the t interval cut to [0, 1] and the logit-scale t interval (docs/statistics.md section 1)."""
    t = sps.t.interval(1 - level, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    z = special.logit(np.clip(x, 1e-4, 1 - 1e-4))
    zt = special.expit(sps.t.interval(1 - level, len(x) - 1, loc=z.mean(), scale=sps.sem(z)))
    return min(max(t[0], 0.0), zt[0]), max(min(t[1], 1.0), zt[1])


def holm(p: dict) -> dict:
    order = sorted(p, key=p.get)
    out, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[k]))
        out[k] = running
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("onelook")
    write_folder(root / "out")
    assert reports_main(["build", "--ablations", str(root / "out"), "--out", str(root / "rep")]) == 0
    return (pd.read_csv(root / "rep" / "tables" / "effects.csv").set_index("variant"),
            (root / "rep" / "report.md").read_text())


def raw_p(variant: str, look: int) -> float:
    """A variant's p at a look from its records alone: Welch below 7 trained seeds per arm, Mann-Whitney from 7,
    and where a seed of the pair did not train 2 x the smaller of that and Fisher's one-sided p."""
    v, b = seen(variant, look), seen("baseline", look)
    trained = v[v < 0.45]
    if len(trained) >= 7:
        p_effect = sps.mannwhitneyu(trained, b, method="exact").pvalue
    elif len(trained) >= 2:
        p_effect = sps.ttest_ind(trained, b, equal_var=False).pvalue
    else:
        p_effect = 1.0
    k_v = int((v >= 0.45).sum())
    if k_v == 0:
        return p_effect
    fisher = sps.fisher_exact([[k_v, len(v) - k_v], [0, len(b)]], alternative="greater").pvalue
    return min(1.0, 2 * min(p_effect, fisher))


def test_every_number_on_a_row_is_recomputed_from_its_own_looks_records(table):
    eff, _ = table
    levels = PLAN.levels
    for variant, look in WHEN.items():
        row = eff.loc[variant]
        level = levels[look - 1]
        v, b = seen(variant, look), seen("baseline", look)
        trained = v[v < 0.45]
        assert row["look"] == look and row["alpha"] == pytest.approx(level), variant
        # both arms' seeds at that look
        assert (row["n_compared"], row["n_compared_baseline"]) == (len(v), len(b)), variant
        assert (row["n_used"], row["n_used_baseline"]) == (len(trained), len(b)), variant
        assert row["baseline_mean"] == pytest.approx(b.mean(), rel=1e-12), variant
        assert [row["baseline_ci_low"], row["baseline_ci_high"]] == pytest.approx(bounded_mean_interval(b, level))
        if len(trained):
            assert row["mean"] == pytest.approx(trained.mean(), rel=1e-12)
            assert [row["ci_low"], row["ci_high"]] == pytest.approx(bounded_mean_interval(trained, level))
        # the failure test of that look
        k_v = int((v >= 0.45).sum())
        fisher = sps.fisher_exact([[k_v, len(v) - k_v], [0, len(b)]], alternative="greater").pvalue
        assert (row["k_compared"], row["k_compared_baseline"]) == (k_v, 0)
        assert row["excess_failure_p"] == pytest.approx(fisher, rel=1e-9), variant
        # p, and Holm over the family of that look (a variant decided earlier keeps its own look's p)
        assert row["p_value"] == pytest.approx(raw_p(variant, look), rel=1e-9), variant
        family = {u: raw_p(u, min(look, WHEN[u])) for u in WHEN}
        assert row["p_adjusted"] == pytest.approx(holm(family)[variant], rel=1e-9), variant

    early = eff.loc["a=early"]   # 5 vs 5 seeds, Welch
    v, b = seen("a=early", 3), seen("baseline", 3)
    welch = sps.ttest_ind(v, b, equal_var=False)
    lo, hi = welch.confidence_interval(1 - PLAN.levels[2])
    assert early["diff"] == pytest.approx(v.mean() - b.mean(), rel=1e-12)
    allowed = bounded_mean_interval(v, PLAN.levels[2]), bounded_mean_interval(b, PLAN.levels[2])
    assert early["diff_low"] == pytest.approx(max(lo, allowed[0][0] - allowed[1][1]))
    assert early["diff_high"] == pytest.approx(min(hi, allowed[0][1] - allowed[1][0]))
    assert early["estimand"] == "difference of means"
    assert early["decision"] == "worse" and early["p_adjusted"] < PLAN.levels[2] and early["diff_low"] > 0
    assert early["rel_diff"] == pytest.approx(v.mean() / b.mean() - 1)
    # Fieller: at each end of the change's interval, mean_v - (1 + r) mean_b is exactly t_crit standard errors away
    se_v, se_b = v.var(ddof=1) / len(v), b.var(ddof=1) / len(b)
    dof = (se_v + se_b) ** 2 / (se_v ** 2 / (len(v) - 1) + se_b ** 2 / (len(b) - 1))
    crit = sps.t.ppf(1 - PLAN.levels[2] / 2, dof)
    for r in (early["rel_low"], early["rel_high"]):
        assert abs(v.mean() - (1 + r) * b.mean()) / np.sqrt(se_v + (1 + r) ** 2 * se_b) == pytest.approx(crit)
    assert early["rel_low"] < early["rel_diff"] < early["rel_high"]

    late = eff.loc["b=late"]    # 8 vs 8 seeds: the Hodges-Lehmann shift and the Mann-Whitney p
    v, b = seen("b=late", 6), seen("baseline", 6)
    assert late["diff"] == pytest.approx(np.median(np.subtract.outer(v, b)))
    assert late["estimand"] == "Hodges-Lehmann shift" and late["decision"] == "undecided"

    fail = eff.loc["h=fail"]
    assert (fail["decision"], fail["decided_by"], fail["n_compared"], fail["n_compared_baseline"]) == (
        "worse", "failure rate", 6, 6)
    assert np.isnan(fail["diff"])


def test_the_plain_table_says_the_same_in_words(table):
    """The summary's plain table: decision, effect with its interval, estimand, seeds of both arms, adjusted p and
    the level with its look, from the same row; the method text once, short, pointing at the detail."""
    eff, md = table
    early = eff.loc["a=early"]
    level = f"{(1 - PLAN.levels[2]) * 100:.4g}% (look 3)"
    line = next(x for x in md.splitlines() if x.startswith("| a=early"))
    assert f"+{early['diff']:.3g} [+{early['diff_low']:.3g}, +{early['diff_high']:.3g}]" in line
    assert "difference of means" in line and " 5 vs 5 |" in line and level in line and "worse" in line
    fisher = sps.fisher_exact([[6, 0], [0, 6]], alternative="greater").pvalue
    line = next(x for x in md.splitlines() if x.startswith("| h=fail"))
    assert f"failure rate: 6 of 6 vs 0 of 6 did not train (one-sided Fisher p {fisher:.3g})" in line
    assert "no trained seed" in line and "nan" not in line
    assert md.count("Method and every column:") == 1
    assert md.count("Decision statistic:") == 1   # the long method text, once, in the study's section
