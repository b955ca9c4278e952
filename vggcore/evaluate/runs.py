"""Test protocols on a run folder: score its checkpoint on its test split, keep the result in its metrics.json.

    entries = evaluate_run("runs/a", [Protocol("dense", "multi"), Protocol("multicrop")])
    record_evaluations("runs/a", entries)     # metrics.json["evaluations"]: one entry per protocol

The data and the net come from the run itself: the configuration its checkpoint holds, its dataset and split, its
weights. The training's own results (status, history, final) are never touched: protocol results live in a list
of their own, `evaluations`, one entry per key (protocol, scales, flip, crops), so the same evaluation recorded
again replaces its entry (with the same numbers: evaluation is deterministic on one device) instead of adding one.

Entry fields: protocol, scales (pixels), flip, crops (None unless the protocol takes crops), views (forward passes
per image), split ("test"), images, top1_error, top5_error, loss, checkpoint_epoch (the epoch whose weights were
scored), run_status (of the run when it was scored), seconds, evaluated (ISO time, UTC), provenance.

An interrupted run can be scored too (its last checkpoint). When it later resumes, training writes metrics.json
afresh and those entries go, since they scored weights the run has moved on from; a finished run keeps them.
Only in-memory datasets (digits, cifar10, cifar100, synthetic) are scored here: imagefolder's val images have
sizes of their own, which the batched views below do not handle yet.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch

from vggcore.files import CheckpointError, load_json, save_json
from vggcore.train.checkpoint import load_checkpoint, load_state
from vggcore.config import IN_MEMORY, DataConfig, RunConfig, VGGConfig
from vggcore.data.datasets import load
from vggcore.errors import UserError
from vggcore.evaluate.score import probability_batches, score
from vggcore.device import device_unavailable_reason
from vggcore.model.network import build
from vggcore.evaluate.protocols import Protocol, Resolved, resolve
from vggcore.provenance import provenance
from vggcore.validation import ConfigError

EVALUATIONS = "evaluations"     # the metrics.json key of the protocol entries


class RunFolderError(UserError, FileNotFoundError):
    """A run folder without what a protocol evaluation needs (no checkpoint, no record)."""


@dataclasses.dataclass
class TrainedRun:
    """A run folder's net and test split, ready to score."""
    folder: Path
    model: VGGConfig
    data: DataConfig
    net: torch.nn.Module
    epoch: int                         # the checkpoint's finished epochs
    status: str | None                 # metrics.json's status (running for an interrupted run)
    device: str
    batch_size: int
    autocast_dtype: torch.dtype | None

    def resolve(self, protocol: Protocol) -> Resolved:
        s_min, s_max = self.data.scales(self.model.image_size)
        return resolve(protocol, self.model.image_size, self.model.pool_size, s_min, s_max)


def _config(config: object, path: Path) -> tuple[VGGConfig, DataConfig, dict]:
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("model", "data", "train")):
        raise CheckpointError(f"{path} has no recorded model/data/train configuration; cannot tell what to score")
    try:
        run = RunConfig.from_json({k: config[k] for k in ("model", "data", "train")})
        return run.model, run.data, config["train"]
    except (TypeError, ConfigError) as err:
        raise CheckpointError(f"{path}: its configuration does not fit this vggcore ({err}); score it with the "
                              "vggcore that wrote it") from None


def check_run_folder(folder: Path) -> None:
    """RunFolderError unless `folder` holds a checkpoint and a metrics.json."""
    if not folder.is_dir():
        raise RunFolderError(f"run folder {folder} {'is a file' if folder.exists() else 'does not exist'}; give the "
                             "--out folder of a `python -m vggcore train` run")
    ckpt, metrics = folder / "checkpoint.pt", folder / "metrics.json"
    if not ckpt.is_file():
        raise RunFolderError(f"run folder {folder} has no checkpoint.pt, so there are no weights to score; give "
                             "the --out folder of a run that finished at least one epoch")
    if not metrics.is_file():
        raise RunFolderError(f"run folder {folder} has a checkpoint but no metrics.json to record the result in; "
                             "resume the run first (its train command again)")


def open_run(folder: str | Path, device: str | None = None) -> TrainedRun:
    """The net in `folder`'s checkpoint, on `device` (default: the run's own)."""
    folder = Path(folder)
    check_run_folder(folder)
    ckpt, metrics = folder / "checkpoint.pt", folder / "metrics.json"
    state = load_checkpoint(ckpt)
    model_config, data_config, train = _config(state["config"], ckpt)
    if data_config.dataset not in IN_MEMORY:
        raise RunFolderError(f"run {folder} trained on {data_config.dataset}; protocol evaluation scores the "
                             f"in-memory datasets only ({', '.join(IN_MEMORY)})")
    device = device or train.get("device", "cpu")
    reason = device_unavailable_reason(device)
    if reason:
        raise ConfigError(f"device {device!r} is not available on this machine: {reason}", ("device",), device)
    net = build(model_config)
    load_state(net, state["model"], ckpt, "model")
    return TrainedRun(folder, model_config, data_config, net.to(device).eval(), int(state["epoch"]),
                      load_json(metrics).get("status"), device, int(train.get("eval_batch_size", 500)),
                      torch.bfloat16 if train.get("bf16") else None)


def evaluate_run(folder: str | Path | TrainedRun, protocols: Sequence[Protocol], device: str | None = None,
                 progress: bool = False) -> list[dict]:
    """One entry per protocol (in order) for the run's test split; nothing is written. `progress`: a bar per
    protocol on stderr over the test images, with the views per image and the top-1 error so far."""
    run = folder if isinstance(folder, TrainedRun) else open_run(folder, device)
    views = [run.resolve(p) for p in protocols]   # every protocol checked before the data is read
    data = load(run.data, run.model.image_size).to(run.device)
    entries = []
    for v in views:
        start = time.perf_counter()
        batches = probability_batches(run.net, data.test.images, data.test.labels, data.mean_rgb, v,
                                      batch_size=run.batch_size, autocast_dtype=run.autocast_dtype)
        errors = score(run.net, _with_bar(batches, v, len(data.test)) if progress else batches, probabilities=True)
        entries.append({**v.to_json(), "split": "test", "images": len(data.test), "top1_error": errors["top1_error"],
                        "top5_error": errors["top5_error"], "loss": errors["loss"], "checkpoint_epoch": run.epoch,
                        "run_status": run.status, "seconds": time.perf_counter() - start,
                        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "provenance": provenance(run.device.split(":")[0])})
    return entries


def _with_bar(batches, views: Resolved, images: int):
    """The (posteriors, labels) batches as they are, a tqdm bar on stderr counting their images meanwhile."""
    from tqdm.auto import tqdm

    bar = tqdm(total=images, desc=f"evaluate {views.protocol}", unit="img", leave=False)
    wrong = seen = 0
    try:
        for probs, labels in batches:
            wrong += int((probs.argmax(1) != labels).sum())
            seen += len(labels)
            bar.set_postfix(views=views.views, top1_err=f"{wrong / seen:.4f}", refresh=False)
            bar.update(len(labels))
            yield probs, labels
        bar.refresh()   # the last state shown, whatever tqdm's rate limit skipped
    finally:
        bar.close()


def entry_key(entry: dict) -> tuple:
    """An entry's key: (protocol, scales, flip, crops), as `Resolved.key` gives it."""
    return (entry.get("protocol"), tuple(entry.get("scales") or ()), entry.get("flip"), entry.get("crops"))


def record_evaluations(folder: str | Path, entries: Sequence[dict]) -> list[str]:
    """Merge `entries` into the folder's metrics.json (an entry of the same key is replaced in place) and return,
    per entry, "added" or "replaced". The rest of the file is left as it was."""
    path = Path(folder) / "metrics.json"
    record = load_json(path)
    kept = record.get(EVALUATIONS)
    kept = [e for e in kept if isinstance(e, dict)] if isinstance(kept, list) else []
    outcome = []
    for entry in entries:
        same = [i for i, e in enumerate(kept) if entry_key(e) == entry_key(entry)]
        if same:
            kept[same[0]] = entry
            kept = [e for i, e in enumerate(kept) if i not in same[1:]]
            outcome.append("replaced")
        else:
            kept.append(entry)
            outcome.append("added")
    save_json(path, {**record, EVALUATIONS: kept})
    return outcome
