"""`python -m vggbench demo|gpu-check`: the project's two drivers (`./dev demo`, `./dev gpu-check`).

    python -m vggbench demo --out runs/demo                       # benchmarks, the demo study, the report
    python -m vggbench demo --bench-args --vgg-width 0.125        # extra pytest options for the suite, last
    python -m vggbench gpu-check --dry-run                        # any machine, CPU only
    python -m vggbench gpu-check --out DIR --budget 300           # on a GPU box
"""

from __future__ import annotations

import argparse

from vggcore.cli import Parser
from vggcore.errors import run_command

from . import demo, gpu_check


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vggbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the main job: quick benchmarks, the demo study, the report",
                       description=demo.__doc__)
    demo.add_arguments(d)
    d.set_defaults(func=demo.run_from_args)
    g = sub.add_parser("gpu-check", help="the GPU side of the project in one command, within a time budget",
                       description=gpu_check.__doc__)
    gpu_check.add_arguments(g)
    g.set_defaults(func=gpu_check.run_from_args)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(args.func, args)
