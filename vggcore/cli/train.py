"""`python -m vggcore train`: one training run from the command line.

    python -m vggcore train --arch A --batch-norm --out runs/a                       # one process
    torchrun --standalone --nproc_per_node=2 -m vggcore train --arch A --batch-norm --out runs/a2   # data-parallel
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from vggcore.files import CheckpointError, load_json, save_json
from vggcore.config import VGGConfig
from vggcore.config import DATASETS
from vggcore.config import DataConfig
from vggcore.world import DistributedError
from vggcore.errors import UsageError
from vggcore.cli.evaluate import check_protocols, evaluate_after_training, parse_eval_spec
from vggcore.evaluate.protocols import ProtocolError
from vggcore.lock import NotAFolder, folder_lock
from vggcore.train.schedules import SCHEDULES
from vggcore.config import TrainConfig
from vggcore.data.presets import PRESETS
from vggcore.validation import ConfigError

# Config fields whose option is not simply --field-name.
OPTION_OF = {"init_from_a_epochs": "--init-from-a"}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="A", help="A, A-LRN, B, C, D, E or vgg11/13/16/19[_bn]")
    p.add_argument("--dataset", default="digits", help=f"{', '.join(DATASETS)} (digits is embedded)")
    p.add_argument("--data-root", help="folder with the CIFAR python files or an ImageNet-style train/ val/ tree")
    p.add_argument("--image-size", type=int, default=32, help="training crop side, pixels")
    p.add_argument("--width", type=float, default=0.25, help="channel and FC-width multiplier (1 = the paper)")
    p.add_argument("--head", default="paper", help="paper, torchvision or gap")
    p.add_argument("--dropout", type=float, default=0.5, help="dropout probability of the FC layers")
    p.add_argument("--batch-norm", action="store_true", help="BatchNorm after every conv")
    p.add_argument("--init", default="kaiming", help="kaiming, paper or xavier")
    p.add_argument("--init-from-a", type=int, default=0, metavar="EPOCHS",
                   help="pre-train net A for EPOCHS and copy it in (the paper's pre-initialisation)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=64, help="images per SGD step (the global batch under torchrun)")
    p.add_argument("--micro-batch", type=int, help="images per forward pass; accumulates up to --batch-size")
    p.add_argument("--lr", type=float, default=1e-2, help="SGD learning rate (the paper's momentum and weight decay)")
    p.add_argument("--augment", default="crop_flip", help=", ".join(PRESETS))
    p.add_argument("--schedule", default="plateau", help=", ".join(SCHEDULES))
    p.add_argument("--warmup-epochs", type=int, default=0, help="epochs of linear learning-rate warm-up")
    p.add_argument("--bn-recalibrate", type=int, default=0, metavar="BATCHES",
                   help="before every evaluation, recompute BatchNorm's statistics over this many training batches "
                        "(precise BN: early epochs' running estimates lag); 0 keeps the running estimates")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and its input")
    p.add_argument("--fast", action="store_true",
                   help="choose the dtype (fp32, or bf16 where this device's measured bf16 peak beats fp32) and the "
                        "memory format by timing a few training steps of this model here; the choice and its "
                        "measurements go to --out/fast.json, and a resumed run keeps it (vggcore/train/fastest.py)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps; under torchrun cuda means cuda:LOCAL_RANK")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: SyncBatchNorm (statistics over the global batch, not each rank's slice)")
    p.add_argument("--dist-backend", default="auto", choices=("auto", "gloo", "nccl"),
                   help="under torchrun: process-group backend (auto: nccl on cuda, gloo on cpu)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initialisation, data order and dropout")
    p.add_argument("--out", help="run folder: checkpoint after each epoch, metrics.json; rerun to resume. One "
                   "process per folder: a second one on a folder in use is refused")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--eval", action="append", metavar="SPEC", help="after training, also score the test split "
                   "under this protocol (repeatable; needs --out): PROTOCOL[:SCALES][:flip|:noflip][:crops=G], e.g. "
                   "dense, centre:multi, multicrop (the paper's 150 crops); see `python -m vggcore evaluate --help`")


def configs_from_args(args: argparse.Namespace) -> tuple[VGGConfig, DataConfig, TrainConfig]:
    """The three configs from the options; a refused value is reported under its option's name."""
    try:
        model = VGGConfig(arch=args.arch, batch_norm=args.batch_norm, image_size=args.image_size, width=args.width,
                          head=args.head, dropout=args.dropout, init=args.init)
        data = DataConfig(dataset=args.dataset, data_root=args.data_root, augment=args.augment)
        tr = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, micro_batch=args.micro_batch, lr=args.lr,
                         schedule=args.schedule, warmup_epochs=args.warmup_epochs, bf16=args.bf16,
                         channels_last=args.channels_last, device=args.device, seed=args.seed,
                         init_from_a_epochs=args.init_from_a, sync_bn=args.sync_bn,
                         bn_recalibrate=args.bn_recalibrate)
    except ConfigError as err:
        field = err.fields[0]
        option = OPTION_OF.get(field, "--" + field.replace("_", "-"))
        typed = getattr(args, option[2:].replace("-", "_"), err.value)
        raise ConfigError(f"{option} {typed}: {err}", err.fields, err.value) from None
    return model, data, tr


def run_from_args(args: argparse.Namespace) -> int | None:
    from vggcore.train.loop import train

    model, data, tr = configs_from_args(args)
    out = Path(args.out) if args.out else None
    protocols = _protocols(args, model, data, out)   # a bad --eval is refused before --fast measures anything
    if getattr(args, "fast", False):
        tr = fast_setting(args, model, data, tr)
    if out is not None and out.exists() and not out.is_dir():
        raise NotAFolder(f"--out {out} is a file, not a folder; choose a folder path")
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 alone writes, so it alone holds the lock
    try:
        # Held for the whole run: a second `train --out` on this folder is refused instead of overwriting.
        with folder_lock(out, what="run folder") if out is not None and writer else nullcontext():
            result = train(model, data, tr, out=out, progress=not args.quiet,
                           on_epoch=None if args.quiet else _print_epoch, backend=args.dist_backend)
            scored = evaluate_after_training(out, protocols, result["status"]) if protocols and writer else []
    except DistributedError as err:  # a peer died: not the user's mistake, but one line and a non-zero exit
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if not writer:
            return 130
        if out is not None and (out / "checkpoint.pt").exists():
            print(f"interrupted: the finished epochs are saved in {out / 'checkpoint.pt'}; run the same command "
                  "again to resume", file=sys.stderr)
        else:
            print("interrupted before the first epoch was saved" + ("" if out else " (no --out: nothing is saved)"),
                  file=sys.stderr)
        return 130
    if not writer:  # rank 0 speaks for the group
        return None
    if result.get("resumed") == "complete":
        print(f"run in {args.out} is already complete", file=sys.stderr)
    final, history = result.get("final"), result["history"]
    if result["status"] == "diverged":
        print(f"{model.name}: diverged in epoch {result['diverged_epoch']} ({result['error']})")
        return 0
    seconds = final["train_seconds"]
    data_share = sum(h["data_seconds"] for h in history) / max(seconds, 1e-9)
    print(f"{model.name} on {data.dataset}: test top-1 error {final['test_top1_error']:.4f} "
          f"(accuracy {1 - final['test_top1_error']:.2%}), top-5 error {final['test_top5_error']:.4f}; "
          f"{final['epochs']} epochs in {seconds:.1f} s of training, data pipeline {data_share:.1%} of it"
          + (f"; results in {args.out}/metrics.json" if args.out else ""))
    for line in scored:
        print(line)
    return 0


def _protocols(args: argparse.Namespace, model: VGGConfig, data: DataConfig, out: Path | None) -> list:
    """The --eval protocols, each checked against the net to be trained before any training."""
    if not args.eval:
        return []
    if out is None:
        raise UsageError("--eval needs --out: the protocols score the run's checkpoint and are kept in its "
                         "metrics.json")
    protocols = []
    for spec in args.eval:
        protocols.append(parse_eval_spec(spec))
        try:
            check_protocols(protocols[-1:], model, data)
        except ProtocolError as err:
            raise ProtocolError(f"--eval {spec}: {err}", err.fields, err.value, err.allowed) from None
    return protocols


def _print_epoch(row: dict) -> None:
    from tqdm.auto import tqdm

    tqdm.write(f"epoch {row['epoch']:3d}  lr {row['lr']:.2g}  train loss {row['train_loss']:.4f}  "
               f"val top-1 err {row['val_top1_error']:.4f}  {row['images_per_s']:.0f} img/s")


def fast_setting(args: argparse.Namespace, model: VGGConfig, data: DataConfig, tr: TrainConfig) -> TrainConfig:
    """--fast: `tr` with the setting `vggcore.train.fastest.choose` measures fastest here, or the one the run in --out
    already chose (a resumed run keeps its setting); the choice goes to --out/fast.json and one line to stderr."""
    if args.bf16 or args.channels_last:
        given = "--bf16" if args.bf16 else "--channels-last"
        raise UsageError(f"--fast chooses the dtype and memory format itself; drop {given} or drop --fast")
    if "RANK" in os.environ:
        raise UsageError("--fast measures in one process, and under torchrun each rank could choose differently; "
                         "run it once without torchrun and pass its choice (--bf16, --channels-last) to every rank")
    record = Path(args.out) / FAST_FILE if args.out else None
    if record is not None and record.exists():
        chosen = load_json(record)
        if not isinstance(chosen.get("bf16"), bool) or not isinstance(chosen.get("channels_last"), bool):
            raise CheckpointError(f"{record} has no bf16/channels_last choice; move it away to measure again")
        print(f"--fast: keeping the setting this run chose before ({record})", file=sys.stderr)
        return dataclasses.replace(tr, bf16=chosen["bf16"], channels_last=chosen["channels_last"])
    from vggcore.train.fastest import choose

    # The head's width (the class count) is part of a step's cost; imagefolder's is known only once its folder is
    # read, and there the model's own stands in (the order of the settings hardly depends on one FC layer).
    classes = {"digits": 10, "cifar10": 10, "cifar100": 100, "synthetic": data.synthetic_classes}.get(
        data.dataset, model.num_classes)
    choice = choose(dataclasses.replace(model, num_classes=classes), tr.micro_batch or tr.batch_size, tr.device)
    print(choice.line(), file=sys.stderr)
    if record is not None:
        save_json(record, choice.record())
    return dataclasses.replace(tr, bf16=choice.bf16, channels_last=choice.channels_last)


FAST_FILE = "fast.json"
