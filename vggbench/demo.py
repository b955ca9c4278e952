"""The main job on the embedded default data: quick benchmark grid, the demo ablation study, the report.

    python -m vggbench demo --out runs/demo                 # (./dev demo), within --budget 480 s
    python -m vggbench demo --out runs/demo --max-seeds 6   # a seed cap of your own (a new folder)

Each stage keeps its results in `out`: a rerun skips a finished benchmark file and resumes the study. A study that
sets [study] max_seeds (the demo's does) runs --until-decided, its seed cap the most that fits the budget after
its listed seeds, in channels_last where this machine trains its base model faster so (`vggbench.demo_plan`); any
other study runs its listed seeds as written. A folder whose study has fixed its seed cap keeps it: the cap is set
before the study's first look at its results (its alpha is spent over the looks it plans), so a rerun resumes with
the recorded cap, and another --max-seeds on that folder is refused before anything runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from vggcore.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
DEMO_STUDY = ROOT / "ablations" / "studies" / "demo.toml"
DEMO_BENCH_ARGS = ["--vgg-reference"]   # the quick grid beside torchvision's VGG
# The settings stage: the dtypes that can win here (bf16 autocast only where this CPU's measured bf16 peak is not
# far below fp32's: `demo_plan.settings_dtypes`) and channels_last against plain fp32 for one architecture, so the
# report's "fastest setting" and its speed-up over fp32 are measured, not assumed. One batch size keeps it short.
SETTINGS_DTYPES = ("fp32", "bf16")
SETTINGS_ARGS = ["--vgg-archs", "A", "--vgg-batch-sizes", "1", "--vgg-modes", "train_step",
                 "--vgg-channels-last", "off,on", "--vgg-max-time", "1"]


# The quick grid's stage: VGG-A at 224 px and batch 1, forward and training step, beside torchvision's. The rest
# of the quick grid (D, batch 4, forward_backward) is left to `pytest bench` itself: on a 2-core AVX2 machine the
# full quick grid took 345 s of the demo's 480 (A and D at batch 1 and 4), leaving its study too few seeds to
# decide. The user's --bench-args come after, so win (--bench-args --vgg-archs A,D --vgg-batch-sizes 1,4).
QUICK_ARGS = ["--vgg-archs", "A", "--vgg-batch-sizes", "1", "--vgg-modes", "forward,train_step"]


def _bench_done(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("benchmarks"))


class SeedCapError(UserError, ValueError):
    """--max-seeds differs from the seed cap a demo folder's study already fixed."""


def check_seed_cap(out: Path, max_seeds: int | None) -> None:
    """SeedCapError when `out`'s study has fixed a seed cap (its adaptive.json) other than `max_seeds`; a new
    folder, no --max-seeds, or the same cap resume."""
    from ablations.store import Store

    recorded = Store(out / "ablations").plan() if (out / "ablations").is_dir() else None
    if recorded is None or max_seeds is None or max_seeds == recorded.max_seeds:
        return
    raise SeedCapError(f"{out / 'ablations'} records seed cap {recorded.max_seeds} per variant, fixed before its "
                       f"study's first look (its alpha is spent over the looks that cap plans), so --max-seeds "
                       f"{max_seeds} cannot change it: resume without --max-seeds (or with --max-seeds "
                       f"{recorded.max_seeds}), or start afresh with another --out")


class SuiteFailed(UserError, RuntimeError):
    """The benchmark suite could not run or exited non-zero: one line, as its own output above says why."""

    exit_code = 1


def _run_suite(label: str, path: Path, args: list[str]) -> None:
    suite = ROOT / "bench"
    if not suite.is_dir():
        raise SuiteFailed(f"benchmark suite not found at {suite}: run from a source checkout")
    print(f"[1/3] {label}: pytest bench --benchmark-only {' '.join(args)}", flush=True)
    tmp = path.with_suffix(".json.partial")
    cmd = [sys.executable, "-m", "pytest", str(suite), "--benchmark-only", "-p", "no:cacheprovider",
           "--benchmark-columns=median,rounds,ops", f"--benchmark-json={tmp}", *args]
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        raise SuiteFailed(f"the benchmark suite failed (exit {code}); see its output above")
    tmp.replace(path)  # only a complete file counts as done


def settings_args(bench_args: list[str]) -> list[str]:
    """The settings stage's options: SETTINGS_ARGS, the dtypes that can win on this CPU (each one left out is
    said why), then the user's options (which win)."""
    from .demo_plan import measure_peaks, settings_dtypes

    dtypes, skipped = settings_dtypes(measure_peaks(SETTINGS_DTYPES))
    for line in skipped:
        print(f"[1/3] {line}", flush=True)
    return SETTINGS_ARGS + ["--vgg-dtypes", ",".join(dtypes)] + [a for a in bench_args if a != "--vgg-reference"]


def run_demo(out: Path, bench_args: list[str], study: Path, rerun_bench: bool = False,
             budget_s: float | None = None, max_seeds: int | None = None) -> Path:
    from ablations.adaptive import make_plan
    from ablations.study import load_study

    from reports.render import build

    from .demo_plan import DEFAULT_BUDGET_S

    budget_s = DEFAULT_BUDGET_S if budget_s is None else budget_s
    study_obj = load_study(study)
    adaptive = study_obj.max_seeds is not None or max_seeds is not None
    if adaptive:
        make_plan(study_obj, max_seeds=max_seeds)   # a bad cap or design is refused before anything runs
        check_seed_cap(out, max_seeds)              # and so is another cap on a study that fixed its own
    out.mkdir(parents=True, exist_ok=True)
    bench_json, settings_json = out / "bench.json", out / "bench-settings.json"
    t0 = time.perf_counter()
    for label, path, args in (("benchmarks", bench_json, lambda: QUICK_ARGS + bench_args),
                              ("benchmarks, settings of one architecture", settings_json,
                               lambda: settings_args(bench_args))):
        if _bench_done(path) and not rerun_bench:
            print(f"[1/3] {label}: {path} exists, skipped (--rerun-bench to measure again)", flush=True)
        else:
            _run_suite(label, path, args())
    t1 = time.perf_counter()
    print(f"[2/3] ablation study {study.name} into {out / 'ablations'}", flush=True)
    if adaptive:
        workers = study_workers(study_obj)
        study_obj = study_layout(study_obj, out, workers.threads)
    decided = run_study_stage(study_obj, out / "ablations", budget_s, t0, max_seeds, workers) if adaptive else \
        _fixed(study_obj, out / "ablations")
    t2 = time.perf_counter()
    print("[3/3] report", flush=True)
    index = build([bench_json, settings_json], [out / "ablations"], out / "report")
    print(f"done in {time.perf_counter() - t0:.0f} s (benchmarks {t1 - t0:.0f} s, study {t2 - t1:.0f} s). "
          f"{decided}Report: {index} and {index.with_name('report.md')}")
    return index


LAYOUT_FILE = "study-layout.json"


def study_workers(study):
    """How the adaptive study's runs share this machine's cores (`demo_plan.workers_for`), said in one line."""
    from ablations.study import variants
    from vggcore.threads import cpu_count

    from .demo_plan import workers_for

    workers = workers_for(len(variants(study)), cpu_count())
    print(f"[2/3] {workers.processes} run(s) at a time, {workers.threads} torch thread(s) each", flush=True)
    return workers


def study_layout(study, out: Path, threads: int | None = None):
    """The study with train.channels_last set where this machine trains its base model faster so
    (`vggcore.train.fastest.layout`, on the runs' `threads`), the choice kept in
    `out/study-layout.json` so a rerun trains the same runs. A study that sets train.channels_last itself keeps
    it."""
    import dataclasses
    import json

    from ablations.study import resolve, variants
    from vggcore.threads import torch_threads
    from vggcore.train.fastest import layout

    train = study.base.get("train", {})
    if "channels_last" in train:
        return study
    path = out / LAYOUT_FILE
    try:
        kept = json.loads(path.read_text())
        on, reason = bool(kept["channels_last"]), f"{kept['reason']} (kept from {path})"
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        run = resolve(study, variants(study)[0], study.seeds[0])
        with torch_threads(threads):   # the runs' own thread count
            chosen = layout(run.model, run.train.batch_size, run.train.device)
        on, reason = chosen.channels_last, f"the study's {chosen.reason}"
        path.write_text(json.dumps({"channels_last": on, "reason": reason}) + "\n")
    print(f"[2/3] {reason}", flush=True)
    if not on:
        return study
    return dataclasses.replace(study, base={**study.base, "train": {**train, "channels_last": True}})


def _fixed(study, folder: Path) -> str:
    from ablations.runner import RunOptions, run_study
    from ablations.store import Store

    run_study(study, Store(folder), RunOptions())
    return ""


def run_study_stage(study, folder: Path, budget_s: float, started: float, max_seeds: int | None,
                    workers=None) -> str:
    """The study --until-decided on `workers` (`demo_plan.Workers`; None: one run at a time): its listed seeds
    first, then a seed cap from their run times (or the folder's recorded plan, or `max_seeds`), then rounds of
    added seeds. Returns the decisions in one line."""
    from ablations.adaptive import make_plan, run_until_decided
    from ablations.runner import RunOptions, run_study
    from ablations.store import Store
    from ablations.study import variants

    from .demo_plan import seed_cap

    store = Store(folder)
    options = RunOptions(workers=workers.processes if workers is not None else 1)
    recorded = store.plan()
    if recorded is not None:
        plan = make_plan(study, max_seeds=recorded.max_seeds)
        print(f"[2/3] seed cap {recorded.max_seeds} per variant, as this folder recorded it", flush=True)
    else:
        run_study(study, store, options)   # the listed seeds: their times size the cap
        if max_seeds is None:
            records = store.read(warn=False).records.values()
            times = [r.seconds for r in records if r.study == study.name and r.status in ("ok", "diverged")
                     and r.seconds]
            cap = seed_cap(budget_s, time.perf_counter() - started, sum(times) / len(times) if times else 0.0,
                           len(variants(study)), len(study.seeds), make_plan(study).max_seeds,
                           workers=options.workers)
            max_seeds = cap.max_seeds
            print(f"[2/3] {cap.reason}", flush=True)
        plan = make_plan(study, max_seeds=max_seeds)
    out = run_until_decided(study, store, options, plan)
    return ("Decisions: " + ", ".join(f"{v} {d} (n={out['seeds'].get(v, 0)})" for v, d in out["decisions"].items())
            + ". ")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="where everything goes")
    p.add_argument("--study", help=f"study file (default: {DEMO_STUDY.relative_to(ROOT)})")
    p.add_argument("--rerun-bench", action="store_true", help="measure again even if bench.json exists")
    p.add_argument("--budget", metavar="SECONDS", default="480",
                   help="the whole demo's time budget: the study's seed cap is what fits after its listed seeds")
    p.add_argument("--max-seeds", metavar="N",
                   help="seed cap per variant for the study --until-decided (default: from --budget). Fixed when "
                        "the study first looks at its results: on a folder that recorded a cap, give the same or "
                        "none (resume), or use a new --out")
    p.add_argument("--bench-args", nargs=argparse.REMAINDER, help="extra pytest options for the suite, last")


def run_from_args(args: argparse.Namespace) -> int:
    from vggcore.validation import integer, number, option_value

    study = Path(args.study) if args.study else DEMO_STUDY
    budget = option_value("--budget", args.budget, number(0, low_open=True))
    max_seeds = option_value("--max-seeds", args.max_seeds, integer(1), integer=True)
    try:
        run_demo(Path(args.out), DEMO_BENCH_ARGS + (args.bench_args or []), study, args.rerun_bench, budget,
                 max_seeds)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished results are kept in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    return 0
