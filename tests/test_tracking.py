"""A study's runs in MLflow (a real SQLite store) and TensorBoard (event files read back through TensorBoard's own
EventAccumulator): export, export again, a study that grows, live tracking, and the bad inputs."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ablations.cli import main
from ablations.integrations.export import export
from ablations.runner import RunOptions, run_study
from ablations.store import Store
from ablations.integrations.tracking import Target, TrackingError, parse_target
from ablations import StudyError, expand, load_study
from vggcore.errors import MissingPackage
from tracked_study import (expected_metrics, expected_params, fresh_db, make_folder, mlflow_runs, pristine_mlflow_db,
                           record_of, records, same, tensorboard_runs, write_study)


def installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False


# The tests that write real stores need both extras; the study-file and missing-extra tests run without them.
EXTRAS = pytest.mark.skipif(
    not all(installed(name) for name in ("mlflow", "tensorboard")),
    reason="MLflow or TensorBoard is not installed (pip install 'vggbench[mlflow,tensorboard]')")


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    return pristine_mlflow_db(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def db(pristine, tmp_path):
    return fresh_db(pristine, tmp_path)


def check_mlflow(uri: str, store: Store) -> None:
    """The MLflow store holds each record of the folder once, with its name, tags, params and every metric."""
    recs = records(store)
    runs = mlflow_runs(uri)
    assert sorted(r["tags"]["run_id"] for r in runs) == sorted(recs)  # each run once, none missing
    for run in runs:
        rec = recs[run["tags"]["run_id"]]
        assert run["name"] == f"tiny/{rec['variant']}/seed{rec['seed']}"
        assert run["status"] == ("FAILED" if rec["status"] == "failed" else "FINISHED")
        tags = run["tags"]
        assert (tags["status"], tags["seed"], tags["variant"]) == (rec["status"], str(rec["seed"]), rec["variant"])
        assert tags["git_commit"] == str(rec["provenance"]["git_commit"])
        assert tags["machine"] == rec["provenance"]["machine"]["hostname"]
        assert {k: v for k, v in tags.items() if k.startswith("factor.")} == \
            {f"factor.{k}": v for k, v in rec["levels"].items()}
        if rec["status"] != "ok":
            assert tags["error"] == rec["error"]
        assert run["params"] == expected_params(rec)
        want = expected_metrics(rec)
        assert set(run["metrics"]) == set(want), rec["variant"]
        for key, points in want.items():
            got = run["metrics"][key]
            assert [s for s, _ in got] == [s for s, _ in points] and all(same(a, b) for (_, a), (_, b) in
                                                                         zip(got, points)), key


def check_tensorboard(logdir: Path, store: Store) -> None:
    recs = records(store)
    runs = tensorboard_runs(logdir)
    experiment = runs.pop("tiny")["experiment"]
    assert [m.name.tag for m in experiment.metric_infos] == ["final/test_top1_error"]
    factors = {k for r in recs.values() for k in r["levels"]}
    assert {h.name for h in experiment.hparam_infos} == factors | {"seed", "status"}
    assert sorted(runs) == sorted(f"tiny/{r['variant']}/seed{r['seed']}-{rid}" for rid, r in recs.items())
    for name, run in runs.items():
        rec = recs[name.rsplit("-", 1)[1]]
        assert run["hparams"] == {**rec["levels"], "seed": float(rec["seed"]), "status": rec["status"]}
        assert run["end_status"] == (2 if rec["status"] == "failed" else 1)  # api_pb2 STATUS_FAILURE / SUCCESS
        want = expected_metrics(rec)
        assert set(run["scalars"]) == set(want)
        for key, points in want.items():
            got = run["scalars"][key]
            assert [s for s, _ in got] == [s for s, _ in points]
            assert all(same(a, b) for (_, a), (_, b) in zip(got, points)), key  # float32 in event files
        assert ("error" in run["tensors"]) == (rec["status"] != "ok") and "config" in run["tensors"]


@EXTRAS
def test_export_reads_back_equal_adds_nothing_twice_and_only_new_seeds(tmp_path, db, capsys):
    store = make_folder(tmp_path, seeds="[0]")
    logdir = tmp_path / "tb"
    assert main(["export", str(store.root), "--mlflow", db, "--tensorboard", str(logdir)]) == 0
    out = capsys.readouterr().out
    assert out.count("3 run(s) of study tiny: 3 new, 0 updated, 0 already there") == 2
    check_mlflow(db, store)
    check_tensorboard(logdir, store)
    assert {r["status"] for r in records(store).values()} == {"ok", "failed"}
    # again: nothing is added
    assert main(["export", str(store.root), "--mlflow", db, "--tensorboard", str(logdir)]) == 0
    assert capsys.readouterr().out.count("0 new, 0 updated, 3 already there") == 2
    # the study grows a seed: only its runs go out (a diverged one among them)
    store = make_folder(tmp_path, seeds="[0, 1]")
    assert main(["export", str(store.root), "--mlflow", db, "--tensorboard", str(logdir)]) == 0
    assert capsys.readouterr().out.count("6 run(s) of study tiny: 3 new, 0 updated, 3 already there") == 2
    assert {r["status"] for r in records(store).values()} == {"ok", "failed", "diverged"}
    check_mlflow(db, store)
    check_tensorboard(logdir, store)


@EXTRAS
def test_a_retried_run_replaces_its_tracked_failure(tmp_path, db):
    store = make_folder(tmp_path)
    logdir = tmp_path / "tb"
    targets = [Target("mlflow", db), Target("tensorboard", str(logdir))]
    export(store, targets, report=lambda line: None)
    # --retry-failed appends a newer record of the same run: the stores must hold that one, once
    run = next(r for r in expand(load_study(tmp_path / "tiny.toml")) if r.levels["data"] == "missing")
    store.append(record_of(run, 0, fail=False))
    assert records(store)[run.run_id]["status"] == "ok"
    assert export(store, targets, report=lambda line: None) == {str(t): "0 new, 1 updated, 2 already there"
                                                                for t in targets}
    check_mlflow(db, store)
    check_tensorboard(logdir, store)


def fake_execute(spec, run_dir, threads=None):
    """The runner's execute_run without training: the record the tracking tests need, at once."""
    import time

    from ablations.study import RunSpec

    return record_of(RunSpec(**spec), time.time())


@EXTRAS
def test_live_tracking_writes_each_record_as_it_lands(tmp_path, db, monkeypatch):
    monkeypatch.setattr("ablations.runner.execute_run", fake_execute)
    study = load_study(write_study(tmp_path))
    store, logdir = Store(tmp_path / "out"), tmp_path / "tb"
    seen = []

    def report(line):  # as each record is reported, the stores hold exactly the records so far
        seen.append(line)
        if line.startswith("["):
            assert len(mlflow_runs(db)) == len(records(store))
            assert len(tensorboard_runs(logdir)) - 1 == len(records(store))

    counts = run_study(study, store, RunOptions(progress=False, track=(f"mlflow:{db}", f"tensorboard:{logdir}")),
                       report=report)
    assert counts["ran"] == 3 and sum(line.startswith("[") for line in seen) == 3
    check_mlflow(db, store)
    check_tensorboard(logdir, store)
    # what the driver wrote live is what export would write: exporting adds nothing
    targets = [Target("mlflow", db), Target("tensorboard", str(logdir))]
    assert export(store, targets, report=lambda line: None) == {str(t): "0 new, 0 updated, 3 already there"
                                                                for t in targets}


@EXTRAS
def test_a_tracking_store_failing_mid_study_loses_no_run(tmp_path, monkeypatch):
    monkeypatch.setattr("ablations.runner.execute_run", fake_execute)
    study = load_study(write_study(tmp_path))
    store, logdir = Store(tmp_path / "out"), tmp_path / "tb"
    lines = []

    def report(line):
        lines.append(line)
        if line.startswith("[1/"):  # the log folder turns into a file under the driver's feet
            import shutil
            shutil.rmtree(logdir)
            logdir.write_text("in the way")

    run_study(study, store, RunOptions(progress=False, track=(f"tensorboard:{logdir}",)), report=report)
    assert len(records(store)) == 3  # every run recorded
    warning = [line for line in lines if line.startswith("warning: tracking to tensorboard:")]
    assert len(warning) == 1, lines  # once, then the study went on without it
    assert f"python -m ablations export {store.root} --tensorboard {logdir}" in warning[0]
    logdir.unlink()  # the user fixes it and runs the command the warning gave
    assert main(["export", str(store.root), "--tensorboard", str(logdir)]) == 0
    check_tensorboard(logdir, store)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@EXTRAS
@pytest.mark.parametrize("argv,match", [
    (["export", "{tmp}/nowhere", "--tensorboard", "{tmp}/tb"], "{tmp}/nowhere is not a study folder (no such folder)"),
    (["export", "{tmp}", "--tensorboard", "{tmp}/tb"], "{tmp} is not a study folder (it has no study.json)"),
    (["export", "{out}"], "export needs a store: give --mlflow URI, --tensorboard LOGDIR, or both"),
    (["export", "{out}", "--mlflow", "http://127.0.0.1:{port}", "--tensorboard", "{tmp}/tb"],
     "MLflow tracking URI 'http://127.0.0.1:{port}': nothing answers at 127.0.0.1:{port}"),
    (["export", "{out}", "--mlflow", "sqlite:///{tmp}/file/mlflow.db", "--tensorboard", "{tmp}/tb"],
     "cannot use MLflow tracking URI 'sqlite:///{tmp}/file/mlflow.db'"),
    (["export", "{out}", "--tensorboard", "{tmp}/file/tb"], "TensorBoard log folder {tmp}/file/tb: {tmp}/file is a file"),
    (["run", "{tmp}/tiny.toml", "--out", "{tmp}/new", "--track", "wandb:x"], "--track 'wandb:x' is not a tracking target"),
    (["run", "{tmp}/tiny.toml", "--out", "{tmp}/new", "--track", "mlflow:http://127.0.0.1:{port}"],
     "nothing answers at 127.0.0.1:{port}"),
])
def test_bad_targets_and_folders_are_one_line_and_write_nothing(tmp_path, argv, match, capsys):
    store = make_folder(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    fill = {"tmp": tmp_path, "out": store.root, "port": closed_port()}
    assert main([a.format(**fill) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # one line naming the value and the fix (`run` may have said what it planned first)
    assert match.format(**fill) in lines[-1] and lines[-1].startswith("error: ") and len(lines) <= 2, lines
    assert len(lines) == 1 or lines[0].startswith("study tiny: 3 runs, 0 recorded")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, not the tb


def test_track_in_the_study_file(tmp_path):
    assert load_study(write_study(tmp_path, extra='\ntrack = "tensorboard:tb"')).track == ("tensorboard:tb",)
    two = load_study(write_study(tmp_path, extra='\ntrack = ["mlflow:sqlite:///m.db", "tensorboard:tb"]'))
    assert two.track == ("mlflow:sqlite:///m.db", "tensorboard:tb")
    with pytest.raises(StudyError, match=r"'study.track' 'x' is not a tracking target; give mlflow:URI"):
        load_study(write_study(tmp_path, extra='\ntrack = ["mlflow:sqlite:///m.db", "x"]'))
    with pytest.raises(StudyError, match=r"'study.track' must be a tracking target or a list of them"):
        load_study(write_study(tmp_path, extra="\ntrack = 5"))
    assert parse_target("mlflow:http://h:5000") == Target("mlflow", "http://h:5000")
    with pytest.raises(TrackingError, match="--track 'mlflow:' is not a tracking target"):
        parse_target("mlflow:")


@pytest.mark.parametrize("module,kind", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_missing_extra_is_the_install_hint(tmp_path, monkeypatch, capsys, module, kind):
    store = make_folder(tmp_path)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingPackage, match=rf"pip install 'vggbench\[{kind}\]'"):
        export(store, [Target(kind, str(tmp_path / "t"))], report=lambda line: None)
    # as a user meets it: one line, exit 2, nothing written
    before = sorted(tmp_path.rglob("*"))
    assert main(["export", str(store.root), f"--{kind}", str(tmp_path / "t")]) == 2
    assert main(["run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "new"), "--quiet",
                 "--track", f"{kind}:{tmp_path / 't'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    package = {"mlflow": "MLflow", "tensorboard": "TensorBoard"}[kind]
    assert [line for line in err if line.startswith("error: ")] == [
        f"error: {package} tracking needs {package}: pip install 'vggbench[{kind}]'"] * 2, err
    assert sorted(tmp_path.rglob("*")) == before


def killed_driver(toml: Path, out: Path, targets: tuple[str, ...], hold: str, run_id: str, mark: Path) -> None:
    """A driver (forked: no interpreter to start, no training) that holds at one run and waits to be killed:
    `hold` = "execute", while that run trains; "track", after its record is in results.jsonl and before it is
    tracked (the narrowest window a kill can hit)."""
    import ablations.integrations.export
    import ablations.runner

    def execute(spec, run_dir, threads=None):
        if hold == "execute" and spec["run_id"] == run_id:
            mark.write_text("held")
            time.sleep(600)
        return fake_execute(spec, run_dir, threads)

    log = ablations.integrations.export.LiveTracking.log

    def track(self, record):
        if hold == "track" and record.run_id == run_id:
            mark.write_text("held")
            time.sleep(600)
        log(self, record)

    ablations.runner.execute_run = execute
    ablations.integrations.export.LiveTracking.log = track
    try:
        run_study(load_study(toml), Store(out), RunOptions(progress=False, track=targets), report=lambda line: None)
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(1)
    os._exit(0)  # never back into pytest


@EXTRAS
def test_live_tracking_after_a_sigkill_holds_exactly_the_recorded_runs(tmp_path, db, monkeypatch):
    import multiprocessing

    toml = write_study(tmp_path)
    runs = [r.run_id for r in expand(load_study(toml))]
    out, logdir = tmp_path / "out", tmp_path / "tb"
    targets = (f"mlflow:{db}", f"tensorboard:{logdir}")

    def tracked() -> tuple[list[str], list[str]]:
        return (sorted(r["tags"]["run_id"] for r in mlflow_runs(db)),
                sorted(name.rsplit("-", 1)[1] for name in tensorboard_runs(logdir) if name != "tiny"))

    def kill_at(hold: str, run_id: str) -> None:
        mark = tmp_path / f"held-{hold}"
        child = multiprocessing.get_context("fork").Process(
            target=killed_driver, args=(toml, out, targets, hold, run_id, mark))
        child.start()
        deadline = time.time() + 120
        while not mark.exists():
            assert child.is_alive() and time.time() < deadline, "the driver did not reach the run it holds at"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL

    # killed while its second run trains: the stores hold exactly the one recorded run
    kill_at("execute", runs[1])
    assert sorted(records(Store(out))) == [runs[0]]
    assert tracked() == ([runs[0]], [runs[0]])
    # killed between recording the second run and tracking it: that run is recorded, not yet tracked...
    kill_at("track", runs[1])
    assert sorted(records(Store(out))) == sorted(runs[:2])
    assert tracked() == ([runs[0]], [runs[0]])
    # ...and the next run with the same targets tracks it first, then the rest: each run once in each store
    monkeypatch.setattr("ablations.runner.execute_run", fake_execute)
    lines = []
    run_study(load_study(toml), Store(out), RunOptions(progress=False, track=targets), report=lines.append)
    assert sum("caught up with the records already in" in line and "(1 new, 0 updated, 1 already there)" in line
               for line in lines) == 2, lines
    store = Store(out)
    assert len(records(store)) == 3 == len(store.results_path.read_text().splitlines())
    check_mlflow(db, store)
    check_tensorboard(logdir, store)


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@EXTRAS
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(chromium() is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_an_mlflow_server_and_its_ui_list_the_exported_runs(tmp_path, db):
    from mlflow.tracking import MlflowClient

    store = make_folder(tmp_path)
    port = closed_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db, "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=5).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.2)
        assert main(["export", str(store.root), "--mlflow", uri]) == 0
        check_mlflow(uri, store)
        experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name("tiny").experiment_id
        # the UI is a JavaScript app: let it fetch and render the run list before the DOM is taken
        page = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=10000",
                               "--dump-dom", f"{uri}/#/experiments/{experiment}/runs"],
                              capture_output=True, text=True, timeout=180).stdout
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style).*?</\1>", "", page, flags=re.S)))
        recs = records(store)
        assert f"{len(recs)} matching runs" in text, text[-3000:]
        for rec in recs.values():
            assert f"tiny/{rec['variant']}/seed{rec['seed']}" in text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
