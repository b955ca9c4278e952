"""Ablation studies from the command line.

    python -m ablations list ablations/studies/dropout.toml            # the expanded runs
    python -m ablations run ablations/studies/demo.toml --out runs/demo # train them; rerun to resume
    python -m ablations run STUDY.toml --out DIR --workers 2            # two processes, a core each
    python -m ablations run STUDY.toml --out DIR --executor ray [--ray-address ADDR]
    python -m ablations run STUDY.toml --out DIR --until-decided        # add seeds where still undecided
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


def _number(text: str | None, flag: str, kind=float):
    """Parse a numeric flag here, not in argparse, so a bad value is a one-line error with exit 2."""
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{flag} must be a{'n integer' if kind is int else ' number'}, got {text!r}") from None
    if kind is float and not (value >= 0 and value != float("inf")):
        raise ValueError(f"{flag} must be a non-negative number in metric units, got {text!r}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    min_effect = _number(args.min_effect, "--min-effect")
    max_seeds = _number(args.max_seeds, "--max-seeds", int)
    if (min_effect is not None or max_seeds is not None) and not args.until_decided:
        raise ValueError("--min-effect and --max-seeds only apply with --until-decided")
    study = load_study(args.study)
    store = Store(args.out)
    if args.until_decided:
        from .adaptive import make_plan

        plan = make_plan(study, min_effect, max_seeds)  # refuse a bad plan before any training
    options = RunOptions(executor=args.executor, workers=args.workers, ray_address=args.ray_address,
                         num_cpus=args.num_cpus, num_gpus=args.num_gpus, retry_failed=args.retry_failed,
                         progress=not args.quiet)
    if args.dry_run:
        runs, todo, _ = pending(study, store, args.retry_failed)
        print(f"study {study.name}: {len(runs)} runs, {len(runs) - len(todo)} recorded in {args.out}, "
              f"{len(todo)} to run:")
        for r in todo:
            print(f"  {r.run_id}  {r.variant}  seed {r.seed}")
        if args.until_decided:
            print(f"then until decided: up to {plan.max_seeds} seeds per variant, {plan.looks} looks at alpha "
                  f"{plan.alpha_per_look:.4g} each, min_effect {plan.min_effect}")
        return 0
    try:
        if args.until_decided:
            return _until_decided(study, store, options, plan)
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


def _until_decided(study, store: Store, options: RunOptions, plan) -> int:
    from .adaptive import run_until_decided

    out = run_until_decided(study, store, options, plan)
    print(f"study {study.name} until decided: {out['looks']} look(s), ran {out['ran']} run(s); "
          + ", ".join(f"{v} {d} (n={out['seeds'].get(v, 0)})" for v, d in out["decisions"].items()))
    _print_status(store)
    if out["failed"]:
        print(f"{out['failed']} run(s) failed; see above", file=sys.stderr)
        return 3
    return 0


def _print_status(store: Store) -> None:
    import json

    if not store.manifest_path.exists():
        raise FileNotFoundError(f"{store.root} holds no study ({MANIFEST} is missing)")
    manifest = json.loads(store.manifest_path.read_text())
    records = read_results(store.results_path).records
    listed = set(manifest["run_ids"])
    # seeds added by --until-decided are ordinary records outside the study's listed runs
    ids = [*manifest["run_ids"], *[i for i, r in records.items()
                                   if i not in listed and r.get("study") == manifest["study"]]]
    statuses = Counter(records[i]["status"] for i in ids if i in records)
    remaining = sum(1 for i in ids if i not in records)
    added = len(ids) - len(listed)
    print(f"{manifest['study']}: {len(ids)} runs{f' ({added} from added seeds)' if added else ''}: "
          f"{statuses.get('ok', 0)} done, {statuses.get('failed', 0)} failed, "
          f"{statuses.get('diverged', 0)} diverged, {remaining} remaining")
    for rid in ids:
        if rid in records and records[rid]["status"] == "failed":
            r = records[rid]
            print(f"  failed: {r['variant']} seed {r['seed']}: {r.get('error')}")
    print(_seeds_needed(store, manifest, [records[i] for i in ids if i in records]))


def _seeds_needed(store: Store, manifest: dict, records: list[dict]) -> str:
    """The power line: seeds per variant needed to detect min_effect, from the pooled spread so far."""
    import json

    import pandas as pd

    from reports.stats import power

    from .adaptive import PLAN

    plan_path = store.root / PLAN
    min_effect = manifest.get("min_effect")
    if plan_path.exists():
        min_effect = json.loads(plan_path.read_text()).get("min_effect", min_effect)
    metric = manifest.get("metric", "test_top1_error")
    if not min_effect:
        return "seeds needed: set [study] min_effect (metric units, above 0) to compute them"
    frame = pd.DataFrame([{"study": r["study"], "variant": r["variant"], "status": r["status"],
                           metric: (r.get("final") or {}).get(metric)} for r in records],
                         columns=["study", "variant", "status", metric])
    if frame.empty:
        return "seeds needed: no finished runs yet"
    row = power(frame, metric, min_effect).iloc[0]
    if row["seeds_needed"] != row["seeds_needed"]:
        return "seeds needed: need two finished seeds of some variant to estimate the spread"
    return (f"seeds needed per variant to detect {metric} differences of {min_effect:g} with 80% power: "
            f"{row['seeds_needed']:.0f} (pooled sd {row['pooled_sd']:.3g} over {row['sd_dof']} dof, "
            f"alpha {row['alpha_per_comparison']:.3g} per comparison = 0.05 / {row['comparisons']}); "
            f"now {row['seeds_now']}")


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
    r.add_argument("--until-decided", action="store_true",
                   help="after the study's seeds, add seeds a round at a time to undecided variants (and the "
                        "baseline) until each is better, worse or equivalent, or has --max-seeds; one_at_a_time "
                        "designs only")
    r.add_argument("--max-seeds", metavar="N",
                   help="with --until-decided: seeds per variant at most (default [study] max_seeds, else 10)")
    r.add_argument("--min-effect", metavar="D",
                   help="with --until-decided: smallest difference that matters, in metric units (default "
                        "[study] min_effect); a variant whose interval lies inside +/-D is equivalent")
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
