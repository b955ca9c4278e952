"""vggbench: every job of the project in one command (`pip install -e .` puts it on the PATH).

    vggbench demo                                       the main job: benchmarks, the demo study, the report
    vggbench list                                       the architectures: parameters, GMACs at 224
    vggbench summary D --image-size 32 --width 0.25     one architecture's layers
    vggbench train --arch A --batch-norm --width 0.25 --image-size 32 --out runs/a
    vggbench evaluate runs/a --protocol dense           a trained run under the paper's test protocols
    vggbench profile A --batch-size 8                   where a step's time goes, per layer
    vggbench study run ablations/studies/dropout.toml --out runs/dropout     (also: list, status, export)
    vggbench report build --ablations runs/dropout --out runs/report        (also: compare)
    vggbench gpu-check --dry-run                        the GPU check (./dev gpu-check)

Every command has --help. The benchmarks are pytest's: `pytest bench --benchmark-only` (docs/benchmarks.md).
`python -m vggcore|ablations|reports|vggbench ...` run the same commands.
"""

from __future__ import annotations

import argparse
import sys

from vggcore.cli.parser import Parser
from vggcore.errors import run_command

# Commands that train, measure or build networks: they need torch, which --help, `study list|status` and the
# report's reading of JSON do not import.
NEEDS_TORCH = ("demo", "gpu-check", "train", "evaluate", "profile", "list", "summary")


def parser(prog: str = "vggbench") -> argparse.ArgumentParser:
    import ablations.cli
    import reports.cli
    import vggcore.cli.main

    from . import demo, gpu_check

    p = Parser(prog=prog, description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the main job: quick benchmarks, the demo study, the report",
                       description=demo.__doc__)
    demo.add_arguments(d)
    d.set_defaults(func=demo.run_from_args)
    vggcore.cli.main.add_commands(sub)
    study = sub.add_parser("study", help="ablation studies: run, list, status, export (python -m ablations)",
                           description=ablations.cli.__doc__, epilog=ablations.cli.EXIT_CODES)
    ablations.cli.add_commands(study.add_subparsers(dest="study_command", required=True))
    report = sub.add_parser("report", help="the report and benchmark comparisons: build, compare "
                                           "(python -m reports)", description=reports.cli.__doc__)
    reports.cli.add_commands(report.add_subparsers(dest="report_command", required=True))
    g = sub.add_parser("gpu-check", help="the GPU side of the project in one command, within a time budget",
                       description=gpu_check.__doc__)
    gpu_check.add_arguments(g)
    g.set_defaults(func=gpu_check.run_from_args)
    return p


def require_torch() -> None:
    """A Python without torch is refused in one line, before any import could fail with a traceback."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        print(f"error: torch is not importable by PYTHON={sys.executable} ({err}); point PYTHON at a Python with "
              "torch, torchvision and the project's dependencies, e.g. PYTHON=.venv/bin/python ./dev gpu-check "
              "(./dev setup makes .venv)", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in NEEDS_TORCH:
        require_torch()
    return run_command(args.func, args)
