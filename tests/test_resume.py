"""Resume equality where it is hardest: streamed folder data with workers, and a training process killed outright."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vggcore import VGGConfig
from vggcore.config import DataConfig
from vggcore.config import TrainConfig
from vggcore.train.loop import train

TIMING = ("epoch_seconds", "images_per_s", "data_seconds", "data_fraction")


def comparable(record: dict) -> tuple[list[dict], dict]:
    """History and final metrics without the wall-clock fields, which no two runs share."""
    history = [{k: v for k, v in row.items() if k not in TIMING} for row in record.get("history", [])]
    final = {k: v for k, v in record["final"].items() if k != "train_seconds"}
    return history, final


def write_image_folder(root, per_class=(10, 4), size=(40, 52)):
    """Two classes of PNGs that differ in brightness (so the net has something to learn), non-square so the
    rescale matters; fixed seed."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class):
        for label, cls in enumerate(("dark", "light")):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 128, (*size, 3)) + 100 * label
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / cls / f"{i}.png")
    return root


class Stop(Exception):
    pass


def stop_after(epoch):
    def hook(row):
        if row["epoch"] == epoch:
            raise Stop
    return hook


def test_folder_batches_depend_on_seed_epoch_and_index_only(tmp_path):
    """Epoch 1 from persistent workers that already served epoch 0 equals epoch 1 from a fresh loader without
    workers: no draw depends on a worker's RNG state or on which worker serves an image."""
    from vggcore.data.folder import loaders

    root = write_image_folder(tmp_path, per_class=(4, 1))

    def epochs(workers, which, seed=0):
        config = DataConfig("imagefolder", data_root=str(root), augment="paper_jitter", num_workers=workers)
        train = loaders(config, 32, 3, seed)[0]
        out = []
        for epoch in which:
            train.sampler.set_epoch(epoch)
            out.append([(x, y) for x, y in train])
        return out

    def same(a, b):
        return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))

    persistent = epochs(2, [0, 1])
    fresh = epochs(0, [1, 0])
    assert same(persistent[1], fresh[0]) and same(persistent[0], fresh[1])
    assert not same(persistent[0], persistent[1])  # a new epoch draws anew
    assert not same(epochs(0, [1], seed=1)[0], fresh[0])  # and so does another seed


@pytest.mark.slow
def test_folder_run_with_workers_and_jitter_resumes_exactly(tmp_path):
    data = DataConfig("imagefolder", data_root=str(write_image_folder(tmp_path / "images")),
                      augment="paper_jitter", num_workers=2)
    model = VGGConfig(arch="A", batch_norm=True, width=0.125, image_size=32)
    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.02, schedule="constant")
    full = train(model, data, cfg, out=tmp_path / "full", progress=False)
    with pytest.raises(Stop):
        train(model, data, cfg, out=tmp_path / "cut", progress=False, on_epoch=stop_after(1))
    resumed = train(model, data, cfg, out=tmp_path / "cut", progress=False)
    assert resumed["resumed_from_epoch"] == 1 and full["status"] == resumed["status"] == "ok"
    assert comparable(resumed) == comparable(full)


def cli(*args):
    return [sys.executable, "-m", "vggcore", "train", *args]


# One intra-op thread: the runs compared share the setting, and on a loaded machine two OpenMP threads spin for
# each other (a 20-image epoch took 20 s instead of a fraction of one).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_cli_killed_after_its_first_checkpoint_resumes_to_the_same_result(tmp_path):
    """SIGKILL, no cleanup, a new process; on folder data with two loader workers, the plateau schedule (which
    drops here: validation error stays flat) and a finished pre-training of net A, so the rerun takes A's weights
    from its checkpoint rather than from memory."""
    images = write_image_folder(tmp_path / "images")
    args = ["--arch", "B", "--batch-norm", "--width", "0.125", "--epochs", "6", "--schedule", "plateau",
            "--lr", "0.05", "--batch-size", "4", "--dataset", "imagefolder", "--data-root", str(images),
            "--augment", "paper_jitter", "--init-from-a", "1", "--quiet"]
    full = subprocess.run(cli(*args, "--out", str(tmp_path / "full")), capture_output=True, text=True, timeout=300,
                          env=ONE_THREAD)
    assert full.returncode == 0, full.stderr

    out = tmp_path / "cut"
    proc = subprocess.Popen(cli(*args, "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=ONE_THREAD)
    deadline = time.monotonic() + 240
    # The deeper net's first epoch writes its checkpoint, then metrics.json: pre-training is done by then.
    while not (out / "metrics.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    cut = json.loads((out / "metrics.json").read_text())
    assert proc.returncode == -signal.SIGKILL and cut["status"] == "running" and len(cut["history"]) < 6
    assert json.loads((out / "pretrain-A" / "metrics.json").read_text())["status"] == "ok"

    rerun = subprocess.run(cli(*args, "--out", str(out)), capture_output=True, text=True, timeout=300,
                          env=ONE_THREAD)
    assert rerun.returncode == 0, rerun.stderr
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert b["resumed_from_epoch"] >= 1 and b["status"] == "ok"
    assert comparable(b) == comparable(a)
    assert comparable(b["pretrain"])[1] == comparable(a["pretrain"])[1]
    assert len({row["lr"] for row in a["history"]}) > 1, "the plateau never dropped: the test lost its point"
    # The plateau's own state (best accuracy, epochs without gain, drops) must carry over too.
    state = lambda p: torch.load(p / "checkpoint.pt", weights_only=True)["schedule"]  # noqa: E731
    assert state(out) == state(tmp_path / "full")
