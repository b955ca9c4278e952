"""`python -m ablations run --until-decided`: plan checks, and a tiny real study killed and rerun mid-way."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ablations.adaptive import PLAN, make_plan
from ablations.cli import main
from ablations.study import StudyError, parse_study
from json_records import json_records

# Three arms, cheap and deterministic: untrained nets (paper init, lr 1e-9) on a small synthetic set, so the test
# loss sits at ln(classes). `classes=c100` (ln 100 against ln 10) is a large effect; `eval=b250` changes only the
# evaluation batch size, no effect at all. min_effect 0 allows no `equivalent`, so b250 must receive seeds up to
# max_seeds. No seed here trains, so the study compares every finished seed (statistic "welch"): the default,
# "trained", would set them all aside.
STUDY = """
[study]
name = "ud"
design = "{design}"
seeds = [0, 1, 2]
metric = "test_loss"
min_effect = 0.0
max_seeds = 4
statistic = "welch"

[base.model]
arch = "A"
batch_norm = true
width = 0.125
image_size = 32
init = "paper"

[base.data]
dataset = "synthetic"
synthetic_samples = 128
augment = "none"

[base.train]
epochs = 1
batch_size = 32
lr = 1e-9
schedule = "constant"

[factors.classes]
levels.c10 = {{ "data.synthetic_classes" = 10 }}
levels.c100 = {{ "data.synthetic_classes" = 100 }}

[factors.eval]
levels.b500 = {{ "train.eval_batch_size" = 500 }}
levels.b250 = {{ "train.eval_batch_size" = 250 }}
"""


def write(tmp_path, design="one_at_a_time"):
    path = tmp_path / "ud.toml"
    path.write_text(STUDY.format(design=design))
    return path


def study_dict(**head):
    return {"study": {"name": "s", "seeds": [0, 1, 2], **head}, "base": {"model": {"arch": "A"}},
            "factors": {"d": {"levels": {"on": {"model.dropout": 0.5}, "off": {"model.dropout": 0.0}}}}}


@pytest.mark.parametrize("head,match", [
    ({"min_effect": -0.1}, r"'study.min_effect' must be a non-negative number in metric units, got -0.1"),
    ({"min_effect": "small"}, r"'study.min_effect' must be a non-negative number"),
    ({"max_seeds": 2}, r"'study.max_seeds' must be an integer at least the 3 listed seeds, got 2"),
    ({"max_seeds": 5.5}, r"'study.max_seeds' must be an integer"),
])
def test_study_fields_are_validated(head, match):
    with pytest.raises(StudyError, match=match):
        parse_study(study_dict(**head))


def test_plan_defaults_and_overrides():
    from ablations.stats.sequential import look_levels

    study = parse_study(study_dict(min_effect=0.02, max_seeds=6))
    plan = make_plan(study)
    assert (plan.min_effect, plan.max_seeds, plan.looks) == (0.02, 6, 4)
    # a new plan spends alpha O'Brien-Fleming-like, with the default statistic, and keeps decisions
    assert (plan.rule, plan.statistic, plan.freeze) == ("obf", "trained", True)
    assert plan.levels == pytest.approx(tuple(look_levels(3, 6, rule="obf")))
    assert plan.levels[0] < 0.05 / 4 < plan.levels[-1] < 0.05
    assert make_plan(study, min_effect=0.5, max_seeds=3).looks == 1
    assert make_plan(parse_study(study_dict())).max_seeds == 10
    # the even split of older folders: alpha / looks at every look
    assert type(plan)(0.02, 6, 3, rule="even").levels == pytest.approx((0.05 / 4,) * 4)


def test_a_min_effect_beyond_the_metric_range_is_refused_before_any_run(tmp_path, capsys):
    from tiny_study import tiny_study

    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study(seeds="[0, 1]"))   # ranked by test_top1_error, a fraction in [0, 1]
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--until-decided", "--min-effect", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "min_effect 1.5 is larger than test_top1_error's whole range [0, 1]; give at most 1" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    with pytest.raises(StudyError, match=r"'study.min_effect' 2 is larger than test_top1_error's whole range "
                                         r"\[0, 1\]; give at most 1"):
        parse_study(study_dict(min_effect=2.0, metric="test_top1_error"))
    parse_study(study_dict(min_effect=2.0, metric="test_loss"))   # unbounded: any positive margin
    from ablations.stats.errors import StatsInputError

    with pytest.raises(StatsInputError, match=r"min_effect 1.5 is larger than test_top1_error's whole range"):
        make_plan(parse_study(study_dict()), min_effect=1.5)


@pytest.mark.parametrize("extra,match", [
    (["--min-effect", "-1"], "--min-effect must be a non-negative number in metric units, got '-1'"),
    (["--min-effect", "abc"], "--min-effect must be a non-negative number in metric units, got 'abc'"),
    (["--max-seeds", "2"], "--max-seeds 2 is below the study's 3 seeds; give at least 3"),
    (["--max-seeds", "x"], "--max-seeds must be a positive integer, got 'x'"),
])
def test_bad_until_decided_flags_are_one_line_errors(tmp_path, capsys, extra, match):
    argv = ["run", str(write(tmp_path)), "--out", str(tmp_path / "o"), "--until-decided", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_full_design_is_refused_with_the_reason(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, "full")), "--out", str(tmp_path / "o"), "--until-decided"]) == 2
    err = capsys.readouterr().err
    assert "--until-decided needs a one_at_a_time design" in err and "interactions" in err


def test_min_effect_without_until_decided_is_an_error(tmp_path, capsys):
    assert main(["run", str(write(tmp_path)), "--out", str(tmp_path / "o"), "--min-effect", "0.1"]) == 2
    assert "only apply with --until-decided" in capsys.readouterr().err


def _cmd(*args):
    return [sys.executable, "-m", "ablations", *args]


@pytest.mark.slow
def test_until_decided_on_a_tiny_study_killed_and_rerun(tmp_path, capsys):
    path = write(tmp_path)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    argv = ["run", str(path), "--out", str(out), "--until-decided", "--quiet"]
    proc = subprocess.Popen(_cmd(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill inside round 1: the 9 initial runs and the round's first run recorded, its second run started
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(json_records(results, warn=False)) >= 10:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json_records(results, warn=False)
    assert len(before) == 10, "the kill was meant to land inside round 1"

    done = subprocess.run(_cmd(*argv), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = results.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    ids = [r["run_id"] for r in records]
    assert len(ids) == len(set(ids)) == 11  # 9 initial + baseline and eval=b250 at seed 3: none lost, none twice
    assert all(before[r["run_id"]] == r for r in records[:10])  # nothing recorded was touched
    seeds = {}
    for r in records:
        seeds.setdefault(r["variant"], []).append(r["seed"])
    assert {v: sorted(s) for v, s in seeds.items()} == {
        "baseline": [0, 1, 2, 3], "classes=c100": [0, 1, 2], "eval=b250": [0, 1, 2, 3]}
    # the last look: the large effect was decided at the initial seeds, the null one reached max_seeds
    assert "classes=c100: worse, n=3" in done.stderr and "eval=b250: undecided, n=4" in done.stderr
    assert "stopped at max_seeds 4" in done.stderr
    assert json.loads((out / PLAN).read_text())["looks"] == 2

    # a plain rerun and `status` understand the added seeds; the report uses the plan's per-look level
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "11 runs (2 from added seeds): 11 done" in text
    from reports.cli import main as reports_main

    assert reports_main(["build", "--ablations", str(out), "--out", str(tmp_path / "rep")]) == 0
    effects = (tmp_path / "rep" / "tables" / "effects.csv").read_text().splitlines()
    header = effects[0].split(",")
    for col in ("study", "variant", "n_ok", "mean", "diff", "diff_low", "diff_high", "p_value", "p_adjusted",
                "decision"):
        assert col in header
    rows = {line.split(",")[1]: dict(zip(header, line.split(","))) for line in effects[1:]}
    # decided at look 1 of 2, so analysed at that look's O'Brien-Fleming-like level, as the run decided it
    from ablations.stats.sequential import look_levels

    c100 = rows["classes=c100"]
    assert c100["decision"] == "worse" and c100["look"] == "1"
    assert float(c100["alpha"]) == pytest.approx(look_levels(3, 4, rule="obf")[0])


def test_status_shows_seeds_needed_per_variant_from_its_own_spread(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    values = {"baseline": [0.10, 0.12, 0.14], "d=off": [0.11, 0.13, 0.15]}
    lines, ids = [], []
    for variant, xs in values.items():
        for seed, x in enumerate(xs):
            ids.append(f"{variant}{seed}")
            lines.append({"run_id": ids[-1], "study": "s", "variant": variant, "seed": seed, "status": "ok",
                          "final": {"test_top1_error": x}})
    lines.append({**lines[-1], "run_id": "added", "seed": 3})  # a seed added by --until-decided
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (out / "study.json").write_text(json.dumps({"study": "s", "metric": "test_top1_error", "maximize": False,
                                                "min_effect": 0.02, "run_ids": ids}))
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "7 runs (1 from added seeds): 7 done" in text
    # d=off's own sd (4 seeds, the added one counts) against the baseline's, one comparison
    from ablations.stats.planning import seeds_needed

    sd_v, sd_b = np.std([0.11, 0.13, 0.15, 0.15], ddof=1), np.std([0.10, 0.12, 0.14], ddof=1)
    need = seeds_needed(0.02, sd_v, sd_b)
    assert f"d=off (undecided, n=4): {need:.0f} seeds per arm to detect 0.02: sd {sd_v:.2g} over 4 trained" in text
    assert "expensive to decide: d=off" in text
