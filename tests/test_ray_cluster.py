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
from ablations.integrations.ray_executor import PROBE, check_folder  # noqa: E402
from tiny_study import BROKEN, tiny_study  # noqa: E402
from json_records import json_records

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vggbench[ray]')")
pytestmark = pytest.mark.ray


def study_file(tmp_path: Path, seeds: str = "[0]", extra: str = BROKEN, epochs: int = 3) -> Path:
    """The tiny study with its failing level: seed 0 is baseline, dropout=off (both train) and data=missing (fails at
    once, its own error: never retried)."""
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study(seeds=seeds, epochs=epochs, extra=extra))
    return path


ONE_TRAINING_RUN = """
[study]
name = "one"
seeds = [0]
metric = "test_top1_error"

[base.model]
arch = "A"
batch_norm = true
width = 0.125
image_size = 32

[base.data]
augment = "none"

[base.train]
epochs = 2
batch_size = 128
""" + BROKEN   # two runs: baseline trains, data=missing fails at once


def ray_run(path: Path, out: Path, address: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """A driver joining the cluster at `address`; its stderr goes to a file the test can read while it runs."""
    cmd = [sys.executable, "-m", "ablations", "run", str(path), "--out", str(out), "--executor", "ray", "--quiet",
           "--ray-address", address, *args]
    err = path.parent / "driver.err"
    with err.open("w") as sink:
        # the environment as it is now, not at import: Ray started in this process (the cluster, or an earlier
        # test's local Ray) turns on token authentication by setting RAY_AUTH_MODE here, and a driver without it
        # is refused by the cluster (InvalidAuthToken)
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=sink, text=True), err


def wait_for(condition, seconds: float = 300, what: str = "") -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def finish(proc: subprocess.Popen, err: Path, seconds: float = 300) -> tuple[str, str]:
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return out, err.read_text()


def checkpoints(out: Path) -> int:
    return len(list(out.glob("runs/*/checkpoint.pt")))


def lines(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def task_workers(root: int = os.getpid()) -> list[int]:
    """The Ray worker processes under process `root` (this test process, which started the cluster) that are
    running a run's task: Ray titles them ray::execute_run. Only descendants, so no other Ray here is touched."""
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


@pytest.fixture(scope="module")
def cluster():
    """One cluster on 127.0.0.1 for the module (starting one costs many seconds): a head and a worker node, a CPU
    each, so two runs train at once, one on each node."""
    from ray.cluster_utils import Cluster

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        assert made.address.startswith("127.0.0.1:")  # the whole cluster on loopback
        yield made
    finally:
        made.shutdown()


@pytest.fixture
def two_nodes(cluster):
    """The module's cluster with its worker node (again, after a test removed it)."""
    if len(cluster.list_all_nodes()) < 2:
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


@pytest.mark.slow
def test_a_killed_task_worker_is_retried_then_recorded_failed_when_retries_run_out(tmp_path, two_nodes):
    """The issue's new-user case: a task's worker process SIGKILLed as it trains. With --ray-retries 1 the run is
    submitted again once; its second worker killed too, it is recorded failed with the reason, and the study goes
    on (exit 3: some run failed)."""
    path, out = tmp_path / "one.toml", tmp_path / "out"
    path.write_text(ONE_TRAINING_RUN)
    proc, err_path = ray_run(path, out, two_nodes.address, "--ray-retries", "1")
    # data=missing fails at once; after that the only run in a ray::execute_run process is the training one
    wait_for(lambda: (lines(out) and task_workers()) or proc.poll() is not None, what="the training run's task")
    first = task_workers()
    assert len(first) == 1, (first, finish(proc, err_path))
    os.kill(first[0], signal.SIGKILL)
    wait_for(lambda: "retry 1 of 1" in err_path.read_text() or proc.poll() is not None, what="the retry")
    wait_for(lambda: [p for p in task_workers() if p not in first] or proc.poll() is not None,
             what="the retried task's worker")
    second = [p for p in task_workers() if p not in first]
    assert len(second) == 1, finish(proc, err_path)
    os.kill(second[0], signal.SIGKILL)
    stdout, err = finish(proc, err_path)
    assert proc.returncode == 3, err
    records = json_records(out / "results.jsonl")
    assert len(records) == 2 == len(lines(out))  # each run once
    lost = next(r for r in records.values() if r["variant"] == "baseline")
    assert lost["status"] == "failed" and lost["attempts"] == 2
    assert lost["error"].startswith("the Ray task of this run was lost 2 time(s) and the retries ran out; "
                                    "last: WorkerCrashedError"), lost["error"]
    assert err.count("its Ray task was lost (WorkerCrashedError") == 1, err  # the retry line; then recorded failed
    own = next(r for r in records.values() if r["variant"] == "data=missing")
    assert own["status"] == "failed" and "attempts" not in own and "lost" not in own["error"]


@pytest.mark.slow  # only for the module's cluster it needs
def test_a_folder_the_workers_cannot_write_is_refused_before_any_run(tmp_path, two_nodes, capsys):
    from ablations.cli import main

    path, out = study_file(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "runs").write_text("in the way of every run's checkpoint folder")
    # in this process (no driver subprocess to start): joins the cluster, probes both nodes, refuses
    assert main(["run", str(path), "--out", str(out), "--executor", "ray", "--quiet",
                 "--ray-address", two_nodes.address]) == 2
    assert not ray.is_initialized()  # the driver left the cluster
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the Ray workers on node 127.0.0.1") and f"cannot write into {out.resolve()}/runs" in last
    assert "filesystem every node mounts at the same path" in last and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [".lock", "runs"]  # no study.json, no results, no probe left


@pytest.mark.slow
def test_a_two_node_cluster_that_loses_a_node_records_every_run_once(tmp_path, two_nodes):
    path, out = study_file(tmp_path), tmp_path / "out"
    proc, err_path = ray_run(path, out, two_nodes.address)
    # the two training runs in flight, one on each node (a CPU each), both past their first epoch: a node goes
    wait_for(lambda: checkpoints(out) >= 2 or proc.poll() is not None, what="two runs in flight")
    assert proc.poll() is None, finish(proc, err_path)
    assert not [r for r in lines(out) if r["status"] == "ok"], "a run finished before the node went: too fast"
    two_nodes.remove_node(two_nodes.worker_nodes.copy().pop())
    _, err = finish(proc, err_path)
    assert proc.returncode == 3, err  # 3: the data=missing run failed, as it should
    records = lines(out)
    assert sorted(r["run_id"] for r in records) == sorted(r.run_id for r in expand(load_study(path)))  # each once
    assert {r["variant"]: r["status"] for r in records} == {"baseline": "ok", "dropout=off": "ok",
                                                            "data=missing": "failed"}
    # the run the lost node held was submitted again (and only it: a run's own failure is never retried) and
    # went on from its checkpoint on the node that remained
    assert err.count("its Ray task was lost (NodeDiedError") == 1 and "retry 1 of 2" in err, err
    assert [r.get("resumed_from_epoch", 0) for r in records if r["status"] == "ok"].count(0) == 1
    assert any(r.get("resumed_from_epoch", 0) >= 1 for r in records)
    assert all(r["executor"] == "ray" for r in records)


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
