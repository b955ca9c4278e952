"""One writer per output folder: an OS file lock on `FOLDER/.lock`.

    >>> from vggcore.lock import folder_lock
    >>> with folder_lock("runs/a"):          # a second process on runs/a now gets FolderLocked at once
    ...     train(..., out="runs/a")

The lock is a POSIX record lock (`fcntl(2)` through `fcntl.lockf`) on a file inside the folder, so the kernel drops
it when the holder exits in any way, SIGKILL and the OOM killer included: there is never a stale lock to clean up
by hand. Unlike `flock(2)`, a record lock belongs to the process, not to the open file, so forked children
(DataLoader workers) that outlive a killed holder for a few seconds do not keep the folder locked. The holder writes its pid,
host and start time into the file so the refusal can say who holds it. The file itself is never deleted (deleting
it would let a third process lock a fresh inode while the second still waits on the old one).

Within one process the lock is re-entrant: a driver that holds a study folder can call code that takes it again.
Under data-parallel training take it on rank 0 only (`folder_lock(out) if rank == 0 else nullcontext()`).
Works on local filesystems and on network filesystems with POSIX locking (NFS on Linux forwards it to the server).
A record lock is dropped when the process closes any descriptor of the file, so nothing here opens `.lock` again
while holding it (re-entry is counted in memory instead).

A folder the lock created is removed again, `.lock` and all, when the block leaves nothing else in it: a command
refused before it starts (a bad option found late, a missing dataset) leaves no folder behind. The file is
unlinked while still locked, so a process that opened it a moment before is refused as usual; one that opens the
path afterwards creates a new folder of its own.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from vggcore.errors import UserError

LOCK_FILE = ".lock"

_held: dict[str, int] = {}     # resolved folder -> nesting depth, for re-entry within this process
_held_guard = threading.Lock()


class FolderLocked(UserError, ValueError):
    """Another process works in this folder."""


class NotAFolder(UserError, NotADirectoryError):
    """An output folder's path names a file."""


class FolderNotWritable(UserError, PermissionError):
    """An output folder that cannot be created, written or locked."""


def _holder(path: Path) -> dict:
    # The holder writes its details just after locking; give it a moment before reporting "unknown".
    for _ in range(20):
        try:
            text = path.read_text()
            if text.strip():
                info = json.loads(text)
                return info if isinstance(info, dict) else {}
        except (OSError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    return {}


def describe_holder(folder: str | Path) -> str:
    info = _holder(Path(folder) / LOCK_FILE)
    if not info:
        return "another process (pid unknown)"
    return f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('started')})"


@contextmanager
def folder_lock(folder: str | Path, what: str = "output folder") -> Iterator[Path]:
    """Hold `folder` (created if missing) for the duration of the block; raise FolderLocked at once if another
    process holds it. Yields the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotAFolder(f"{what} {folder} is a file, not a folder; choose a folder path")
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FolderNotWritable(f"cannot create {what} {folder}: {err.strerror or err}") from None
    key = str(folder.resolve())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield folder
        finally:
            with _held_guard:
                _held[key] -= 1
        return

    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # mode 0o666 less the umask, like any file we write
    except OSError as err:
        _remove_if_empty(folder, created)
        raise FolderNotWritable(f"cannot write to {what} {folder}: {err.strerror or err}") from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.EACCES, errno.EAGAIN):
            raise FolderNotWritable(f"cannot lock {what} {folder}: {err.strerror or err}") from None
        raise FolderLocked(f"{what} {folder} is in use by {describe_holder(folder)}; wait for it to finish, "
                           "or use another folder") from None
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        with _held_guard:
            _held[key] = 1
        yield folder
    finally:
        with _held_guard:
            _held.pop(key, None)
        try:
            os.ftruncate(fd, 0)  # the details describe a holder; none is left
        except OSError:
            pass
        if created and _only_the_lock(folder):
            path.unlink(missing_ok=True)  # while still locked: see the module's doc
        os.close(fd)  # releases the lock
        _remove_if_empty(folder, created)


def _only_the_lock(folder: Path) -> bool:
    try:
        return [p.name for p in folder.iterdir()] == [LOCK_FILE]
    except OSError:
        return False


def _remove_if_empty(folder: Path, created: list[Path]) -> None:
    """Remove the folders this lock created, deepest first, as far as they are empty."""
    for path in created:
        try:
            path.rmdir()  # fails, harmlessly, once anything is in it
        except OSError:
            return
