"""Ablation studies from the command line.

    python -m ablations list ablations/studies/dropout.toml            # the expanded runs
    python -m ablations run ablations/studies/demo.toml --out runs/demo # train them; rerun to resume
    python -m ablations run STUDY.toml --out DIR --workers 2            # two processes, a core each
    python -m ablations run STUDY.toml --out DIR --executor ray [--ray-address ADDR]
    python -m ablations status runs/demo                               # done, failed, diverged, remaining
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from vggcore.cli import run_command

from .runner import EXECUTORS, RunOptions, pending, run_study
from .store import MANIFEST, Store, read_results
from .study import load_study


def _cmd_list(args: argparse.Namespace) -> None:
    import pandas as pd

    from .study import expand

    study = load_study(args.study)
    rows = [{"run_id": r.run_id, "variant": r.variant, "seed": r.seed} for r in expand(study)]
    print(f"study {study.name}: design {study.design}, {len(rows)} runs, ranked by {study.metric}")
    print(pd.DataFrame(rows).to_string(index=False))


def _cmd_run(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    store = Store(args.out)
    options = RunOptions(executor=args.executor, workers=args.workers, ray_address=args.ray_address,
                         num_cpus=args.num_cpus, num_gpus=args.num_gpus, retry_failed=args.retry_failed,
                         progress=not args.quiet)
    if args.dry_run:
        runs, todo, _ = pending(study, store, args.retry_failed)
        print(f"study {study.name}: {len(runs)} runs, {len(runs) - len(todo)} recorded in {args.out}, "
              f"{len(todo)} to run:")
        for r in todo:
            print(f"  {r.run_id}  {r.variant}  seed {r.seed}")
        return 0
    try:
        counts = run_study(study, store, options)
    except KeyboardInterrupt:
        done = len(store.read(warn=False).records)
        print(f"\ninterrupted: {done} finished run(s) are safe in {store.results_path}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    if counts["ran"] == 0:
        print(f"study {study.name}: all {counts['total']} runs already recorded in {store.results_path}")
    else:
        print(f"study {study.name}: ran {counts['ran']} run(s) in {counts['seconds']:.1f} s "
              f"({counts['skipped']} already recorded); results in {store.results_path}")
    _print_status(store)
    return 0


def _print_status(store: Store) -> None:
    import json

    if not store.manifest_path.exists():
        raise FileNotFoundError(f"{store.root} holds no study ({MANIFEST} is missing)")
    manifest = json.loads(store.manifest_path.read_text())
    records = read_results(store.results_path).records
    ids = manifest["run_ids"]
    statuses = Counter(records[i]["status"] for i in ids if i in records)
    remaining = sum(1 for i in ids if i not in records)
    print(f"{manifest['study']}: {len(ids)} runs: {statuses.get('ok', 0)} done, {statuses.get('failed', 0)} failed, "
          f"{statuses.get('diverged', 0)} diverged, {remaining} remaining")
    for rid in ids:
        if rid in records and records[rid]["status"] == "failed":
            r = records[rid]
            print(f"  failed: {r['variant']} seed {r['seed']}: {r.get('error')}")


def _cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    _print_status(Store(root))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train every run of a study (resumes)")
    r.add_argument("study", help="study TOML file")
    r.add_argument("--out", required=True, help="results folder: results.jsonl, study.json, runs/")
    r.add_argument("--executor", choices=EXECUTORS, default="local")
    r.add_argument("--workers", type=int, default=1, help="local processes (each gets cores/N threads)")
    r.add_argument("--ray-address", help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    r.add_argument("--num-cpus", type=float, help="CPUs per run on Ray (default: the study's, 1)")
    r.add_argument("--num-gpus", type=float, help="GPUs per run on Ray (default: the study's, 0)")
    r.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    r.add_argument("--dry-run", action="store_true", help="show what would run and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)
    ls = sub.add_parser("list", help="print the expanded runs of a study")
    ls.add_argument("study")
    ls.set_defaults(func=_cmd_list)
    st = sub.add_parser("status", help="done, failed, diverged and remaining runs in a results folder")
    st.add_argument("out")
    st.set_defaults(func=_cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    return run_command(args, (ValueError, RuntimeError, OSError))
