import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablations import StudyError, expand, load_study
from ablations.cli import main
from ablations.runner import RunOptions, run_study
from ablations.store import Store, read_results
from ablations.study import parse_study
from vggcore.errors import MissingPackage
from vggcore.threads import cpu_count
from tiny_study import BROKEN, tiny_study
from json_records import json_records

STUDIES = Path(__file__).resolve().parent.parent / "ablations" / "studies"


def write(tmp_path, design="one_at_a_time", seeds="[0, 1]", epochs=1, extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study(design=design, seeds=seeds, epochs=epochs, extra=extra))
    return path


def study_dict(**changes):
    base = {"study": {"name": "s", "seeds": [0]}, "base": {"model": {"arch": "A"}},
            "factors": {"d": {"levels": {"on": {"model.dropout": 0.5}, "off": {"model.dropout": 0.0}}}}}
    for path, value in changes.items():
        node = base
        *parents, last = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return base


@pytest.mark.parametrize("changes,match", [
    ({"study/seed": [1]}, r"unknown key 'study.seed'; allowed keys in \[study\]: description, design, max_seeds, maximize"),
    ({"base/model/widht": 0.5}, r"unknown key 'base.model.widht'; allowed keys in \[base.model\]: arch, batch_norm"),
    ({"base/optim": {}}, r"unknown key 'base.optim'; allowed keys in \[base\]: data, eval, model, train"),
    ({"factors/d/level": {}}, r"unknown key 'factors.d.level'; allowed keys in \[factors.d\]: baseline, description, levels"),
    ({"factors/d/levels/off": {"model.dropuot": 0.0}}, "overrides model.dropuot, which does not exist"),
    ({"factors/d/levels/off": {"optim.lr": 0.1}}, "must be \"model.FIELD\""),
    ({"factors/d/levels/off": {"model.dropout": "none"}}, r"'factors.d.levels.off.model.dropout' must be of type float, got str"),
    ({"base/train/epochs": 2.5}, r"'base.train.epochs' must be of type int, got float"),
    ({"base/model/batch_norm": 1}, r"must be of type bool, got int"),
    ({"factors/e": {"levels": {}}}, "factor 'e' is empty"),
    ({"factors/e": {"levels": {"x": {"train.lr": 0.1}}}}, "factor 'e' has a single level"),
    ({"factors/d/baseline": "maybe"}, "'factors.d.baseline' is 'maybe', not one of its levels: on, off"),
    ({"study/design": "latin"}, "'study.design' must be one of one_at_a_time, full"),
    ({"study/metric": "accuracy"}, "'study.metric' must be one of"),
    ({"study/seeds": []}, "'study.seeds' must be a non-empty list"),
    ({"factors/e": {"levels": {"a": {"model.dropout": 0.1}, "b": {"model.dropout": 0.2}}}}, "both set model.dropout"),
])
def test_study_validation_errors(changes, match):
    with pytest.raises(StudyError, match=match):
        parse_study(study_dict(**changes))


def test_duplicate_level_names_are_reported(tmp_path):
    path = write(tmp_path, extra='')
    path.write_text(path.read_text() + 'levels.off = { "model.dropout" = 0.1 }\n')
    with pytest.raises(StudyError, match="duplicate level name"):
        load_study(path)


def test_invalid_value_in_a_level_names_the_variant(tmp_path):
    path = write(tmp_path, extra='[factors.head]\nlevels.p = { "model.head" = "paper" }\nlevels.x = { "model.head" = "max" }\n')
    with pytest.raises(StudyError, match="unknown head 'max'"):
        expand(load_study(path))


def test_one_at_a_time_and_full_expansion(tmp_path):
    extra = '[factors.schedule]\nlevels.plateau = { "train.schedule" = "plateau" }\nlevels.cosine = { "train.schedule" = "cosine" }\nlevels.step = { "train.schedule" = "step" }\n'
    oat = expand(load_study(write(tmp_path, extra=extra)))
    assert [r.variant for r in oat[::2]] == ["baseline", "dropout=off", "schedule=cosine", "schedule=step"]
    assert len(oat) == (1 + 1 + 2) * 2
    full = expand(load_study(write(tmp_path, design="full", extra=extra)))
    assert len(full) == 2 * 3 * 2
    assert {r.variant for r in full} >= {"baseline", "dropout=off,schedule=step"}
    assert {r.run_id for r in oat} <= {r.run_id for r in full}  # same run, same id, in either design


def test_run_ids_are_stable_and_seed_dependent(tmp_path):
    a = expand(load_study(write(tmp_path)))
    b = expand(load_study(write(tmp_path)))
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == len(a)
    assert a[0].config["train"]["seed"] == 0 and a[1].config["train"]["seed"] == 1


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_studies_are_valid(path):
    study = load_study(path)
    runs = expand(study)
    assert runs and len(study.seeds) >= 1
    if path.stem != "paper":
        assert all(r.config["data"]["dataset"] == "digits" for r in runs)


def test_tiny_study_end_to_end_with_a_failing_level(tmp_path):
    study = load_study(write(tmp_path, extra=BROKEN))
    store = Store(tmp_path / "out")
    start = time.perf_counter()
    counts = run_study(study, store, RunOptions(progress=False), report=lambda line: None)
    wall = time.perf_counter() - start
    assert {k: counts[k] for k in ("total", "skipped", "ran")} == {"total": 6, "skipped": 0, "ran": 6}
    records = json_records(store.results_path)
    # the runs ran one after another inside the timed span, which ran inside this test's
    assert sum(r["timing"]["seconds"] for r in records.values()) <= counts["seconds"] <= wall
    statuses = {r["variant"]: r["status"] for r in records.values()}
    assert statuses == {"baseline": "ok", "dropout=off": "ok", "data=missing": "failed"}
    failed = next(r for r in records.values() if r["status"] == "failed")
    assert "data root /nonexistent/cifar is not a directory" in failed["error"]
    ok = next(r for r in records.values() if r["status"] == "ok")
    for key in ("run_id", "study", "levels", "seed", "config", "history", "final", "timing", "provenance"):
        assert key in ok
    assert ok["provenance"]["versions"]["torch"] and "git_commit" in ok["provenance"]
    # again: nothing to do, nothing duplicated
    assert run_study(study, store, RunOptions(progress=False))["ran"] == 0
    assert len(store.results_path.read_text().splitlines()) == 6


def test_changed_study_is_refused_and_added_seeds_are_not(tmp_path):
    out = tmp_path / "out"
    run_study(load_study(write(tmp_path, seeds="[0]")), Store(out), RunOptions(progress=False))
    # more seeds: the recorded run is unchanged, the new ones are added
    counts = run_study(load_study(write(tmp_path, seeds="[0, 1]")), Store(out), RunOptions(progress=False))
    assert counts["skipped"] == 2 and counts["ran"] == 2
    with pytest.raises(ValueError, match="changed since .* use a new --out"):
        run_study(load_study(write(tmp_path, seeds="[0, 1]", epochs=2)), Store(out), RunOptions(progress=False))


def test_corrupt_line_is_reported_and_skipped_never_deleted(tmp_path, capsys):
    out = tmp_path / "out"
    study = load_study(write(tmp_path, seeds="[0]"))
    run_study(study, Store(out), RunOptions(progress=False))
    results = out / "results.jsonl"
    good = results.read_text().splitlines()
    results.write_text(good[0] + "\n{not json\n" + good[1][: len(good[1]) // 2])  # garbage + a torn last line
    parsed = read_results(results)
    assert parsed.corrupt_lines == [2, 3] and len(parsed.records) == 1
    assert "skipped 2 corrupt line(s)" in capsys.readouterr().err
    run_study(study, Store(out), RunOptions(progress=False))  # reruns the torn run, appends on a fresh line
    lines = results.read_text().splitlines()
    assert lines[:2] == [good[0], "{not json"] and len(json_records(results)) == 2


def runner_cmd(*args):
    return [sys.executable, "-m", "ablations", *args]


def test_killed_runner_resumes_with_one_record_per_run(tmp_path):
    # the smallest study with a run recorded and the next one in flight at the kill: two runs of 3 epochs (the
    # kill comes while the second run has 2 epochs to go)
    path = write(tmp_path, seeds="[0]", epochs=3)
    out = tmp_path / "out"
    proc = subprocess.Popen(runner_cmd("run", str(path), "--out", str(out), "--quiet"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300   # a bound on a loaded machine's wait, not a cost: the loop ends at the kill point
    results = out / "results.jsonl"
    # kill once a run is recorded and the next one has a checkpoint (mid-run)
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1 and len(list(out.glob("runs/*/checkpoint.pt"))) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(json_records(results))
    assert before == 1
    done = subprocess.run(runner_cmd("run", str(path), "--out", str(out), "--quiet"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = results.read_text().splitlines()
    ids = [json.loads(line)["run_id"] for line in lines]
    assert sorted(ids) == sorted({r.run_id for r in expand(load_study(path))}) and len(ids) == 2
    resumed = [json.loads(line) for line in lines[before:]]
    assert any(r["resumed_from_epoch"] > 0 for r in resumed)  # the run in flight went on from its checkpoint


def test_ctrl_c_stops_cleanly(tmp_path):
    # Ctrl-C once the first of six one-epoch runs is recorded: mid-study
    path = write(tmp_path, seeds="[0, 1, 2]", epochs=1)
    out = tmp_path / "out"
    # A shell that starts CI in the background hands its children an ignored SIGINT; restore the default so
    # the runner sees Ctrl-C as a user at a terminal would.
    proc = subprocess.Popen(runner_cmd("run", str(path), "--out", str(out), "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "results.jsonl").exists() and (out / "results.jsonl").read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert read_results(out / "results.jsonl").corrupt_lines == []


def test_cli_list_status_dry_run(tmp_path, capsys):
    path = write(tmp_path, seeds="[0]")
    assert main(["list", str(path)]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert "2 to run" in capsys.readouterr().out
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert main(["status", str(tmp_path / "o")]) == 0
    assert "2 runs: 2 done, 0 failed, 0 diverged, 0 remaining" in capsys.readouterr().out


@pytest.mark.parametrize("argv,match", [
    (["run", "missing.toml", "--out", "x"], "study file missing.toml does not exist"),
    (["status", "/nonexistent/dir"], "/nonexistent/dir is not a study folder: no such folder"),
])
def test_cli_errors(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_unwritable_out_is_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", str(write(tmp_path)), "--out", str(blocker / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot create study folder" in err and len(err.strip().splitlines()) == 1


def test_bad_key_in_study_file_cli(tmp_path, capsys):
    path = write(tmp_path)
    path.write_text(path.read_text().replace("seeds", "seedz"))
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key 'study.seedz'" in capsys.readouterr().err


def test_missing_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingPackage, match=r"pip install 'vggbench\[ray\]'"):
        run_study(load_study(write(tmp_path)), Store(tmp_path / "o"), RunOptions(executor="ray", progress=False))


@pytest.mark.ray
def test_ray_executor_gives_the_same_records_as_local(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'vggbench[ray]')")
    study = load_study(write(tmp_path, seeds="[0]", extra=BROKEN))   # one seed: a run of each kind
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    run_study(study, local, RunOptions(progress=False))
    run_study(study, remote, RunOptions(executor="ray", progress=False))
    a, b = json_records(local.results_path), json_records(remote.results_path)
    assert set(a) == set(b)
    for rid in a:
        assert a[rid]["status"] == b[rid]["status"] and b[rid]["executor"] == "ray"
        if a[rid]["status"] == "ok":  # same seed, same device: the same numbers
            assert a[rid]["final"]["test_loss"] == pytest.approx(b[rid]["final"]["test_loss"], rel=1e-5)


def test_process_workers_give_the_same_records(tmp_path):
    study = load_study(write(tmp_path, seeds="[0]"))   # two runs: one for each worker
    one, two = Store(tmp_path / "one"), Store(tmp_path / "two")
    run_study(study, one, RunOptions(progress=False))
    run_study(study, two, RunOptions(workers=2, progress=False))
    a, b = json_records(one.results_path), json_records(two.results_path)
    share = max(1, cpu_count() // 2)  # each of the two workers gets its half of the cores (1 on 2 cores)
    assert set(a) == set(b) and all(b[r]["timing"]["threads"] == share for r in b)


@pytest.mark.slow
def test_added_level_runs_alone_and_other_or_corrupt_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    study = load_study(write(tmp_path, seeds="[0]"))
    assert run_study(study, Store(out), RunOptions(progress=False))["ran"] == 2
    lines = (out / "results.jsonl").read_text()
    # a new level adds its runs; the recorded ones are kept, not rerun
    grown = write(tmp_path, seeds="[0]", extra='levels.low = { "model.dropout" = 0.25 }\n')
    counts = run_study(load_study(grown), Store(out), RunOptions(progress=False))
    assert (counts["skipped"], counts["ran"]) == (2, 1)
    assert (out / "results.jsonl").read_text().startswith(lines)
    assert len(json.loads((out / "study.json").read_text())["run_ids"]) == 3
    lines = (out / "results.jsonl").read_text()
    capsys.readouterr()
    # the same folder given to another study: refused before anything runs
    other = tmp_path / "other.toml"
    other.write_text(grown.read_text().replace('name = "tiny"', 'name = "other"'))
    assert main(["run", str(other), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds study 'tiny', not 'other'" in err.strip().splitlines()[-1] and "Traceback" not in err
    # a study.json that cannot be read says so and is left for the user to inspect
    for garbage in ("{not json", "[]", '"tiny"'):
        (out / "study.json").write_text(garbage)
        assert main(["run", str(grown), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "study.json is corrupt" in err.strip().splitlines()[-1] and "Traceback" not in err
        assert (out / "study.json").read_text() == garbage
    assert (out / "results.jsonl").read_text() == lines


def write_tiny_cifar(root):
    """The five CIFAR-10 training batches and the test batch, 8 random images each."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), b"labels": list(range(8))}
        (folder / name).write_bytes(pickle.dumps(batch))


@pytest.mark.slow
def test_retry_failed_reruns_the_failed_run_only(tmp_path):
    cifar = tmp_path / "cifar"
    extra = BROKEN.replace("/nonexistent/cifar", str(cifar))
    study = load_study(write(tmp_path, seeds="[0]", extra=extra))
    store = Store(tmp_path / "out")
    run_study(study, store, RunOptions(progress=False))
    first = json_records(store.results_path)
    failed = [rid for rid, r in first.items() if r["status"] == "failed"]
    assert len(first) == 3 and len(failed) == 1
    assert run_study(study, store, RunOptions(progress=False))["ran"] == 0  # a plain rerun keeps the failure
    write_tiny_cifar(cifar)  # the user fixes the cause
    counts = run_study(study, store, RunOptions(retry_failed=True, progress=False))
    assert (counts["skipped"], counts["ran"]) == (2, 1)
    lines = [json.loads(line) for line in store.results_path.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["run_id"] == failed[0] and lines[-1]["status"] == "ok"
    records = json_records(store.results_path)
    assert {rid: r["status"] for rid, r in records.items()} == {rid: "ok" for rid in first}
    for rid in first:  # the runs that had finished were not touched
        if rid not in failed:
            assert records[rid] == first[rid]


def test_run_ids_survive_fields_added_later():
    """Folders recorded before `sync_bn` and `nproc` existed must keep their run ids, or every older study folder
    would be refused as changed. The ids are those the code before those fields gave for the shipped study."""
    runs = expand(load_study(STUDIES / "dropout.toml"))
    assert [r.run_id for r in runs][:3] == ["5d86cd81f0ff", "2353bc60ab41", "d7065e37613a"]
    assert runs[0].config["train"]["nproc"] == 1 and runs[0].config["train"]["sync_bn"] is False
