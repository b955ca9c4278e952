"""Training with the paper's protocol (section 3.1), resumable from a checkpoint after every epoch.

    >>> from vggcore.config import DataConfig, TrainConfig, VGGConfig
    >>> from vggcore.train.loop import train
    >>> result = train(VGGConfig("A", batch_norm=True, width=0.25, image_size=32),
    ...                DataConfig("digits", augment="crop_flip"), TrainConfig(epochs=10, batch_size=64),
    ...                out="runs/a")
    >>> result["status"], result["final"]["test_top1_error"]

Every epoch re-seeds each of its random streams from (seed, epoch, stream, rank) (`vggcore.seeds`), so a run
resumed from its checkpoint repeats exactly what the uninterrupted run would have done on the same device. The
scheme of that derivation is recorded in the checkpoint and metrics.json: a run started under an older scheme
resumes under it. Each step is `vggcore.train.step.train_step`, the step the benchmarks time.

Under torchrun the same call trains data-parallel (`vggcore.train.distributed`): `batch_size` stays the global batch,
each rank takes its slice of every step's images and DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import torch

from vggcore.config import DataConfig, RunConfig, TrainConfig, VGGConfig, LATER_FIELDS
from vggcore.device import device_unavailable_reason
from vggcore.model.network import VGG, build, init_from
from vggcore.provenance import provenance
from vggcore.results import STATUSES
from vggcore.threads import torch_threads
from vggcore.files import CheckpointError, load_json, save_json
from vggcore.train.checkpoint import load_checkpoint, load_state, save_checkpoint
from vggcore.train.distributed import all_gather_ints, setup, teardown
from vggcore.train.epoch import Diverged
from vggcore.seeds import LEGACY, SCHEME, SCHEMES
from vggcore.train.trainer import Trainer
from vggcore.world import World, WorldError, per_rank
from vggcore.validation import ConfigError



def train(model_config: VGGConfig, data_config: DataConfig, train_config: TrainConfig, *,
          out: str | Path | None = None, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, backend: str = "auto") -> dict:
    """Train, evaluate on the test split, and return the result record (also `out/metrics.json`).

    With `out`, a checkpoint is written after every epoch and an existing one is resumed; a finished run is
    returned as is. The model's num_classes is taken from the dataset, and the record's `config` is the
    configuration the run resolved (`RunConfig.to_json`). Under torchrun (RANK, WORLD_SIZE, ... in the
    environment) the run is data-parallel over the group, `backend` gloo/nccl/auto; rank 0 alone writes. The
    run trains on `train_config.threads` torch threads (under torchrun on a CPU: the rank's share of the cores;
    a resumed run: the count it started on), and the caller's count is put back after it.
    """
    if train_config.sync_bn and not model_config.batch_norm:
        raise ConfigError("sync_bn converts BatchNorm to SyncBatchNorm, but this network has no BatchNorm "
                          "(set batch_norm / --batch-norm, or drop sync_bn / --sync-bn)", ("sync_bn", "batch_norm"),
                          train_config.sync_bn)
    # Checked here, on the machine that runs the run (a Ray worker may have a GPU its driver lacks).
    reason = device_unavailable_reason(train_config.device)
    if reason:
        raise ConfigError(f"device {train_config.device!r} is not available on this machine: {reason}",
                          ("device",), train_config.device)
    world = setup(train_config.device, backend, threads=train_config.threads)
    try:
        with torch_threads(world.threads):
            if train_config.nproc > 1 and world.world_size != train_config.nproc:
                raise WorldError(f"this run asks for nproc={train_config.nproc} processes but runs in a world of "
                                 f"{world.world_size}; launch it with torchrun --nproc_per_node={train_config.nproc}")
            per_rank(train_config.batch_size, world.world_size)
            scheme = (_scheme_in(Path(out)) if out is not None else None) or SCHEME
            return _fit(model_config, data_config, train_config, out=out, progress=progress and world.is_main,
                        on_epoch=on_epoch if world.is_main else None, world=world, scheme=scheme)[1]
    finally:
        teardown(world)


def resume_threads(started_on: int | None, ckpt_path: Path):
    """The thread count a resumed run trains on: the one it started with (its checkpoint's `threads`), since
    results depend on it through the order of reductions, so a run cut on 1 thread and resumed on 2 would not be
    the run it was. A checkpoint from before the count was kept has none and changes nothing. Returns the
    `torch_threads` block to run in; it says in one line when it changes the count."""
    now = torch.get_num_threads()
    if started_on is not None and started_on != now:
        import sys

        print(f"{ckpt_path.parent}: resumed on {started_on} torch thread(s), as the run started (this process had "
              f"{now})", file=sys.stderr)
    return torch_threads(started_on)


def _fit(model_config: VGGConfig, data_config: DataConfig, train_config: TrainConfig, *, out, progress,
         on_epoch, world: World, scheme: str) -> tuple[VGG | None, dict]:
    out = Path(out) if out is not None else None
    trainer = Trainer(model_config, data_config, train_config, world, scheme)
    config = RunConfig(trainer.model_config, data_config, train_config).to_json()
    ckpt_path, metrics_path = (out / "checkpoint.pt", out / "metrics.json") if out else (None, None)
    writer = world.is_main  # rank 0 alone writes checkpoints and metrics

    if metrics_path is not None and metrics_path.exists():
        done = load_json(metrics_path)
        _same_config(done.get("config"), config, metrics_path)
        if done.get("status") in STATUSES:
            return None, {**done, "resumed": "complete"}

    pretrain = None
    if train_config.init_from_a_epochs and trainer.model_config.arch != "A":
        a_config = dataclasses.replace(trainer.model_config, arch="A")
        a_model, pretrain = _fit(a_config, data_config,
                                 dataclasses.replace(train_config, epochs=train_config.init_from_a_epochs,
                                                     init_from_a_epochs=0),
                                 out=out / "pretrain-A" if out else None, progress=progress, on_epoch=None,
                                 world=world, scheme=scheme)
        if a_model is None:  # finished earlier: its weights are in its checkpoint
            a_model = build(a_config)
            a_path = out / "pretrain-A" / "checkpoint.pt"
            load_state(a_model, load_checkpoint(a_path)["model"], a_path, "model")
        init_from(trainer.model, a_model.to(world.device))
        pretrain = {"epochs": train_config.init_from_a_epochs, "final": pretrain.get("final")}
    history: list[dict] = []
    resumed_from = 0
    with ExitStack() as stack:
        if ckpt_path is not None and ckpt_path.exists():
            state = load_checkpoint(ckpt_path)  # every rank reads the same file (a shared filesystem across machines)
            _same_config(state["config"], config, ckpt_path)
            _same_world(state.get("world_size", 1), world.world_size, ckpt_path)
            if _recorded_scheme(state, ckpt_path) != scheme:
                raise CheckpointError(f"{ckpt_path} was written under seed scheme "
                                      f"{_recorded_scheme(state, ckpt_path)!r} but its folder's other files under "
                                      f"{scheme!r}; refusing to mix runs")
            trainer.load(state, ckpt_path)
            stack.enter_context(resume_threads(state.get("threads"), ckpt_path))
            history, resumed_from = state["history"], state["epoch"]
            pretrain = state.get("pretrain", pretrain)
        trainer.distribute()  # DDP in a world of N; the network itself in one process
        record = _epochs(trainer, config, history, resumed_from, pretrain, ckpt_path, metrics_path, writer,
                         progress, on_epoch)
    if metrics_path is not None and writer:
        save_json(metrics_path, record)
    return trainer.model, record


def _epochs(trainer: Trainer, config: dict, history: list[dict], resumed_from: int, pretrain: dict | None,
            ckpt_path: Path | None, metrics_path: Path | None, writer: bool, progress: bool,
            on_epoch: Callable[[dict], None] | None) -> dict:
    """The epochs left, a checkpoint after each, then the test split: the run's result record."""
    world, tc = trainer.world, trainer.config
    record = {"config": config, "status": "running", "history": history, "final": None,
              "provenance": provenance(tc.device.split(":")[0]), "resumed_from_epoch": resumed_from,
              "pretrain": pretrain, "world_size": world.world_size, "backend": world.backend,
              "rank_threads": all_gather_ints(world, torch.get_num_threads()), "seed_scheme": trainer.scheme}
    bar = _progress(progress, tc.epochs, resumed_from, trainer.model_config.name)
    try:
        for epoch in range(resumed_from, tc.epochs):
            row = trainer.epoch(epoch)
            history.append(row)
            if ckpt_path is not None and writer:
                save_checkpoint(ckpt_path, {"format": 1, "config": config, "epoch": epoch + 1, **trainer.state(),
                                            "history": history, "pretrain": pretrain,
                                            "world_size": world.world_size, "seed_scheme": trainer.scheme,
                                            "threads": torch.get_num_threads()})
                save_json(metrics_path, record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_err=f"{row['val_top1_error']:.3f}",
                                lr=f"{row['lr']:.2g}")
            if on_epoch is not None:
                on_epoch(row)
    except Diverged as err:
        record.update(status="diverged", diverged_epoch=len(history) + 1, error=str(err))
    finally:
        if bar is not None:
            bar.close()
    if record["status"] == "running":
        test = trainer.test()
        record.update(status="ok", final={
            "test_top1_error": test["top1_error"], "test_top5_error": test["top5_error"], "test_loss": test["loss"],
            "val_top1_error": history[-1]["val_top1_error"] if history else None,
            "train_seconds": sum(h["epoch_seconds"] for h in history),
            "epochs": len(history)})
    return record


def _recorded_scheme(record: dict, path: Path) -> str:
    """The seed scheme `record` (a checkpoint or metrics.json) was written under; LEGACY where it names none."""
    scheme = record.get("seed_scheme", LEGACY)
    if scheme not in SCHEMES:
        raise CheckpointError(f"{path} was written under seed scheme {scheme!r}, which this vggcore does not know "
                              f"(it knows {', '.join(SCHEMES)}); resume it with the vggcore that wrote it")
    return scheme


def _scheme_in(out: Path) -> str | None:
    """The seed scheme of what `out` holds from an earlier start of this run (its metrics, its checkpoint, or a
    finished pre-training of net A), or None for a folder without any: a run keeps the scheme it began under."""
    for path, read in ((out / "metrics.json", load_json), (out / "checkpoint.pt", load_checkpoint)):
        if path.exists():
            return _recorded_scheme(read(path), path)
    return _scheme_in(out / "pretrain-A") if (out / "pretrain-A").is_dir() else None


def _same_world(saved: int, current: int, path: Path) -> None:
    # Each rank's slices, augmentation draws and BatchNorm statistics depend on the world size, so a checkpoint
    # resumes only in a world of the size that wrote it.
    if saved != current:
        how = (f"torchrun --nproc_per_node={saved} ... (in total {saved} processes)" if saved > 1
               else "a single process (no torchrun)")
        raise CheckpointError(f"{path} was written by a world of {saved} process{'es' if saved > 1 else ''}, "
                              f"this run has {current}; resume it with {how}, or use another output folder")


def _same_config(saved: dict | None, current: dict, path: Path) -> None:
    if saved == current:
        return
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} has no recorded configuration; refusing to mix runs")
    diffs = [f"{section}.{key}: {saved.get(section, {}).get(key)!r} there, {value!r} now"
             for section, fields in current.items() for key, value in fields.items()
             if saved.get(section, {}).get(key, LATER_FIELDS.get((section, key), None)) != value]
    if not diffs:  # only fields added since, at their defaults: the same run
        return
    raise CheckpointError(f"{path.parent} holds a run with a different configuration ({'; '.join(diffs[:3])}); "
                          "use another output folder")


def _progress(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="epoch", leave=False)



