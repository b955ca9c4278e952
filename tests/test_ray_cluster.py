"""The Ray executor on real Ray clusters on this machine, every node and driver on 127.0.0.1: a two-node cluster
joined through --ray-address that loses a node while its runs are in flight, a task's worker process SIGKILLed
while it trains (retried; recorded failed once the retries run out), a study folder the workers cannot write,
an address with no cluster behind it."""

from __future__ import annotations

import os

# Before ray is imported: Ray on Linux then takes 127.0.0.1 for every node and driver (see NOTES.md), and no
# traffic leaves loopback. The drivers these tests start get it through their environment.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ablations import expand, load_study  # noqa: E402
from ablations.ray_executor import PROBE, check_folder  # noqa: E402
from ablations.store import read_results  # noqa: E402
from tiny_study import BROKEN, tiny_study  # noqa: E402

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vggbench[ray]')")
pytestmark = pytest.mark.ray
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def study_file(tmp_path: Path, seeds: str = "[0, 1]", extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study(seeds=seeds, epochs=2, extra=extra))
    return path


def ray_run(path: Path, out: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ablations", "run", str(path), "--out", str(out), "--executor", "ray", "--quiet",
           *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, seconds: float = 600, what: str = "") -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def checkpoints(out: Path) -> int:
    return len(list(out.glob("runs/*/checkpoint.pt")))


def lines(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def task_workers(root: int) -> list[int]:
    """The Ray worker processes under process `root` (the driver, which started its local Ray) that are running
    a run's task: Ray titles them ray::execute_run. Only descendants, so no other Ray on this machine is touched."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found = []
    for pid in parent:
        up = pid
        while up in parent and up != root:
            up = parent[up]
        if up == root and pid != root:
            try:
                if (Path("/proc") / str(pid) / "cmdline").read_bytes().startswith(b"ray::execute_run"):
                    found.append(pid)
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_a_two_node_cluster_that_loses_a_node_records_every_run_once(tmp_path):
    from ray.cluster_utils import Cluster

    path, out = study_file(tmp_path, extra=BROKEN), tmp_path / "out"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        assert cluster.address.startswith("127.0.0.1:")  # the whole cluster on loopback
        proc = ray_run(path, out, "--ray-address", cluster.address)
        # two runs in flight, one on each node (a CPU each), both past their first epoch: then a node goes
        wait_for(lambda: checkpoints(out) >= 2 or proc.poll() is not None, what="two runs in flight")
        assert proc.poll() is None, proc.communicate()
        in_flight = checkpoints(out)
        cluster.remove_node(worker)
        _, err = proc.communicate(timeout=900)
    finally:
        cluster.shutdown()
    assert proc.returncode == 3, err  # 3: the data=missing runs failed, as they should
    records = lines(out)
    assert sorted(r["run_id"] for r in records) == sorted(r.run_id for r in expand(load_study(path)))  # each once
    statuses = {(r["variant"], r["seed"]): r["status"] for r in records}
    assert statuses == {(v, s): "failed" if v == "data=missing" else "ok"
                        for v in ("baseline", "dropout=off", "data=missing") for s in (0, 1)}
    # the run the lost node held was submitted again (and only it: a run's own failure is never retried) and
    # went on from its checkpoint on the node that remained
    assert err.count("its Ray task was lost (NodeDiedError") == 1, err
    assert in_flight == 2 and any(r["resumed_from_epoch"] == 1 for r in records)
    assert all(r["executor"] == "ray" for r in records)


@pytest.mark.slow
def test_a_killed_task_worker_is_retried_and_the_study_goes_on(tmp_path):
    """The issue's new-user case: a 4-run digits study on a local Ray, one task's worker SIGKILLed as it trains."""
    path, out = study_file(tmp_path), tmp_path / "out"
    proc = ray_run(path, out)
    wait_for(lambda: checkpoints(out) >= 1 or proc.poll() is not None, what="a run past its first epoch")
    workers = task_workers(proc.pid)
    assert workers, "no ray::execute_run process under the driver"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    records = lines(out)
    assert sorted(r["run_id"] for r in records) == sorted(r.run_id for r in expand(load_study(path)))
    assert {r["status"] for r in records} == {"ok"}
    assert err.count("its Ray task was lost (WorkerCrashedError") == 1 and "retry 1 of 2" in err, err


@pytest.mark.slow
def test_a_run_whose_retries_run_out_is_recorded_failed_with_the_reason(tmp_path):
    path, out = study_file(tmp_path, seeds="[0]"), tmp_path / "out"
    proc = ray_run(path, out, "--ray-retries", "0")
    wait_for(lambda: checkpoints(out) >= 1 or proc.poll() is not None, what="a run past its first epoch")
    workers = task_workers(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    stdout, err = proc.communicate(timeout=900)
    assert proc.returncode == 3, err  # some run failed
    records = read_results(out / "results.jsonl").records
    assert len(records) == 2 == len(lines(out))
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and [r["status"] for r in records.values()].count("ok") == 1
    assert failed[0]["error"].startswith("the Ray task of this run was lost 1 time(s) and the retries ran out; "
                                         "last: WorkerCrashedError")
    assert failed[0]["attempts"] == 1 and "failed: " in stdout


@pytest.mark.slow
def test_a_folder_the_workers_cannot_write_is_refused_before_any_run(tmp_path):
    path, out = study_file(tmp_path, seeds="[0]"), tmp_path / "out"
    out.mkdir()
    (out / "runs").write_text("in the way of every run's checkpoint folder")
    proc = ray_run(path, out)
    _, err = proc.communicate(timeout=600)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert last.startswith("error: the Ray workers on node 127.0.0.1") and f"cannot write into {out.resolve()}/runs" in last
    assert "filesystem every node mounts at the same path" in last
    assert sorted(p.name for p in out.iterdir()) == [".lock", "runs"]  # no study.json, no results, no probe left


def test_an_address_with_no_cluster_behind_it_is_one_line_and_writes_nothing(tmp_path, capsys):
    from ablations.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path, out = study_file(tmp_path), tmp_path / "out"
    # in this process (the CLI's own entry point): refused before ray.init, which would wait for minutes
    assert main(["run", str(path), "--out", str(out), "--executor", "ray", "--quiet",
                 "--ray-address", f"127.0.0.1:{port}"]) == 2
    assert not ray.is_initialized()
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: --ray-address '127.0.0.1:{port}': nothing answers at 127.0.0.1:{port}")
    assert "ray start --head" in last and "Traceback" not in err
    assert not out.exists()


def test_the_folder_probe_names_what_a_node_cannot_do(tmp_path):
    token = "0" * 32
    assert check_folder(str(tmp_path / "elsewhere"), token)[1].startswith(f"cannot see {tmp_path / 'elsewhere'}")
    (tmp_path / f"{PROBE}{token}").write_text("another driver's token")
    assert check_folder(str(tmp_path), token) == (None, f"sees another folder at {tmp_path}")
    (tmp_path / f"{PROBE}{token}").write_text(token)
    reply, problem = check_folder(str(tmp_path), token)
    assert problem is None and Path(reply).parent == tmp_path / "runs" and Path(reply).read_text() == token
