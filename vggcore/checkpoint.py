"""Atomic writes and guarded reads for checkpoints and JSON results."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


class CheckpointError(UserError, ValueError):
    """A checkpoint or metrics file that cannot be trusted: the run refuses to go on rather than start over."""


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`: a crash leaves the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, default=str) + "\n").encode()))


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); move it away to start this run over") from None


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); refusing to start over on top of "
                              "it: move it away to retrain from scratch") from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise CheckpointError(f"checkpoint {path} is not a vggbench checkpoint")
    return state
