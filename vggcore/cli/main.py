"""Command line for the core.

python -m vggcore list                                  # every architecture: parameters, GMACs at 224
python -m vggcore summary D                             # per-layer table with totals
python -m vggcore summary vgg16_bn --image-size 32 --width 0.25 --format csv
python -m vggcore train --arch A --batch-norm --dataset digits --image-size 32 --width 0.25 --out runs/a
python -m vggcore evaluate runs/a --protocol dense --scales multi   # the paper's test protocols (section 3.2)
python -m vggcore profile A --batch-size 8 --dtype bf16 --channels-last   # where a step's time goes
"""

from __future__ import annotations

import argparse
from vggcore.model.archs import ARCHS
from vggcore.errors import run_command
from vggcore.cli.parser import Parser


def _cmd_list(args: argparse.Namespace) -> None:
    import pandas as pd

    from vggcore.config import VGGConfig
    from vggcore.model.summary import summary, totals

    rows = []
    for arch in ARCHS:
        for bn in (False, True):
            t = totals(summary(VGGConfig(arch=arch, batch_norm=bn)))
            rows.append(dict(arch=arch + ("_bn" if bn else ""), params=t["params"], gmacs_224=round(t["macs"] / 1e9, 3)))
    print(pd.DataFrame(rows).to_string(index=False))


def _cmd_summary(args: argparse.Namespace) -> None:
    from vggcore.config import VGGConfig
    from vggcore.model.summary import summary, totals

    config = VGGConfig(arch=args.arch, batch_norm=args.batch_norm or False, image_size=args.image_size,
                       width=args.width, head=args.head, num_classes=args.num_classes)
    table = summary(config, batch_size=args.batch_size)
    t = totals(table)
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "markdown":
        print(table.to_markdown(index=False))
    else:
        print(table.to_string(index=False))
    if args.format != "csv":
        print(f"\n{config.name} at {config.image_size}x{config.image_size}, batch {args.batch_size}: "
              f"{t['params']:,} parameters, {t['macs'] / 1e9:.3f} GMACs, "
              f"{t['activation_bytes'] / 2**20:.1f} MiB of activations, "
              f"{t['saved_bytes'] / 2**20:.1f} MiB kept for backward")


def _cmd_train(args: argparse.Namespace) -> int:
    from vggcore.cli.train import run_from_args

    return run_from_args(args)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vggcore", description=__doc__)
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def add_commands(sub) -> None:
    """list, summary, train, evaluate and profile, on `sub` (this command line's subcommands, or `vggbench`'s)."""
    sub.add_parser("list", help="list architectures with parameters and GMACs at 224").set_defaults(func=_cmd_list)

    s = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and memory of one architecture")
    s.add_argument("arch", help="A, A-LRN, B, C, D, E or vgg11/13/16/19[_bn]")
    s.add_argument("--batch-norm", action="store_true", default=None, help="BatchNorm after every conv")
    s.add_argument("--image-size", type=int, default=224, help="square input side, pixels")
    s.add_argument("--width", type=float, default=1.0, help="channel and FC-width multiplier")
    s.add_argument("--head", default="paper", help="paper, torchvision or gap")
    s.add_argument("--num-classes", type=int, default=1000, help="outputs of the last layer")
    s.add_argument("--batch-size", type=int, default=1, help="images per forward pass, for the memory columns")
    s.add_argument("--format", choices=("table", "csv", "markdown"), default="table", help="output format")
    s.set_defaults(func=_cmd_summary)

    from vggcore.cli.train import add_train_arguments

    t = sub.add_parser("train", help="train one network and evaluate it on the test split")
    add_train_arguments(t)
    t.set_defaults(func=_cmd_train)

    from vggcore.cli.evaluate import __doc__ as evaluate_doc, add_evaluate_arguments, run_evaluate

    e = sub.add_parser("evaluate", help="score a run folder's checkpoint under a test protocol of the paper",
                       description=evaluate_doc)
    add_evaluate_arguments(e)
    e.set_defaults(func=run_evaluate)

    from vggcore.cli import profile as profile_cli

    pr = sub.add_parser("profile", help="per-layer forward, backward and optimizer profile of one step against "
                                        "the measured roofline", description=profile_cli.__doc__)
    profile_cli.add_profile_arguments(pr)
    pr.set_defaults(func=profile_cli.run_from_args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(args.func, args)



