"""Reports from benchmark and ablation results.

    python -m reports build --bench bench.json --ablations runs/demo --out report   # report.md, index.html
    python -m reports compare OLD.json NEW.json --threshold 5%                       # exit 1 on a regression

The whole main job (benchmarks, the demo study, this report) is `python -m vggbench demo` (./dev demo).
"""

from __future__ import annotations

import argparse
import sys

from vggcore.cli.parser import Parser
from vggcore.errors import UsageError, run_command
from vggcore.validation import MIN_EFFECT, option_value

from .noise import BETWEEN_RUN

MOVED = {"demo": "python -m vggbench demo (./dev demo)"}   # subcommands that moved, and where to


def _cmd_build(args: argparse.Namespace) -> int:
    from .render import build

    min_effect = option_value("--min-effect", args.min_effect, MIN_EFFECT)
    index = build(args.bench or [], args.ablations or [], args.out, method=args.interval, min_effect=min_effect,
                  correction=args.correction, progress=not args.quiet)
    print(f"report written: {index} and {index.with_name('report.md')}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare, format_table, parse_percent, parse_threshold

    threshold = parse_threshold(args.threshold)
    noise = parse_percent("--run-noise", args.run_noise)
    old = (args.old_files or []) + ([args.old] if args.old else [])
    new = (args.new_files or []) + ([args.new] if args.new else [])
    if not old or not new:
        raise UsageError("compare needs OLD and NEW: `compare OLD NEW`, or `--old FILE... --new FILE...`")
    table = compare(old, new, threshold, noise)
    print(format_table(table))
    counts = table["verdict"].value_counts()
    print("; ".join(f"{counts[v]} {v}" for v in counts.index))
    regressions, inconclusive = int(counts.get("regression", 0)), int(counts.get("inconclusive", 0))
    if regressions:
        print(f"{regressions} case(s) slower by more than {threshold:.1%} beyond the noise", file=sys.stderr)
        return 1
    if inconclusive and args.fail_on_inconclusive:
        print(f"{inconclusive} inconclusive case(s) and --fail-on-inconclusive", file=sys.stderr)
        return 1
    print(f"no regression beyond {threshold:.1%}" + (f" ({inconclusive} inconclusive: the noise allows a slowdown "
                                                      "beyond the threshold)" if inconclusive else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m reports", description=__doc__)
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def add_commands(sub) -> None:
    """build and compare, on `sub` (this command line's subcommands, or `vggbench report`'s)."""
    b = sub.add_parser("build", help="tables, figures, report.md and index.html")
    b.add_argument("--bench", nargs="+", action="extend", metavar="FILE_OR_DIR",
                   help="pytest-benchmark JSON files or folders (repeatable)")
    b.add_argument("--ablations", nargs="+", action="extend", metavar="DIR",
                   help="ablation result folders or results.jsonl files (repeatable)")
    b.add_argument("--out", required=True, help="report folder; a build there again replaces what the earlier "
                                                "build wrote (listed in its .report-files.json), and nothing else")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--interval", choices=("t", "bootstrap"), default="t",
                   help="intervals and tests over seeds: t (the study's decision statistic, intervals inside the "
                        "metric's bounds) or "
                        "bootstrap (seeded percentile bootstrap: too narrow at 3-10 seeds)")
    b.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="p-value adjustment across a study's comparisons: holm (family-wise) or bh "
                        "(Benjamini-Hochberg, false discovery rate)")
    b.add_argument("--min-effect", metavar="D",
                   help="smallest difference that matters, metric units, for every study (default: each "
                        "study's [study] min_effect); inside +/-D a variant is equivalent")
    b.set_defaults(func=_cmd_build)
    c = sub.add_parser("compare", help="per-case verdict between benchmark runs; exit 1 on a regression",
                       description="A case regresses when its median step time grew beyond --threshold AND beyond "
                                   "the noise (within-run rounds, between-run spread). Several runs per side: "
                                   "folders, or --old/--new with several files.")
    c.add_argument("old", nargs="?", help="OLD pytest-benchmark JSON file, or a folder of runs")
    c.add_argument("new", nargs="?", help="NEW pytest-benchmark JSON file, or a folder of runs")
    c.add_argument("--old", dest="old_files", nargs="+", action="extend", metavar="FILE",
                   help="OLD runs (repeated pytest runs of one version)")
    c.add_argument("--new", dest="new_files", nargs="+", action="extend", metavar="FILE",
                   help="NEW runs")
    c.add_argument("--threshold", default="5%", help="allowed slow-down of the median step time")
    c.add_argument("--run-noise", default=f"{100 * BETWEEN_RUN:g}%",
                   help="relative SD of a run's median between pytest runs on this machine, the noise floor "
                        "(the default was measured on this project's 2-core VM)")
    c.add_argument("--fail-on-inconclusive", action="store_true",
                   help="exit 1 also when the noise cannot rule out a slowdown beyond the threshold")
    c.set_defaults(func=_cmd_compare)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in MOVED:
        print(f"error: `python -m reports {argv[0]}` moved: run {MOVED[argv[0]]}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    return run_command(args.func, args)
