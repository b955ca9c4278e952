"""Atomic writes and guarded reads of result files (JSON records, and checkpoints through
vggcore.train.checkpoint). A write that fills its filesystem becomes one `DiskFullError` saying how much the
file needs and how much is free, and leaves the file as it was: no half-written file, no temporary file. No
torch here.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable
from vggcore.errors import UserError


class CheckpointError(UserError, ValueError):
    """A checkpoint or metrics file that cannot be trusted: the run refuses to go on rather than start over."""


class DiskFullError(UserError, OSError):
    """A write found no space left on its filesystem; the file is as it was before the write."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(errno.ENOSPC, message)
        self.path = path

    def __str__(self) -> str:
        return self.strerror


MB = 10 ** 6


def atomic_write(path: Path, write: Callable[[BinaryIO], object], what: str = "the file") -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`: a crash leaves the
    old file or the new one, never half of one. A full filesystem raises `DiskFullError` naming `what`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        full = _disk_full(err, path, write, what)
        if full is not None:
            raise full from err
        raise


class _Counter:
    """A write-only sink that counts the bytes it is given: what a file needs, without the space to hold it."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n

    def flush(self) -> None:
        pass


def _disk_full(err: BaseException, path: Path, write, what: str) -> DiskFullError | None:
    """The DiskFullError `err` stands for, or None when it is not a full disk. An OSError says ENOSPC itself;
    torch.save reports a failed write as a RuntimeError without errno, so that counts only when the filesystem
    (os.statvfs, after the temporary file is gone) has less room than the file needs."""
    enospc = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
    torch_write = isinstance(err, RuntimeError) and any(
        k in str(err) for k in ("inline_container", "PytorchStreamWriter", "file write failed"))
    if not (enospc or torch_write):
        return None
    try:
        stats = os.statvfs(path.parent)
        free = stats.f_bavail * stats.f_frsize
        counter = _Counter()
        write(counter)
        needed = counter.size
    except Exception:  # noqa: BLE001 - the size is for the message only; never hide the original error
        if not enospc:
            return None
        free, needed = None, None
    if not enospc and needed <= free:
        return None  # room enough: torch failed for another reason
    sizes = f" ({what} needs {needed / MB:.1f} MB, {free / MB:.1f} MB free)" if needed is not None else ""
    return DiskFullError(f"no space left on device writing {path}{sizes}; free some space (or choose a folder on "
                         "another filesystem) and run the same command again to resume", path)


def _create_temp(path: Path) -> tuple[int, str]:
    # Not tempfile.mkstemp: it creates files 0600 whatever the umask, and a run folder on a shared filesystem
    # must be readable by the group when the umask says so. open(2) with 0o666 applies the umask as usual.
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def save_json(path: Path, data: Any) -> None:
    text = (json.dumps(data, indent=2, default=str) + "\n").encode()
    atomic_write(path, lambda f: f.write(text), what="the file")


def load_json(path: Path) -> dict:
    """A run's JSON file (metrics.json): an object, or a CheckpointError naming the file."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); move it away to start this run over") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not a run's record (an object); move it "
                              "away to start this run over")
    return data
