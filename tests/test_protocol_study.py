"""The test protocol as a study factor: scored from the same weights, trained once per (variant, seed)."""

import json
import re

import pytest

import vggcore.config
import vggcore.data.batches
import vggcore.evaluate.batchnorm
import vggcore.evaluate.score
import vggcore.train.epoch
import vggcore.train.loop
from ablations import StudyError, expand, load_study
from ablations.records import RunRecord
from ablations.runner import RunOptions, by_training, phased, run_study
from ablations.store import Store
from ablations.study import parse_study
from reports.cli import main as reports_main
from tiny_study import BROKEN, tiny_study
from json_records import json_records

# The trained level on a small synthetic set (90 training images: one step of one epoch) rather than the digits:
# these tests are about which runs train and what their records hold, not about the errors.
SMALL = BROKEN.replace('levels.digits = { "data.dataset" = "digits" }',
                       'levels.small = { "data.dataset" = "synthetic", "data.synthetic_samples" = 128 }')

TEST = """
[factors.test]
levels.own = {}
levels.dense = { "eval.protocol" = "dense" }
levels.crops = { "eval.protocol" = "multicrop", "eval.crops" = 2, "eval.flip" = false }
"""
MULTI = 'levels.multiscale = { "eval.protocol" = "centre", "eval.scales" = [224, 256, 288] }\n'


def study_text(extra=""):
    # dropout drops out: data (a small synthetic set or a missing CIFAR folder) x test, a full design
    assert SMALL != BROKEN
    text = tiny_study(design="full", extra=SMALL + TEST + extra)
    return text.replace('[factors.dropout]\nlevels.on = { "model.dropout" = 0.5 }\n'
                        'levels.off = { "model.dropout" = 0.0 }\n', "")


@pytest.fixture(scope="module")
def counted():
    """Count the epochs trained (Batches.train: one call per epoch) and the calls of train()."""
    calls = {"epochs": 0, "train": 0}
    real_epochs, real_train = vggcore.data.batches.Batches.train, vggcore.train.loop.train

    def epochs(self, *args, **kwargs):
        calls["epochs"] += 1
        return real_epochs(self, *args, **kwargs)

    def train(*args, **kwargs):
        calls["train"] += 1
        return real_train(*args, **kwargs)

    vggcore.data.batches.Batches.train, vggcore.train.loop.train = epochs, train
    yield calls
    vggcore.data.batches.Batches.train, vggcore.train.loop.train = real_epochs, real_train


@pytest.fixture(scope="module")
def folder(tmp_path_factory, counted):
    root = tmp_path_factory.mktemp("protocols")
    path = root / "study.toml"
    path.write_text(study_text())
    store = Store(root / "out")
    counts = run_study(load_study(path), store, RunOptions(progress=False), report=lambda line: None)
    return root, path, store, counts


def test_a_protocol_factor_trains_each_variant_and_seed_once(folder, counted):
    root, path, store, counts = folder
    assert (counts["total"], counts["ran"]) == (6, 6)
    assert counted["epochs"] == 1          # one training of one epoch: the baseline
    assert counted["train"] == 4           # baseline, the failing CIFAR run, and the baseline's two protocols (which
    #                                        find their training finished); the CIFAR protocols are not tried again
    assert [p.name for p in (store.root / "runs").iterdir()] and len(list((store.root / "runs").iterdir())) <= 2
    records = {r["variant"]: r for r in json_records(store.results_path).values()}
    base, dense, crops = records["baseline"], records["test=dense"], records["test=crops"]
    assert "evaluation" not in base and "train_id" not in base and "eval" not in base["config"]
    for r in (dense, crops):
        assert r["status"] == "ok" and r["train_id"] == base["run_id"] != r["run_id"]
        assert r["final"]["test_top1_error"] == r["evaluation"]["top1_error"]
        assert r["evaluation"]["training_test"]["test_top1_error"] == base["final"]["test_top1_error"]
        assert r["history"] == base["history"]
    assert (dense["evaluation"]["protocol"], dense["evaluation"]["scales"]) == ("dense", [32])
    assert (crops["evaluation"]["scales"], crops["evaluation"]["views"]) == ([32, 37, 42], 12)
    failed = [r for v, r in records.items() if v.startswith("data=missing")]
    assert len(failed) == 3 and all(r["status"] == "failed" for r in failed)
    followers = [r for r in failed if "test=" in r["variant"]]
    assert all(r["error"].startswith("its training failed (the run of data=missing seed 0): ") for r in followers)
    assert all("data root /nonexistent/cifar is not a directory" in r["error"] for r in failed)


def test_a_new_protocol_level_scores_the_finished_weights_only(folder, counted):
    root, path, store, _ = folder
    before = dict(counted)
    assert run_study(load_study(path), store, RunOptions(progress=False), report=lambda line: None)["ran"] == 0
    path.write_text(study_text(MULTI))
    counts = run_study(load_study(path), store, RunOptions(progress=False), report=lambda line: None)
    assert counts["ran"] == 2 and counted["epochs"] == before["epochs"]   # baseline scored, CIFAR tried (and fails)
    records = {r["variant"]: r for r in json_records(store.results_path).values()}
    assert records["test=multiscale"]["evaluation"]["scales"] == [32, 37, 41]   # [224, 256, 288] at 32 px


def test_run_ids_stay_those_of_the_study_without_the_factor(tmp_path):
    """A level without an eval section is the run it always was: same id, same folder."""
    plain = {r.variant: r.run_id for r in expand(parse_study(_toml(tiny_study(seeds="[0, 1]"))))}
    with_test = expand(parse_study(_toml(tiny_study(seeds="[0, 1]", extra=TEST))))
    ids = {r.run_id for r in with_test}
    assert set(plain.values()) <= ids
    for r in with_test:
        base = next(b for b in with_test if b.variant == "baseline" and b.seed == r.seed)
        assert r.train_id == (base.run_id if r.variant.startswith("test=") else r.run_id)
    assert len(ids) == len(with_test) == 2 * 4


def _toml(text):
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize("level,match", [
    ('{ "eval.protocol" = "tencrop" }', r"'factors.bad.levels.x.eval.protocol' = 'tencrop': unknown test protocol"),
    ('{ "eval.crops" = 0, "eval.protocol" = "multicrop" }', r"'factors.bad.levels.x.eval.crops' = 0: crops must be"),
    ('{ "eval.scales" = "double" }', r"'factors.bad.levels.x.eval.scales' = 'double'"),
    ('{ "eval.scales" = [200] }', r"variant bad=x \(factors.bad.levels.x sets eval.scales = \[200\]\): test scale 200 "
                                  r"\(given for 224 px training\) is 29 px"),
    ('{ "eval.protocol" = "dense", "eval.scales" = [32, 40], "eval.scales_for" = 32 }',
     r"test scale 40 cannot be taken by dense evaluation"),
    ('{ "eval.protocl" = "dense" }', r"overrides eval.protocl, which does not exist; eval fields: protocol, scales"),
    ('{ "eval.flip" = 1 }', r"'factors.bad.levels.x.eval.flip' must be of type bool \| None, got int"),
])
def test_a_bad_eval_level_names_the_key_and_what_is_allowed(level, match):
    text = tiny_study(extra=f"[factors.bad]\nlevels.ok = {{}}\nlevels.x = {level}\n")
    with pytest.raises(StudyError, match=match):
        expand(parse_study(_toml(text)))


def test_runs_sharing_a_training_wait_for_its_first_run():
    runs = expand(parse_study(_toml(tiny_study(seeds="[0, 1]", extra=TEST))))
    first, rest = by_training(runs)
    assert [r.variant for r in first] == ["baseline", "baseline", "dropout=off", "dropout=off"]
    assert sorted(r.variant for r in rest) == ["test=crops", "test=crops", "test=dense", "test=dense"]
    started = []

    def start(batch):
        started.append([r.variant for r in batch])
        for r in batch:  # the seed-1 baseline fails: its protocol runs are recorded failed, never started
            if r.variant == "baseline" and r.seed == 1:
                yield RunRecord.failed(r, RuntimeError("boom"), 0.0, 1)
            else:
                yield RunRecord.finished(r, {"status": "ok", "history": [], "final": {}, "provenance": {}}, 0.0, 1)

    records = list(phased(runs, start))
    assert len(started) == 2 and len(started[0]) == 4 and sorted(started[1]) == ["test=crops", "test=dense"]
    failed = [r for r in records if r.status == "failed"]
    assert sorted(r.variant for r in failed) == ["baseline", "test=crops", "test=dense"]
    assert all("boom" in r.error for r in failed)
    # the driver makes the first phase's executor before it writes anything (a Ray cluster joined and probed) and
    # hands it over: phased runs it first and starts only the second phase itself
    class Made(list):   # the first phase's records, from an executor made beforehand
        closed = False

        def close(self):
            self.closed = True

    made = Made(start(first))
    started.clear()
    again = list(phased(runs, start, made))
    assert [r.variant for r in again] == [r.variant for r in records]
    assert [sorted(batch) for batch in started] == [["test=crops", "test=dense"]] and made.closed


def test_the_report_shows_the_paper_layout_and_the_paired_comparison(folder, tmp_path):
    root, path, store, _ = folder
    out = tmp_path / "report"
    assert reports_main(["build", "--ablations", str(store.root), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Test protocols" in md
    for table in ("Table 3 layout", "Table 5 layout", "paired by seed"):
        assert table in md
    # the headers of reports.readable, not the machine names the CSVs keep
    for header in ("scored by", "test scales Q", "views per image", "top-1 error", "seeds paired",
                   "difference vs reference", "95% interval of the difference"):
        assert re.search(rf"\|\s+{re.escape(header)}\s+\|", md), header
    assert "n_pairs" not in md and "top1 error" not in md
    paired = (out / "tables" / "protocols_paired_tiny.csv").read_text()
    assert "test=dense" in paired and "baseline" in paired
    assert json.loads((store.root / "study.json").read_text())["study"] == "tiny"
