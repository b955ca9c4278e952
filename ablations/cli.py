"""Ablation studies from the command line.

    python -m ablations list ablations/studies/dropout.toml            # the expanded runs
    python -m ablations run ablations/studies/demo.toml --out runs/demo # train them; rerun to resume
    python -m ablations run STUDY.toml --out DIR --workers 2            # two processes, a core each
    python -m ablations run STUDY.toml --out DIR --executor ray [--ray-address ADDR]
    python -m ablations run STUDY.toml --out DIR --until-decided        # add seeds where still undecided
    python -m ablations run STUDY.toml --out DIR --track mlflow:sqlite:///mlflow.db   # live, as runs finish
    python -m ablations export runs/demo --mlflow sqlite:///mlflow.db --tensorboard tb  # afterwards (only new)
    python -m ablations status runs/demo                               # done, failed, diverged, remaining

One driver per results folder: a second `run` on a folder in use is refused at once, naming the holder's pid
and host (the lock is released by the kernel when the holder exits, even on SIGKILL).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from vggcore.cli.parser import Parser
from vggcore.errors import EXIT_INTERRUPTED, UsageError, run_command
from vggcore.validation import MIN_EFFECT, integer, number, option_value, optional

from .integrations.ray_executor import RETRIES
from .runner import EXECUTORS, RunOptions, pending, run_study
from .records import RunRecord
from .store import MANIFEST, Store, StoreError
from .study import load_study


EXIT_CODES = """exit status:
  0    every run finished (ok or diverged: a diverged run is a result)
  1    you answered no at the --confirm-above prompt; nothing ran. Also a bug in vggbench, printed with its
       traceback and a line saying so
  2    a usage error: a bad study file or option, a folder in use by another driver, a large design without --yes,
       a full disk
  3    some runs failed (they are listed); rerun with --retry-failed to run them again
  130  interrupted (Ctrl-C); finished runs are kept, rerun the same command to resume"""
EXIT_OK, EXIT_DECLINED, EXIT_FAILED = 0, 1, 3   # 2: a UserError (vggcore.errors); 130: Ctrl-C
CONFIRM_ABOVE = 1000   # runs to do above which `run` asks first: 81,000 runs must not start by accident


def estimate(records: dict, todo: int, workers: int = 1) -> str:
    """How long `todo` more runs take, from the runs recorded in the folder (ok or diverged: a failure often
    ends at once and would make the estimate too short)."""
    seconds = [r.seconds for r in records.values() if r.status in ("ok", "diverged") and r.seconds]
    if not seconds:
        return f"{todo:,} to run: no estimate yet (no finished runs recorded in this folder)"
    mean = sum(seconds) / len(seconds)
    total = todo * mean / max(1, workers)
    hours = f" ({total / 3600:.1f} h)" if total >= 3600 else ""
    across = f", {workers} at a time" if workers > 1 else ""
    return (f"{todo:,} to run: about {total:,.0f} s{hours} ({mean:.1f} s per run over {len(seconds)} recorded "
            f"run(s){across})")


def _cmd_list(args: argparse.Namespace) -> None:
    import pandas as pd

    study = load_study(args.study)
    if args.out:
        runs, todo, records = pending(study, Store(args.out), retry_failed=False)
        plan = estimate(records, len(todo))
    else:
        from .study import expand

        runs = expand(study)
        plan = f"{len(runs):,} to run: no estimate yet (pass --out DIR to estimate from the runs recorded there)"
    rows = [{"run_id": r.run_id, "variant": r.variant, "seed": r.seed} for r in runs]
    print(f"study {study.name}: design {study.design}, {len(rows):,} runs, ranked by {study.metric}")
    print(pd.DataFrame(rows).to_string(index=False))
    print(plan)


def _confirm(study_name: str, todo: int, args: argparse.Namespace) -> bool:
    """Ask before a large design; raise (exit 2) when there is no terminal to ask and no --yes."""
    if todo <= args.confirm_above or args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"study {study_name}: {todo:,} runs to run is more than --confirm-above "
                         f"{args.confirm_above:,}; add --yes to start them (no terminal to ask)")
    answer = input(f"Run {todo:,} runs? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _cmd_run(args: argparse.Namespace) -> int:
    # Numbers checked here, not by argparse, so a bad value is one line naming the option (exit 2).
    integer(1)("--workers", args.workers)
    integer(0)("--confirm-above", args.confirm_above)
    integer(0)("--ray-retries", args.ray_retries)
    for option, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus)):
        optional(number(0))(option, value)
    min_effect = option_value("--min-effect", args.min_effect, MIN_EFFECT)
    max_seeds = option_value("--max-seeds", args.max_seeds, integer(1), integer=True)
    if (min_effect is not None or max_seeds is not None) and not args.until_decided:
        raise UsageError("--min-effect and --max-seeds only apply with --until-decided")
    study = load_study(args.study)
    store = Store(args.out)
    if args.until_decided:
        from .adaptive import make_plan

        plan = make_plan(study, min_effect, max_seeds)  # refuse a bad plan before any training
    track = _track(args, study)
    options = RunOptions(executor=args.executor, workers=args.workers, ray_address=args.ray_address,
                         num_cpus=args.num_cpus, num_gpus=args.num_gpus, retry_failed=args.retry_failed,
                         progress=not args.quiet, track=track, ray_retries=args.ray_retries)
    if args.dry_run:
        runs, todo, records = pending(study, store, args.retry_failed)
        print(f"study {study.name}: {len(runs)} runs, {len(runs) - len(todo)} recorded in {args.out}, "
              f"{len(todo)} to run:")
        for r in todo:
            print(f"  {r.run_id}  {r.variant}  seed {r.seed}")
        print(estimate(records, len(todo), args.workers if args.executor == "local" else 1))
        if args.until_decided:
            from .adaptive import plan_line

            recorded = store.plan()   # a folder started earlier keeps the rule it recorded
            same = recorded is not None and recorded.same_choices(plan)
            print("then until decided: " + plan_line(recorded if same else plan))
        return EXIT_OK
    # The lock first: a second driver is refused at once, and what is planned is what this driver will run.
    with store.lock():
        runs, todo, records = pending(study, store, args.retry_failed)
        print(f"study {study.name}: {len(runs):,} runs, {len(runs) - len(todo):,} recorded in {args.out}; "
              + estimate(records, len(todo), args.workers if args.executor == "local" else 1), file=sys.stderr)
        if not _confirm(study.name, len(todo), args):
            print("nothing run", file=sys.stderr)
            return EXIT_DECLINED
        try:
            if args.until_decided:
                return _until_decided(study, store, options, plan)
            counts = run_study(study, store, options)
        except KeyboardInterrupt:
            done = len(store.read(warn=False).records)
            print(f"\ninterrupted: {done} finished run(s) are safe in {store.results_path}; run the same command "
                  "again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    if counts["ran"] == 0:
        print(f"study {study.name}: all {counts['total']} runs already recorded in {store.results_path}")
    else:
        print(f"study {study.name}: ran {counts['ran']} run(s) in {counts['seconds']:.1f} s "
              f"({counts['skipped']} already recorded); results in {store.results_path}")
    failed = _print_status(store)
    if failed:
        print(f"{failed} run(s) failed; fix the cause and rerun with --retry-failed to run them again",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _track(args: argparse.Namespace, study) -> tuple[str, ...]:
    """--track replaces the study file's [study] track; each target's form is checked before anything runs."""
    from .integrations.tracking import parse_target

    if args.track:
        return tuple(str(parse_target(t)) for t in args.track)
    return tuple(str(parse_target(t, where=f"{study.source}: [study] track")) for t in study.track)


def _cmd_export(args: argparse.Namespace) -> int:
    from .integrations.export import export
    from .integrations.tracking import Target

    targets = [Target(kind, where) for kind, where in (("mlflow", args.mlflow), ("tensorboard", args.tensorboard))
               if where]
    if not targets:
        raise UsageError("export needs a store: give --mlflow URI, --tensorboard LOGDIR, or both")
    export(Store(args.out), targets, progress=not args.quiet)
    return EXIT_OK


def _until_decided(study, store: Store, options: RunOptions, plan) -> int:
    from .adaptive import run_until_decided

    out = run_until_decided(study, store, options, plan)
    print(f"study {study.name} until decided ({out['plan'].rule} rule): {out['looks']} look(s), ran {out['ran']} "
          "run(s); "
          + ", ".join(f"{v} {d} (n={out['seeds'].get(v, 0)})" for v, d in out["decisions"].items()))
    _print_status(store)
    if out["failed"]:
        print(f"{out['failed']} run(s) failed; fix the cause and rerun with --retry-failed to run them again",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _print_status(store: Store) -> int:
    """Print the folder's counts, its failed runs and the seeds needed; return how many of its runs failed."""
    manifest = store.manifest()
    if manifest is None:
        raise StoreError(f"{store.root} holds no study ({MANIFEST} is missing)")
    records = store.read().records
    listed = set(manifest.run_ids)
    # seeds added by --until-decided are ordinary records outside the study's listed runs
    ids = [*manifest.run_ids, *[i for i, r in records.items() if i not in listed and r.study == manifest.study]]
    statuses = Counter(records[i].status for i in ids if i in records)
    remaining = sum(1 for i in ids if i not in records)
    added = len(ids) - len(listed)
    print(f"{manifest.study}: {len(ids)} runs{f' ({added} from added seeds)' if added else ''}: "
          f"{statuses.get('ok', 0)} done, {statuses.get('failed', 0)} failed, "
          f"{statuses.get('diverged', 0)} diverged, {remaining} remaining")
    for rid in ids:
        if rid in records and records[rid].status == "failed":
            r = records[rid]
            print(f"  failed: {r.variant} seed {r.seed}: {r.error}")
    print(_seeds_needed(store, [records[i] for i in ids if i in records]))
    return statuses.get("failed", 0)


def _seeds_needed(store: Store, records: list[RunRecord]) -> str:
    """The power lines: per variant, the seeds needed to detect min_effect from its own spread and rate of seeds
    that did not train, and which variant is expensive to decide and why."""
    from .runs import runs_table
    from .stats.frames import effects, expensive

    analysis = store.analysis()
    min_effect, metric = analysis.min_effect, analysis.metric
    if not min_effect:
        return "seeds needed: set [study] min_effect (metric units, above 0) to compute them"
    frame = runs_table(records)
    if frame.empty:
        return "seeds needed: no finished runs yet"
    plan = analysis.plan
    eff = effects(frame, metric, analysis.maximize, min_effect=min_effect, statistic=analysis.statistic,
                  schedule=plan.schedule() if plan is not None else None,
                  alpha=plan.alpha if plan is not None else analysis.alpha, correction=plan.correction if plan else "holm")
    lines = [f"seeds needed per variant to detect {metric} differences of {min_effect:g} with 80% power, each "
             "from its own spread and rate of seeds that did not train:"]
    for _, row in eff[eff["variant"] != "baseline"].iterrows():
        lines.append(f"  {row['variant']} ({row['decision']}, n={row['n_ok']}): {row['seeds_needed_reason']}")
    worst = expensive(eff[eff["variant"] != "baseline"])
    if worst is not None and worst["seeds_needed"] == worst["seeds_needed"]:
        lines.append(f"expensive to decide: {worst['variant']} ({worst['seeds_needed_reason']})")
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.out)
    if not root.is_dir():
        raise StoreError(f"{root} is not a study folder: {'a file' if root.exists() else 'no such folder'}")
    if Store(root).manifest() is None:   # the demo's folder, say, whose study is in its ablations/
        from .integrations.export import no_study

        raise no_study(root, "python -m ablations status {folder}")
    _print_status(Store(root))
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m ablations", description=__doc__, epilog=EXIT_CODES)
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def add_commands(sub) -> None:
    """run, list, status and export, on `sub` (this command line's subcommands, or `vggbench study`'s)."""
    r = sub.add_parser("run", help="train every run of a study (resumes)", epilog=EXIT_CODES)
    r.add_argument("study", help="study TOML file")
    r.add_argument("--out", required=True, help="results folder: results.jsonl, study.json, runs/")
    r.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this machine, --workers processes; ray: one Ray task per run")
    r.add_argument("--workers", type=int, default=1, help="local processes (each gets cores/N threads)")
    r.add_argument("--ray-address", help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray); on a "
                                         "cluster --out must be on a filesystem every node mounts at the same path "
                                         "(checked before any run)")
    r.add_argument("--num-cpus", type=float, help="CPUs per run on Ray (default: the study's, 1)")
    r.add_argument("--num-gpus", type=float, help="GPUs per run on Ray (default: the study's, 0)")
    r.add_argument("--ray-retries", type=int, default=RETRIES, metavar="N",
                   help="submit a run whose Ray task was lost (its worker killed, its node gone) again up to N "
                        "times; then it is recorded failed. A run's own error is never retried")
    r.add_argument("--track", action="append", metavar="KIND:WHERE",
                   help="also write each run, as it is recorded, to mlflow:URI or tensorboard:LOGDIR (repeat for "
                        "both; replaces [study] track)")
    r.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    r.add_argument("--dry-run", action="store_true", help="show what would run and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--confirm-above", type=int, default=CONFIRM_ABOVE, metavar="N",
                   help="ask before running more than N runs")
    r.add_argument("--yes", action="store_true", help="start a design above --confirm-above without asking")
    r.add_argument("--until-decided", action="store_true",
                   help="after the study's seeds, add seeds a round at a time to undecided variants (and the "
                        "baseline) until each is better, worse or equivalent, or has --max-seeds; one_at_a_time "
                        "designs only")
    r.add_argument("--max-seeds", metavar="N",
                   help="with --until-decided: seeds per variant at most (default: [study] max_seeds, else 10)")
    r.add_argument("--min-effect", metavar="D",
                   help="with --until-decided: smallest difference that matters, in metric units (default: "
                        "[study] min_effect); a variant whose interval lies inside +/-D is equivalent")
    r.set_defaults(func=_cmd_run)
    ls = sub.add_parser("list", help="print the expanded runs of a study")
    ls.add_argument("study", help="study TOML file")
    ls.add_argument("--out", help="a results folder: estimate the time left from the runs recorded there")
    ls.set_defaults(func=_cmd_list)
    st = sub.add_parser("status", help="done, failed, diverged and remaining runs in a results folder")
    st.add_argument("out", help="results folder")
    st.set_defaults(func=_cmd_status)
    ex = sub.add_parser("export", help="write a study folder's runs to MLflow and/or TensorBoard (only what is "
                                       "new: runs are matched by run id)")
    ex.add_argument("out", help="results folder of a study (the --out of run)")
    ex.add_argument("--mlflow", metavar="URI", help="MLflow tracking URI: sqlite:///mlflow.db, http://HOST:PORT")
    ex.add_argument("--tensorboard", metavar="LOGDIR", help="TensorBoard log folder")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    ex.set_defaults(func=_cmd_export)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(args.func, args)
