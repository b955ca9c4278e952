"""Atomic writes on a full disk: one clear UserError that says how much room the file needs, and nothing left
behind. On a real 3 MB tmpfs where this process may mount one (root), and with monkeypatched writes everywhere."""

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vggcore import VGGConfig
from vggcore import files
from vggcore.train import checkpoint
from vggcore.train.checkpoint import load_checkpoint, save_checkpoint
from vggcore.files import save_json
from vggcore.config import DataConfig
from vggcore.errors import UserError
from vggcore.config import TrainConfig
from vggcore.train.loop import train

FULL = r"no space left on device writing .*{name} \({what} needs {needed} MB, \d+\.\d MB free\)"
# torch.save's words for a failed write on a full disk (seen on a 3 MB tmpfs)
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 2526976 vs 2526864"
# the parts every checkpoint vggcore.train.loop writes has (load_checkpoint refuses a file without them)
WHOLE = {"format": 1, "config": {}, "epoch": 3, "model": {}, "optimizer": {}, "schedule": {}, "history": []}


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs, mounted for the test (skipped where mounting is not permitted)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here (needs root): {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def state(mb: float) -> dict:
    return {**WHOLE, "weights": torch.zeros(int(mb * 1e6 / 4))}


def test_checkpoint_too_large_for_a_real_tiny_disk(tiny_disk):
    save_checkpoint(tiny_disk / "checkpoint.pt", state(1))        # an earlier, smaller checkpoint
    with pytest.raises(UserError, match=FULL.format(name="checkpoint.pt", what="the checkpoint", needed="4.0")) as err:
        save_checkpoint(tiny_disk / "checkpoint.pt", state(4))
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert isinstance(err.value, files.DiskFullError)
    assert leftovers(tiny_disk) == []
    assert load_checkpoint(tiny_disk / "checkpoint.pt")["weights"].numel() == 250_000  # the old one, whole


def test_json_on_a_real_full_disk(tiny_disk):
    (tiny_disk / "filler").write_bytes(b"\0" * (3 * 2 ** 20 - 64 * 1024))
    with pytest.raises(UserError, match=FULL.format(name="metrics.json", what="the file", needed="0.2")):
        save_json(tiny_disk / "metrics.json", {"history": ["x" * 200_000]})
    assert leftovers(tiny_disk) == [] and not (tiny_disk / "metrics.json").exists()


def test_training_on_a_real_tiny_disk_stops_with_the_disk_full_error(tiny_disk):
    """A VGG-A checkpoint at width 0.125 (3.6 MB with its momentum) cannot fit: the run's error says so."""
    model = VGGConfig(arch="A", width=0.125, image_size=32)
    with pytest.raises(UserError, match=FULL.format(name="checkpoint.pt", what="the checkpoint", needed=r"\d+\.\d")):
        train(model, DataConfig("digits", augment="none"), TrainConfig(epochs=1, batch_size=256, threads=1),
              out=tiny_disk / "run", progress=False)
    assert leftovers(tiny_disk / "run") == []


def fake_statvfs(free_bytes: int):
    real = os.statvfs(".")

    class Stats:
        f_frsize = 4096
        f_bavail = free_bytes // 4096
        f_bfree = f_bavail
        f_blocks = real.f_blocks
    return lambda path: Stats()


def test_torch_write_failure_with_no_room_is_disk_full(tmp_path, monkeypatch):
    """torch.save's RuntimeError without errno counts as a full disk when statvfs confirms there is no room."""
    calls = []

    def failing_save(obj, f):
        calls.append(f)
        if len(calls) == 1:  # the real write fails; the size count that follows goes through
            f.write(b"x" * 100)
            raise RuntimeError(TORCH_FULL)
        f.write(b"x" * 2_500_000)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    monkeypatch.setattr(files.os, "statvfs", fake_statvfs(1_000_000))
    with pytest.raises(UserError, match=FULL.format(name="checkpoint.pt", what="the checkpoint", needed="2.5")):
        save_checkpoint(tmp_path / "checkpoint.pt", state(0.001))
    assert leftovers(tmp_path) == [] and not (tmp_path / "checkpoint.pt").exists()


def test_torch_write_failure_with_room_to_spare_is_not_called_disk_full(tmp_path, monkeypatch):
    def failing_save(obj, f):
        if hasattr(f, "fileno"):  # the real file; the size count that may follow goes through
            raise RuntimeError(TORCH_FULL)
        f.write(b"x" * 100)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    monkeypatch.setattr(files.os, "statvfs", fake_statvfs(10 ** 12))
    with pytest.raises(RuntimeError, match="enforce fail") as err:
        save_checkpoint(tmp_path / "checkpoint.pt", state(0.001))
    assert not isinstance(err.value, UserError) and leftovers(tmp_path) == []


def test_enospc_from_the_write_itself(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(UserError, match=FULL.format(name="metrics.json", what="the file", needed="0.0")):
        save_json(tmp_path / "metrics.json", {"a": 1})
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert leftovers(tmp_path) == [] and not (tmp_path / "metrics.json").exists()
    save_json(tmp_path / "metrics.json", {"a": 1})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def test_other_write_errors_pass_unchanged(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error") as err:
        save_json(tmp_path / "metrics.json", {"a": 1})
    assert not isinstance(err.value, UserError) and leftovers(tmp_path) == []


def test_old_checkpoints_with_an_rng_entry_still_load(tmp_path):
    save_checkpoint(tmp_path / "old.pt", {**WHOLE, "rng": {"torch": torch.get_rng_state()}})
    assert load_checkpoint(tmp_path / "old.pt")["epoch"] == 3


class Payload:
    """A pickled global whose loading would run code (a file appears) if torch.load trusted it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_naming_a_global_is_refused_by_name_and_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({**WHOLE, "extra": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(checkpoint.CheckpointError, match=r"refused to load checkpoint .*evil\.pt: it names "
                                                         r"\S*(posix|os)\.system.*nothing in it was run") as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(err.value) and not marker.exists()


def test_a_checkpoint_lacking_its_parts_or_a_record_that_is_not_an_object_is_refused(tmp_path):
    save_checkpoint(tmp_path / "part.pt", {"format": 1, "epoch": 3, "model": {}})
    with pytest.raises(checkpoint.CheckpointError, match="lacks config, optimizer, schedule, history"):
        load_checkpoint(tmp_path / "part.pt")
    (tmp_path / "metrics.json").write_text("[]")
    with pytest.raises(checkpoint.CheckpointError, match="holds a JSON list, not a run's record"):
        files.load_json(tmp_path / "metrics.json")


def test_a_state_that_does_not_fit_the_network_names_the_file(tmp_path):
    net = torch.nn.Linear(3, 2)
    with pytest.raises(checkpoint.CheckpointError, match=r"ckpt\.pt: its model state does not fit this run"):
        checkpoint.load_state(net, torch.nn.Linear(4, 2).state_dict(), tmp_path / "ckpt.pt", "model")
