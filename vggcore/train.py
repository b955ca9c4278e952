"""Training with the paper's protocol (section 3.1), resumable from a checkpoint after every epoch.

    >>> from vggcore import VGGConfig
    >>> from vggcore.data import DataConfig
    >>> from vggcore.train import TrainConfig, train
    >>> result = train(VGGConfig("A", batch_norm=True, width=0.25, image_size=32),
    ...                DataConfig("digits", augment="crop_flip"), TrainConfig(epochs=10, batch_size=64),
    ...                out="runs/a")
    >>> result["status"], result["final"]["test_top1_error"]

Every epoch re-seeds each of its random streams from (seed, epoch, stream, rank) (`vggcore.seeds`), so a run
resumed from its checkpoint repeats exactly what the uninterrupted run would have done on the same device. The
scheme of that derivation is recorded in the checkpoint and metrics.json: a run started under an older scheme
resumes under it. Each step is `vggcore.step.train_step`, the step the benchmarks time.

Under torchrun the same call trains data-parallel (`vggcore.distributed`): `batch_size` stays the global batch,
each rank takes its slice of every step's images and DistributedDataParallel averages the gradients.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable, Iterator

import torch

from .checkpoint import CheckpointError, load_checkpoint, load_json, load_state, save_checkpoint, save_json
from .config import VGGConfig
from .data import DataConfig, Dataset, load
from .distributed import World, WorldError, all_gather_ints, all_sum, guarded, per_rank, setup, shard, \
    teardown, wrap_model
from .evaluate import centre_batches, score
from .measure import device_unavailable_reason, synchronize
from .model import VGG, build, init_from
from .provenance import provenance
from .schedules import SCHEDULES, Schedule
from .seeds import LEGACY, SCHEME, SCHEMES, stream_seed
from .step import micro_batches, sgd, train_step
from .transforms import Augment, augment_batch, preset
from .validation import SEED_MAX, Check, ConfigError, boolean, check_fields, choice, integer, number, optional

DEVICE_FORMS = "cpu, cuda, cuda:N or mps"

STATUSES = ("ok", "diverged", "failed")
# Fields added after runs were already recorded, with the value that reproduces those runs: a checkpoint
# without them is the same run when they are at these values.
LATER_FIELDS = {("train", "sync_bn"): False, ("train", "nproc"): 1, ("train", "bn_recalibrate"): 0}


def _device_form(name: str, value: object) -> None:
    """The device's spelling only: whether it exists is checked on the machine that runs the run (`_fit`)."""
    kind, _, index = value.partition(":") if isinstance(value, str) else ("", "", "")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise ConfigError(f"unknown device {value!r}; choose {DEVICE_FORMS}", (name,), value)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 74                 # the paper's 370K iterations at batch 256 on ImageNet
    batch_size: int = 256            # effective batch: images per SGD step
    micro_batch: int | None = None   # images per forward/backward; smaller than batch_size -> accumulation
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"        # plateau (the paper), step, cosine, constant
    warmup_epochs: int = 0           # linear lr warm-up epochs
    gamma: float = 0.1               # lr factor of plateau and step
    step_epochs: int = 10            # step: epochs between drops
    patience: int = 2                # plateau: epochs without val-accuracy gain before a drop
    max_drops: int = 3               # plateau: the paper dropped 3 times
    bf16: bool = False               # bf16 autocast for forward/backward
    channels_last: bool = False      # NHWC memory format
    device: str = "cpu"
    seed: int = 0                    # init, batch order, augmentation and dropout
    eval_batch_size: int = 500
    init_from_a_epochs: int = 0      # > 0: first train net A this long and copy it in (the paper's pre-init)
    threads: int | None = None       # torch intra-op threads; None leaves torch's default (under torchrun on
                                     # CPU: the machine's cores split between its ranks)
    sync_bn: bool = False            # data-parallel: SyncBatchNorm normalises over the global batch (needs
                                     # batch_norm); False: each rank normalises over its own slice
    nproc: int = 1                   # processes the ablation executors launch for this run (torchrun); 1 leaves
                                     # the world size to whoever launched train()
    bn_recalibrate: int = 0          # > 0: before every evaluation, BatchNorm's statistics recomputed over this
                                     # many training batches (precise BN); 0 keeps the running estimates

    CHECKS: ClassVar[dict[str, Check]] = {
        "epochs": integer(1), "batch_size": integer(1), "micro_batch": optional(integer(1)),
        "lr": number(0, low_open=True), "momentum": number(0, 1, high_open=True), "weight_decay": number(0),
        "schedule": choice(SCHEDULES, "schedule"), "warmup_epochs": integer(0), "gamma": number(0, 1, low_open=True),
        "step_epochs": integer(1), "patience": integer(0), "max_drops": integer(0), "bf16": boolean,
        "channels_last": boolean, "device": _device_form, "seed": integer(0, SEED_MAX), "eval_batch_size": integer(1),
        "init_from_a_epochs": integer(0), "threads": optional(integer(1)), "sync_bn": boolean,
        "nproc": integer(1), "bn_recalibrate": integer(0)}

    def __post_init__(self) -> None:
        check_fields(self, self.CHECKS)
        if self.micro_batch is not None and self.micro_batch > self.batch_size:
            raise ConfigError(f"micro_batch must be between 1 and batch_size ({self.batch_size}), got "
                              f"{self.micro_batch}", ("micro_batch", "batch_size"), self.micro_batch)
        if self.nproc > 1 and self.batch_size % self.nproc:
            try:
                per_rank(self.batch_size, self.nproc)
            except ValueError as err:
                raise ConfigError(str(err), ("batch_size", "nproc"), self.batch_size) from None


class Diverged(Exception):
    pass


def resolved_config(model: VGGConfig, data: DataConfig, train: TrainConfig) -> dict:
    return {"model": dataclasses.asdict(model), "data": dataclasses.asdict(data), "train": dataclasses.asdict(train)}


# --------------------------------------------------------------------------------------------- the data side
class Batches:
    """Training and evaluation batches as float tensors on the device, from either data path.

    `train` yields (images, labels, global batch size): in a world of N ranks, this rank's slice of a global
    batch. `evaluation` yields this rank's share of a split, every image in exactly one rank's share.
    """

    def __init__(self, data_config: DataConfig, model_config: VGGConfig, train_config: TrainConfig,
                 world: World | None = None) -> None:
        self.world = world or World(device=train_config.device)
        self.size = model_config.image_size
        self.scale_min, self.scale_max = data_config.scales(self.size)
        self.aug: Augment = preset(data_config.augment)
        self.device = self.world.device
        self.batch_size, self.eval_batch_size = train_config.batch_size, train_config.eval_batch_size
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.folder = data_config.dataset == "imagefolder"
        if self.folder and train_config.bn_recalibrate:
            raise ConfigError("bn_recalibrate draws its batches from the in-memory training split; imagefolder "
                              "data is streamed (set bn_recalibrate 0)", ("bn_recalibrate", "dataset"),
                              train_config.bn_recalibrate)
        if self.folder:
            from .folder import loaders

            self.train_loader, self.val_loader, self.num_classes, self.mean_rgb = loaders(
                data_config, self.size, train_config.batch_size, train_config.seed,
                rank=self.world.rank, world_size=self.world.world_size)
            self.data: Dataset | None = None
            self.train_size = len(self.train_loader.dataset)
        else:
            self.data = load(data_config, self.size).to(self.device)
            self.num_classes, self.mean_rgb = self.data.num_classes, self.data.mean_rgb
            self.train_size = len(self.data.train)
            if self.train_size < 2:
                raise ConfigError(f"the training split of {data_config.dataset} has {self.train_size} image(s), "
                                  "fewer than the 2 a step needs", ("dataset",), data_config.dataset)

    def _ready(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def train(self, epoch: int, seed: int, scheme: str = SCHEME) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """`scheme`: the run's seed scheme (`vggcore.seeds`), the one it was started under."""
        gen = torch.Generator().manual_seed(stream_seed(scheme, seed, epoch, "order"))
        world = self.world
        # In a world of N, each rank draws its own augmentation (seeded by rank and epoch) for its slice only,
        # so no rank augments images it does not train on; the permutation is the same on every rank.
        aug_gen = gen if not world.distributed else torch.Generator().manual_seed(
            stream_seed(scheme, seed, epoch, "augment", world.rank))
        if self.folder:
            self.train_loader.sampler.set_epoch(epoch)  # order and per-image draws follow (seed, epoch)
            colour_only = Augment(color=self.aug.color)
            for images, labels in self.train_loader:
                images = images.to(self.device, non_blocking=True)
                x = augment_batch(images, self.size, self.size, self.size, colour_only, self.mean_rgb, aug_gen)
                yield self._ready(x), labels.to(self.device, non_blocking=True), len(labels) * world.world_size
            return
        split = self.data.train
        n = len(split)
        perm = torch.randperm(n, generator=gen).to(self.device)
        # Drop a last batch smaller than half a batch (BatchNorm needs >1 image; tiny batches add noise).
        stop = n if n % self.batch_size >= max(2, self.batch_size // 2) else n - n % self.batch_size or n
        for i in range(0, stop, self.batch_size):
            idx = perm[i:i + self.batch_size]
            if world.distributed:
                if len(idx) < world.world_size:  # a last batch too small to give every rank an image
                    break
                idx = idx[shard(len(idx), world)]  # this rank's contiguous slice of the global batch
            x = augment_batch(split.images[idx], self.size, self.scale_min, self.scale_max, self.aug,
                              self.mean_rgb, aug_gen)
            yield self._ready(x), split.labels[idx], len(perm[i:i + self.batch_size])

    def calibration(self, batches: int) -> Iterator[torch.Tensor]:
        """The first `batches` training batches in the split's order, seen as evaluation sees images (centre, no
        augmentation, no random draw): the same images on every rank, so every rank's BatchNorm agrees."""
        split = self.data.train
        n = min(len(split), batches * self.batch_size)
        for x, _ in centre_batches(split.images[:n], split.labels[:n], self.mean_rgb, self.size, self.scale_min,
                                   self.batch_size):
            yield self._ready(x)

    def evaluation(self, which: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.folder:  # val/ serves as the test split, as in the paper
            for images, labels in self.val_loader:
                x = images.to(self.device).float().div_(255) - self.mean_rgb.to(self.device)[None, :, None, None]
                yield self._ready(x), labels.to(self.device)
            return
        split = getattr(self.data, which)
        mine = shard(len(split), self.world)  # the whole split in one process
        for x, y in centre_batches(split.images[mine], split.labels[mine], self.mean_rgb, self.size,
                                   self.scale_min, self.eval_batch_size):
            yield self._ready(x), y


# -------------------------------------------------------------------------------------------- the loop
def _epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, config: TrainConfig,
           epoch: int, world: World) -> dict:
    model.train()
    micro = config.micro_batch or config.batch_size
    dtype = "bf16" if config.bf16 else "fp32"
    seen, loss_sum, correct, data_s = 0, 0.0, 0, 0.0

    def check(batch_loss: float, batch_correct: int, n: int) -> tuple[float, int, int]:
        if world.distributed:  # every rank sees the global sums, so all stop together on divergence
            batch_loss, batch_correct, n = all_sum(world, [batch_loss, batch_correct, n])
        if not math.isfinite(batch_loss):
            raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
        return batch_loss, batch_correct, n

    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        try:
            x, y, global_n = next(batches)
        except StopIteration:
            break
        synchronize(world.device)
        data_s += time.perf_counter() - t0
        batch_loss, batch_correct, n = train_step(model, optimizer, micro_batches(x, y, micro, global_n, world),
                                                  global_n=global_n, world_size=world.world_size, dtype=dtype,
                                                  check=check)
        seen += int(n)
        correct += int(batch_correct)
        loss_sum += batch_loss
    synchronize(world.device)
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "epoch_seconds": seconds, "images_per_s": seen / seconds, "data_seconds": data_s,
            "data_fraction": data_s / seconds}


def make_schedule(train_config: TrainConfig) -> Schedule:
    """The learning-rate schedule of a run, spanning its `epochs`."""
    return Schedule(train_config.schedule, train_config.lr, train_config.epochs,
                    warmup_epochs=train_config.warmup_epochs, gamma=train_config.gamma,
                    step_epochs=train_config.step_epochs, patience=train_config.patience,
                    max_drops=train_config.max_drops)


def train_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, batches: Batches,
                config: TrainConfig, epoch: int, world: World, scheme: str = SCHEME) -> dict:
    """The training half of 0-based `epoch` as `train` runs it: the epoch's dropout seed and learning rate, then
    one pass over the training split. `net` is what trains (DDP in a world of N). Returns {"lr", **timings and
    training figures}; `validate_epoch` completes the history row. The time-to-accuracy benchmark
    (bench/tta.py) runs these two halves itself, so its runs are `train`'s runs stopped early."""
    # Dropout; data draws have their own. Rank 0 keeps the single-process stream, the others their own.
    torch.manual_seed(stream_seed(scheme, config.seed, epoch, "dropout", world.rank))
    lr = schedule.lr(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    stats = guarded(world, f"training epoch {epoch + 1}", lambda: _epoch(
        net, optimizer, batches.train(epoch, config.seed, scheme), config, epoch, world))
    return {"lr": lr, **stats}


def validate_epoch(model: VGG, schedule: Schedule, batches: Batches, config: TrainConfig, epoch: int,
                   world: World, trained: dict) -> dict:
    """The evaluation half of `epoch`: the validation split scored (every epoch: the cadence the plateau schedule
    and the time-to-accuracy benchmark rely on), the schedule told, and the epoch's history row returned."""
    if config.bn_recalibrate:
        recalibrate_bn(model, batches.calibration(config.bn_recalibrate), torch.bfloat16 if config.bf16 else None)
    val = score_split(model, batches, "val", world, torch.bfloat16 if config.bf16 else None)
    schedule.report(epoch, 1 - val["top1_error"])
    return {"epoch": epoch + 1, "lr": trained["lr"], **{k: v for k, v in trained.items() if k != "lr"},
            "val_loss": val["loss"], "val_top1_error": val["top1_error"], "val_top5_error": val["top5_error"]}


BATCH_NORMS = (torch.nn.BatchNorm2d, torch.nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, images: Iterable[torch.Tensor], autocast_dtype=None) -> None:
    """Precise BatchNorm (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): replace every BatchNorm's
    running mean and variance by their averages over `images`, batch by batch, before an evaluation.

    With a few dozen steps per epoch and momentum 0.1, the running estimates still weigh the first steps' (and the
    initial) statistics: after two epochs of digits at batch 64 a net at 97% with batch statistics scored 90% with
    its running ones. Training uses batch statistics, so this changes what evaluation sees and nothing of the
    training trajectory; only the BatchNorms are in training mode while it runs (dropout off: no random draw)."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    if not norms:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None    # a cumulative average over the batches below
        m.train()
    try:
        for x in images:
            with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


def train(model_config: VGGConfig, data_config: DataConfig, train_config: TrainConfig, *,
          out: str | Path | None = None, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, backend: str = "auto") -> dict:
    """Train, evaluate on the test split, and return the result record (also `out/metrics.json`).

    With `out`, a checkpoint is written after every epoch and an existing one is resumed; a finished run is
    returned as is. The model's num_classes is taken from the dataset. Under torchrun (RANK, WORLD_SIZE, ... in
    the environment) the run is data-parallel over the group, `backend` gloo/nccl/auto; rank 0 alone writes.
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
    run_threads = torch.get_num_threads()   # the count setup gave the run; a resume may change it (keep_threads)
    try:
        if train_config.nproc > 1 and world.world_size != train_config.nproc:
            raise WorldError(f"this run asks for nproc={train_config.nproc} processes but runs in a world of "
                             f"{world.world_size}; launch it with torchrun --nproc_per_node={train_config.nproc}")
        per_rank(train_config.batch_size, world.world_size)
        scheme = (_scheme_in(Path(out)) if out is not None else None) or SCHEME
        return _fit(model_config, data_config, train_config, out=out, progress=progress and world.is_main,
                    on_epoch=on_epoch if world.is_main else None, world=world, scheme=scheme)[1]
    finally:
        teardown(world)
        torch.set_num_threads(run_threads)   # undoes keep_threads alone: setup's count stays, as it always did


def keep_threads(started_on: int | None, ckpt_path: Path) -> None:
    """Resume on the torch thread count the run started with (its checkpoint's `threads`): results depend on it
    through the order of reductions, so a run cut on 1 thread and resumed on 2 would not be the run it was. A
    checkpoint from before the count was kept has none and changes nothing. `train` puts back the count it had
    before the resume."""
    if started_on is None or started_on == torch.get_num_threads():
        return
    print(f"{ckpt_path.parent}: resumed on {started_on} torch thread(s), as the run started (this process had "
          f"{torch.get_num_threads()})", file=sys.stderr)
    torch.set_num_threads(int(started_on))


def _fit(model_config: VGGConfig, data_config: DataConfig, train_config: TrainConfig, *, out, progress,
         on_epoch, world: World, scheme: str) -> tuple[VGG | None, dict]:
    out = Path(out) if out is not None else None
    batches = Batches(data_config, model_config, train_config, world)
    model_config = dataclasses.replace(model_config, num_classes=batches.num_classes)
    config = resolved_config(model_config, data_config, train_config)
    ckpt_path, metrics_path = (out / "checkpoint.pt", out / "metrics.json") if out else (None, None)
    device = world.device  # cuda:LOCAL_RANK under torchrun; the config keeps the device as asked
    writer = world.is_main  # rank 0 alone writes checkpoints and metrics

    if metrics_path is not None and metrics_path.exists():
        done = load_json(metrics_path)
        _same_config(done.get("config"), config, metrics_path)
        if done.get("status") in STATUSES:
            return None, {**done, "resumed": "complete"}

    torch.manual_seed(train_config.seed)
    model = build(model_config).to(device)
    pretrain = None
    if train_config.init_from_a_epochs and model_config.arch != "A":
        a_model, pretrain = _fit(dataclasses.replace(model_config, arch="A"), data_config,
                                 dataclasses.replace(train_config, epochs=train_config.init_from_a_epochs,
                                                     init_from_a_epochs=0),
                                 out=out / "pretrain-A" if out else None, progress=progress, on_epoch=None,
                                 world=world, scheme=scheme)
        if a_model is None:  # finished earlier: its weights are in its checkpoint
            a_model = build(dataclasses.replace(model_config, arch="A"))
            a_path = out / "pretrain-A" / "checkpoint.pt"
            load_state(a_model, load_checkpoint(a_path)["model"], a_path, "model")
        init_from(model, a_model.to(device))
        pretrain = {"epochs": train_config.init_from_a_epochs, "final": pretrain.get("final")}
    if train_config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = sgd(model.parameters(), train_config)
    schedule = make_schedule(train_config)
    history: list[dict] = []
    resumed_from = 0
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)  # every rank reads the same file (a shared filesystem across machines)
        _same_config(state["config"], config, ckpt_path)
        _same_world(state.get("world_size", 1), world.world_size, ckpt_path)
        if _recorded_scheme(state, ckpt_path) != scheme:
            raise CheckpointError(f"{ckpt_path} was written under seed scheme {_recorded_scheme(state, ckpt_path)!r} "
                                  f"but its folder's other files under {scheme!r}; refusing to mix runs")
        load_state(model, state["model"], ckpt_path, "model")
        load_state(optimizer, state["optimizer"], ckpt_path, "optimizer")
        load_state(schedule, state["schedule"], ckpt_path, "schedule")
        keep_threads(state.get("threads"), ckpt_path)
        history, resumed_from = state["history"], state["epoch"]
        pretrain = state.get("pretrain", pretrain)
    net = wrap_model(model, world, train_config.sync_bn)  # DDP in a world of N; `model` itself in one process
    if net is not model and train_config.sync_bn:
        model = net.module  # the SyncBatchNorm copy: checkpoints and evaluation use it

    record = {"config": config, "status": "running", "history": history, "final": None,
              "provenance": provenance(train_config.device.split(":")[0]), "resumed_from_epoch": resumed_from,
              "pretrain": pretrain, "world_size": world.world_size, "backend": world.backend,
              "rank_threads": all_gather_ints(world, torch.get_num_threads()), "seed_scheme": scheme}
    bar = _progress(progress, train_config.epochs, resumed_from, model_config.name)
    autocast_dtype = torch.bfloat16 if train_config.bf16 else None
    try:
        for epoch in range(resumed_from, train_config.epochs):
            trained = train_epoch(net, optimizer, schedule, batches, train_config, epoch, world, scheme)
            row = validate_epoch(model, schedule, batches, train_config, epoch, world, trained)
            history.append(row)
            if ckpt_path is not None and writer:
                save_checkpoint(ckpt_path, {"format": 1, "config": config, "epoch": epoch + 1,
                                            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                            "schedule": schedule.state_dict(), "history": history,
                                            "pretrain": pretrain, "world_size": world.world_size,
                                            "seed_scheme": scheme, "threads": torch.get_num_threads()})
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
        test = score_split(model, batches, "test", world, autocast_dtype)
        record.update(status="ok", final={
            "test_top1_error": test["top1_error"], "test_top5_error": test["top5_error"], "test_loss": test["loss"],
            "val_top1_error": history[-1]["val_top1_error"] if history else None,
            "train_seconds": sum(h["epoch_seconds"] for h in history),
            "epochs": len(history)})
    if metrics_path is not None and writer:
        save_json(metrics_path, record)
    return model, record


def score_split(model: VGG, batches: Batches, which: str, world: World, autocast_dtype=None) -> dict[str, float]:
    """`score` over a split; in a world of N each rank scores its share and the sums are all-reduced, so every
    image counts exactly once."""
    if not world.distributed:
        return score(model, batches.evaluation(which), autocast_dtype=autocast_dtype)
    counted = [0]

    def counting():
        for x, y in batches.evaluation(which):
            counted[0] += len(y)
            yield x, y

    try:
        local = guarded(world, f"evaluating {which}",
                        lambda: score(model, counting(), autocast_dtype=autocast_dtype))
    except ValueError:
        if counted[0]:
            raise
        local = {"loss": 0.0, "top1_error": 0.0, "top5_error": 0.0}  # an empty share (a split smaller than N)
    n = counted[0]
    loss, err1, err5, total = all_sum(world, [local["loss"] * n, local["top1_error"] * n,
                                              local["top5_error"] * n, n])
    if total == 0:
        raise ConfigError(f"nothing to evaluate: the {which} split is empty", ("dataset",), which)
    return {"loss": loss / total, "top1_error": round(err1) / total, "top5_error": round(err5) / total}


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
