"""Data-parallel training on CPU: gloo, 2 processes under torchrun, width 0.125, 32x32, a few steps."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vggcore import VGGConfig, build
from vggcore.files import CheckpointError
from vggcore.train.checkpoint import load_checkpoint
from vggcore.cli.main import main, parser
from vggcore.config import DataConfig
from vggcore.world import DistributedError, World, per_rank, shard
from vggcore.train.distributed import choose_backend, guarded, setup, teardown
from vggcore.errors import UserError
from vggcore.config import TrainConfig
from vggcore.train.loop import train
from vggcore.cli.train import configs_from_args
from json_records import json_records
from vggcore.threads import torch_threads

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "vggcore", "train"]
TINY = ["--arch", "A", "--width", "0.125", "--image-size", "32", "--quiet"]
# Digits with BatchNorm: learns in a few epochs. Shared by the uninterrupted and the killed-and-resumed run.
DIGITS = [*TINY, "--batch-norm", "--augment", "none", "--lr", "0.05", "--epochs", "4", "--batch-size", "32",
          "--schedule", "constant", "--dropout", "0"]


def torchrun(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=timeout)


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------------------------------- pure pieces, no group
def test_shards_cover_every_item_once():
    for n in (0, 1, 5, 41, 64):
        for size in (1, 2, 3, 4):
            parts = [range(n)[shard(n, World(rank=r, world_size=size, backend="gloo"))] for r in range(size)]
            assert sorted(i for p in parts for i in p) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="batch_size 30 is the global batch and must divide by the world size 4; "
                                         "try 28 or 32"):
        per_rank(30, 4)
    with pytest.raises(ValueError, match="batch_size 30 .* world size 4"):
        TrainConfig(batch_size=30, nproc=4)
    with pytest.raises(ValueError, match="nproc must be a positive integer"):
        TrainConfig(nproc=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="backend nccl needs CUDA devices"):
            choose_backend("cpu", "nccl")
    with pytest.raises(ValueError, match="unknown distributed backend 'mpi'; choose one of auto, gloo, nccl"):
        choose_backend("cpu", "mpi")
    assert choose_backend("cpu") == "gloo"
    with pytest.raises(ValueError, match="sync_bn .* this network has no BatchNorm"):
        train(VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64),
              TrainConfig(epochs=1, batch_size=8, sync_bn=True), progress=False)


def test_launch_mistakes_are_user_errors():
    """What the CLI must print as one line (it catches UserError alone): each keeps its ValueError base too."""
    cases = [(lambda: per_rank(30, 4), "must divide by the world size"),
             (lambda: choose_backend("cpu", "mpi"), "unknown distributed backend"),
             (lambda: choose_backend("mps", "gloo"), "runs on cpu \\(gloo\\) or cuda"),
             (lambda: train(VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64),
                            TrainConfig(epochs=1, batch_size=8, sync_bn=True), progress=False), "sync_bn"),
             (lambda: train(VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64),
                            TrainConfig(epochs=1, batch_size=8, nproc=2), progress=False),
              "asks for nproc=2 processes but runs in a world of 1")]
    if not torch.cuda.is_available():
        cases.append((lambda: choose_backend("cpu", "nccl"), "backend nccl needs CUDA devices"))
    for fn, match in cases:
        with pytest.raises(UserError, match=match) as caught:
            fn()
        assert isinstance(caught.value, ValueError)


def test_setup_starts_a_group_of_spawned_ranks_without_torchrun(monkeypatch):
    """The scaling benchmark's ranks: rank, world size and address given, torchrun's variables ignored."""
    monkeypatch.setenv("RANK", "5")  # would be a malformed torchrun world if it were read
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with torch_threads(None):   # setup sets the count; the block puts this process's back
        world = setup("cpu", threads=1, rank=0, world_size=1, address=f"127.0.0.1:{port}")
        try:
            assert (world.rank, world.world_size, world.local_world_size, world.backend, world.owns_group) == (
                0, 1, 1, "gloo", True)
            assert torch.distributed.is_initialized() and torch.distributed.get_world_size() == 1
        finally:
            teardown(world)
    assert not torch.distributed.is_initialized()
    with pytest.raises(ValueError, match="give rank, world_size and address together"):
        setup("cpu", rank=0)


def test_a_broken_group_becomes_one_clear_error():
    def peer_gone():
        raise RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:29500\nmore detail")

    with pytest.raises(DistributedError, match=r"rank 1 of 2 lost the process group while training epoch 3 "
                                               r"\(\[gloo\] Connection closed by peer .*\); another rank probably "
                                               r"died .* Run the same command again to resume"):
        guarded(World(rank=1, world_size=2, backend="gloo"), "training epoch 3", peer_gone)
    with pytest.raises(RuntimeError, match="Connection closed") as caught:  # one process: untouched
        guarded(World(), "training", peer_gone)
    assert type(caught.value) is RuntimeError


def test_cli_errors_are_one_line(capsys):
    assert main(["train", *TINY, "--sync-bn", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sync_bn converts BatchNorm") and "Traceback" not in err
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--sync-bn" in help_text and "--dist-backend" in help_text


def test_checkpoint_of_another_world_size_is_refused(tmp_path):
    model, data = VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64)
    cfg = TrainConfig(epochs=2, batch_size=8)

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    with pytest.raises(Stop):
        train(model, data, cfg, out=tmp_path, progress=False, on_epoch=stop)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["world_size"] == 1
    state["world_size"] = 2
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"written by a world of 2 processes, this run has 1; resume it with "
                                              r"torchrun --nproc_per_node=2"):
        train(model, data, cfg, out=tmp_path, progress=False)


def test_single_process_records_its_world(tmp_path):
    result = train(VGGConfig("A", width=0.125, image_size=32), DataConfig("synthetic", synthetic_samples=64),
                   TrainConfig(epochs=1, batch_size=8, threads=1), progress=False)
    assert (result["world_size"], result["backend"], result["rank_threads"]) == (1, None, [1])


# ---------------------------------------------------------------------------------- two ranks under torchrun
@pytest.mark.slow
def test_two_ranks_take_the_same_steps_as_one_process(tmp_path):
    """No BatchNorm, no dropout, no augmentation: 2 ranks x 32 images (2 micro-batches each under no_sync) end
    with the weights of one process stepping on 64. Digits' 1,257 training images leave a last batch of 41,
    split 21/20, so the weighting of unequal slices is exercised too."""
    args = [*TINY, "--dataset", "digits", "--augment", "none", "--dropout", "0", "--epochs", "1",
            "--batch-size", "64", "--micro-batch", "16", "--schedule", "constant", "--lr", "0.02",
            "--init", "xavier"]
    two = torchrun([*args, "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    model, data, cfg = configs_from_args(parser().parse_args(["train", *args]))
    one = train(model, data, cfg, out=tmp_path / "one", progress=False)
    a = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=key)
    torch.manual_seed(cfg.seed)  # the initial weights both runs started from: the runs did move away from them
    start = build(dataclasses.replace(model, num_classes=10)).state_dict()
    assert max(float((a[k] - start[k]).abs().max()) for k in a) > 1e-3
    rec = metrics(tmp_path / "two")
    assert rec["world_size"] == 2 and rec["backend"] == "gloo" and len(rec["rank_threads"]) == 2
    # exact evaluation: every test image counted once, so the error counts agree with one process
    assert rec["final"]["test_top1_error"] == pytest.approx(one["final"]["test_top1_error"], abs=1.5 / 270)
    assert rec["final"]["test_loss"] == pytest.approx(one["final"]["test_loss"], rel=1e-3)
    assert rec["history"][0]["images_per_s"] > 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "full"
    done = torchrun([*DIGITS, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


# The users of `uninterrupted` share one xdist group: under `-n 2 --dist loadgroup` the 2-rank run trains once,
# not once on each worker.
@pytest.mark.xdist_group("ddp_uninterrupted")
@pytest.mark.slow
def test_digits_under_torchrun(uninterrupted):
    rec = metrics(uninterrupted)
    assert rec["status"] == "ok" and rec["world_size"] == 2 and rec["backend"] == "gloo"
    assert len(rec["rank_threads"]) == 2 and all(t >= 1 for t in rec["rank_threads"])
    assert rec["final"]["test_top1_error"] < 0.5  # chance is 0.9
    assert not list(uninterrupted.glob(".*.tmp"))  # rank 0 alone wrote, atomically


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _rank_pid(launcher: int, rank: int, timeout: float = 120) -> int:
    """The pid of a torchrun worker, found through /proc by its RANK."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid in _descendants(launcher):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in env and b"LOCAL_RANK" in b"".join(env):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} under launcher {launcher}")


@pytest.mark.xdist_group("ddp_uninterrupted")
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through Linux /proc")
@pytest.mark.parametrize("victim", ["writer", "group"])
def test_killed_writer_ends_the_group_and_the_rerun_resumes(tmp_path, uninterrupted, victim):
    """Just after the first checkpoint, either rank 0 (the one that writes) is SIGKILLed, and the group must end on
    its own (no hang; torchrun names the dead rank), or the whole group is (launcher and every rank, as a node
    that dies). Either way the same command resumes and ends with exactly the metrics of an uninterrupted 2-rank
    run."""
    out = tmp_path / "cut"
    proc = subprocess.Popen([*TORCHRUN, *DIGITS, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    writer = _rank_pid(proc.pid, 0)
    deadline = time.time() + 180
    # the first epoch's checkpoint and then its metrics.json (written just after it): kill once both are there
    while (not ((out / "checkpoint.pt").exists() and (out / "metrics.json").exists()) and proc.poll() is None
           and time.time() < deadline):
        time.sleep(0.02)
    victims = [writer] if victim == "writer" else [proc.pid, *_descendants(proc.pid)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    try:
        _, stderr = proc.communicate(timeout=120)  # a surviving rank and the launcher stop by themselves
    finally:
        for pid in [proc.pid, *_descendants(proc.pid)]:  # whatever is left of the group, if the test failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if victim == "writer":
        assert proc.returncode != 0 and "Signal 9 (SIGKILL)" in stderr, stderr[-2000:]
    else:
        assert proc.returncode == -signal.SIGKILL
    cut = load_checkpoint(out / "checkpoint.pt")
    assert 1 <= cut["epoch"] < 4 and metrics(out)["status"] == "running"
    again = torchrun([*DIGITS, "--out", str(out)])
    assert again.returncode == 0, again.stderr[-3000:]
    resumed, full = metrics(out), metrics(uninterrupted)
    assert resumed["resumed_from_epoch"] >= 1 and resumed["world_size"] == 2
    assert resumed["final"]["test_loss"] == full["final"]["test_loss"]
    assert resumed["final"]["test_top1_error"] == full["final"]["test_top1_error"]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in full["history"]]


@pytest.mark.slow
def test_study_with_nproc_2_runs_through_the_local_executor(tmp_path):
    from ablations.runner import RunOptions, run_study
    from ablations.store import Store
    from ablations.study import load_study

    path = tmp_path / "ddp.toml"
    path.write_text("""
[study]
name = "ddp"
seeds = [0]
[base.model]
arch = "A"
width = 0.125
image_size = 32
[base.data]
dataset = "synthetic"
synthetic_samples = 96
[base.train]
epochs = 1
batch_size = 8
[factors.procs]
levels.one = { "train.nproc" = 1 }
levels.two = { "train.nproc" = 2 }
""")
    store = Store(tmp_path / "out")
    counts = run_study(load_study(path), store, RunOptions(progress=False))
    assert counts["ran"] == 2
    records = json_records(store.results_path)
    assert len(records) == 2
    by_variant = {r["variant"]: r for r in records.values()}
    assert by_variant["baseline"]["world_size"] == 1
    two = by_variant["procs=two"]
    assert two["status"] == "ok", two.get("error")
    assert two["world_size"] == 2 and two["config"]["train"]["nproc"] == 2
    assert metrics(tmp_path / "out" / "runs" / two["run_id"])["world_size"] == 2


def test_folder_data_is_split_between_ranks(tmp_path):
    import numpy as np
    from PIL import Image

    from vggcore.data.folder import loaders

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3 if split == "train" else 4):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    config = DataConfig("imagefolder", data_root=str(tmp_path), num_workers=0)
    ranks = [loaders(config, 32, 4, seed=7, rank=r, world_size=2) for r in range(2)]
    orders = {}
    for epoch in (0, 1):
        shares = []
        for train_loader, *_ in ranks:
            train_loader.sampler.set_epoch(epoch)
            keys = list(train_loader.sampler)                 # (epoch, index): the epoch seeds each image's draws
            assert {e for e, _ in keys} == {epoch}
            shares.append([i for _, i in keys])
            x, y = next(iter(train_loader))
            assert x.shape == (2, 3, 32, 32)  # the global batch of 4, halved
        assert sorted(shares[0] + shares[1]) == list(range(6))  # disjoint, every image once
        orders[epoch] = shares
    assert orders[0] != orders[1]  # reshuffled by set_epoch, the same way on every rank
    val_shares = [list(val.sampler) for _, val, *_ in ranks]
    assert val_shares == [[0, 1, 2, 3], [4, 5, 6, 7]]  # exact evaluation: no padding, no duplicates
