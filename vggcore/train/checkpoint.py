"""Checkpoints: a run's weights, SGD state, schedule and history after every epoch, written atomically
(`vggcore.files.atomic_write`: a full disk is one `DiskFullError`, torch.save's own words for it being
`RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ...`) and read back without running any
pickled code."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vggcore.files import CheckpointError, atomic_write


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f), what="the checkpoint")


# What every checkpoint `vggcore.train.loop` writes holds; a file without one of them is not one of ours.
CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "schedule", "history")


def load_checkpoint(path: Path) -> dict:
    """A vggbench checkpoint, read with `weights_only=True` (tensors and plain containers only: a pickled global
    is refused before anything runs), or a CheckpointError naming the file and what was wrong."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        text = str(err)
        refused = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", text, re.I)
        if refused:  # torch's own message would advise weights_only=False, which would run the file's code
            raise CheckpointError(f"refused to load checkpoint {path}: it names {refused.group(1).rstrip('.,;')}, "
                                  "which a vggbench checkpoint never contains; nothing in it was run") from None
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: "
                              f"{text.splitlines()[0] if text else ''}); refusing to start over on top of "
                              "it: move it away to retrain from scratch") from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise CheckpointError(f"checkpoint {path} is not a vggbench checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: not a whole vggbench checkpoint; move "
                              "it away to retrain from scratch")
    return state


def load_state(module, state: dict, path: Path, what: str) -> None:
    """`module.load_state_dict(state)` with a CheckpointError naming the file when the shapes or keys do not fit
    (a checkpoint of another network under the same configuration is a foreign file)."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path}: its {what} state does not fit this run ({first[:200]}); move it "
                              "away to retrain from scratch") from None



