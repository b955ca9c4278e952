"""`python -m vggcore evaluate RUN_DIR` and `train --eval`: a run folder scored under the paper's protocols."""

import json
import shutil

import pytest

from vggcore.cli.main import main
from vggcore.evaluate.runs import EVALUATIONS, entry_key, record_evaluations
from vggcore.threads import torch_threads

# The synthetic set (512 random images: 358 to train on, 77 to test): these tests are about the command and the
# record, and one epoch of it costs a third of the digits'.
TRAIN = ["train", "--arch", "A", "--batch-norm", "--width", "0.125", "--epochs", "1", "--batch-size", "128",
         "--augment", "none", "--dataset", "synthetic", "--quiet"]
TEST_IMAGES = 77


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A width-0.125 net on 77 images: a second thread only adds contention on a shared 2-core machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """One tiny run trained with two --eval protocols, and what it printed."""
    import io
    from contextlib import redirect_stdout

    out = tmp_path_factory.mktemp("evaluate") / "run"
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main([*TRAIN, "--out", str(out), "--eval", "dense", "--eval", "multicrop:32,42:noflip:crops=2"]) == 0
    return out, printed.getvalue()


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture
def copy(run, tmp_path):
    return shutil.copytree(run[0], tmp_path / "run")


def test_train_eval_records_one_entry_per_protocol(run):
    folder, printed = run
    record = metrics(folder)
    entries = record[EVALUATIONS]
    assert [(e["protocol"], e["scales"], e["flip"], e["crops"], e["views"]) for e in entries] == [
        ("dense", [32], True, None, 2), ("multicrop", [32, 42], False, 2, 8)]
    for e in entries:
        assert e["split"] == "test" and e["images"] == TEST_IMAGES and e["checkpoint_epoch"] == 1 and e["run_status"] == "ok"
        assert 0 <= e["top5_error"] <= e["top1_error"] <= 1 and e["provenance"]["versions"]["torch"]
    assert record["status"] == "ok" and set(record["final"]) >= {"test_top1_error", "test_top5_error"}
    lines = printed.strip().splitlines()
    assert lines[0].startswith("A_bn on synthetic: test top-1 error")
    assert f"dense at Q = 32, flipped too (2 views per image, {TEST_IMAGES} test images): top-1 error" in lines[1]
    assert "multicrop at Q = 32, 42, 2x2 crops (8 views per image" in lines[2]


def test_centre_at_the_training_scale_is_the_training_score(run, copy, capsys):
    assert main(["evaluate", str(copy), "--protocol", "centre"]) == 0
    record = metrics(copy)
    entry = record[EVALUATIONS][-1]
    assert (entry["protocol"], entry["scales"], entry["flip"]) == ("centre", [37], False)
    assert entry["top1_error"] == record["final"]["test_top1_error"]
    assert entry["top5_error"] == record["final"]["test_top5_error"]
    assert entry["loss"] == pytest.approx(record["final"]["test_loss"], rel=1e-5)
    out = capsys.readouterr().out
    assert f"{copy}: centre at Q = 37 (1 view per image, {TEST_IMAGES} test images)" in out and "added to" in out


def test_evaluate_twice_is_idempotent_and_leaves_the_training_results(copy, capsys):
    before = metrics(copy)
    argv = ["evaluate", str(copy), "--protocol", "dense", "--scales", "32,64", "--flip"]
    assert main(argv) == 0
    first = metrics(copy)
    assert main(argv) == 0
    second = metrics(copy)
    assert "replaced its entry in" in capsys.readouterr().out
    assert len(first[EVALUATIONS]) == len(before[EVALUATIONS]) + 1 == len(second[EVALUATIONS])
    strip = lambda e: {k: v for k, v in e.items() if k not in ("seconds", "evaluated", "provenance")}  # noqa: E731
    assert [strip(e) for e in first[EVALUATIONS]] == [strip(e) for e in second[EVALUATIONS]]
    assert {k: v for k, v in second.items() if k != EVALUATIONS} == {k: v for k, v in before.items()
                                                                      if k != EVALUATIONS}
    # the same protocol asked another way (train --eval dense's defaults spelled out) is the same entry
    assert main(["evaluate", str(copy), "--protocol", "dense", "--scales", "single", "--flip"]) == 0
    assert sum(entry_key(e)[0] == "dense" for e in metrics(copy)[EVALUATIONS]) == 2


def test_record_evaluations_replaces_by_key_only(copy):
    entry = {"protocol": "centre", "scales": [32, 37], "flip": True, "crops": None, "top1_error": 0.5}
    assert record_evaluations(copy, [entry]) == ["added"]
    assert record_evaluations(copy, [{**entry, "top1_error": 0.25}, {**entry, "flip": False}]) == ["replaced", "added"]
    kept = [e for e in metrics(copy)[EVALUATIONS] if e["protocol"] == "centre"]
    assert [(e["flip"], e["top1_error"]) for e in kept] == [(True, 0.25), (False, 0.5)]


def test_an_interrupted_run_is_scored_from_its_checkpoint(copy, capsys):
    record = metrics(copy)
    (copy / "metrics.json").write_text(json.dumps({**record, "status": "running", "final": None}))
    assert main(["evaluate", str(copy), "--protocol", "centre"]) == 0
    assert "note: the run's status is running: this scored its checkpoint after epoch 1" in capsys.readouterr().out
    assert metrics(copy)[EVALUATIONS][-1]["run_status"] == "running"


@pytest.mark.parametrize("argv,message", [
    (["--protocol", "centre", "--scales", "24"], "error: test scale 24 in --scales: a test scale is a whole number "
                                                 "of pixels, at least 32"),
    (["--protocol", "dense", "--scales", "32,40"], "error: test scale 40 cannot be taken by dense evaluation: it "
                                                   "takes multiples of 32 from 32 up (32, 64, 96, ...)"),
    (["--protocol", "multicrop", "--crops", "0"], "error: --crops must be a positive integer (the side of the G x G "
                                                  "grid of crops per scale), got '0'"),
    (["--protocol", "tencrop"], "error: unknown test protocol 'tencrop'; choose one of centre, dense, multicrop, "
                                "dense+multicrop"),
    (["--protocol", "centre", "--crops", "3"], "error: crops 3 applies to multicrop and dense+multicrop only"),
    (["--scales", "32;37"], "error: --scales '32;37': give single or multi, or test scales in pixels separated by "
                            "commas"),
])
def test_bad_options_are_one_line_naming_the_value(run, argv, message, capsys):
    before = (run[0] / "metrics.json").read_text()
    assert main(["evaluate", str(run[0]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.splitlines()) == 1, err
    assert (run[0] / "metrics.json").read_text() == before


def test_a_folder_without_a_checkpoint_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.json").write_text("{}")
    for folder, message in ((empty, f"error: run folder {empty} has no checkpoint.pt, so there are no weights"),
                            (tmp_path / "nothing", f"error: run folder {tmp_path / 'nothing'} does not exist")):
        assert main(["evaluate", str(folder), "--protocol", "dense"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.splitlines()) == 1
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("spec,message", [
    ("dense:40", "error: --eval dense:40: test scale 40 cannot be taken by dense evaluation"),
    ("multicrop:crops=0", "error: --eval multicrop:crops=0: --crops must be a positive integer"),
    ("dense:flip:flip", "error: --eval dense:flip:flip: cannot read 'flip'; give PROTOCOL[:SCALES]"),
    ("tencrop", "error: --eval tencrop: unknown test protocol 'tencrop'"),
])
def test_a_bad_eval_spec_is_refused_before_any_training(tmp_path, spec, message, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--eval", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_eval_needs_out(capsys):
    assert main([*TRAIN, "--eval", "dense"]) == 2
    assert "error: --eval needs --out" in capsys.readouterr().err
