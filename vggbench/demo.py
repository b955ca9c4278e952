"""The main job on the embedded default data: quick benchmark grid, the demo ablation study, the report.

    python -m vggbench demo --out runs/demo        # (./dev demo)

Each stage keeps its results in `out`: a rerun skips a finished benchmark file and resumes the study.
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
# The settings stage: bf16 autocast and channels_last against plain fp32 for one architecture, so the report's
# "fastest setting" and its speed-up over fp32 are measured, not assumed. One batch size keeps it short.
SETTINGS_ARGS = ["--vgg-archs", "A", "--vgg-batch-sizes", "4", "--vgg-modes", "train_step",
                 "--vgg-dtypes", "fp32,bf16", "--vgg-channels-last", "off,on", "--vgg-max-time", "1"]


# The quick grid's stage: A and D at batch 1 and 4, forward and training step. forward_backward is left to
# `pytest bench` itself: with it the demo ran past 8 minutes on 2 cores. The user's --bench-args come after, so win.
QUICK_ARGS = ["--vgg-modes", "forward,train_step"]


def _bench_done(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("benchmarks"))


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


def run_demo(out: Path, bench_args: list[str], study: Path, rerun_bench: bool = False) -> Path:
    from ablations.runner import RunOptions, run_study
    from ablations.store import Store
    from ablations.study import load_study

    from reports.render import build

    out.mkdir(parents=True, exist_ok=True)
    bench_json, settings_json = out / "bench.json", out / "bench-settings.json"
    t0 = time.perf_counter()
    for label, path, args in (("benchmarks", bench_json, QUICK_ARGS + bench_args),
                              ("benchmarks, settings of one architecture", settings_json,
                               SETTINGS_ARGS + [a for a in bench_args if a != "--vgg-reference"])):
        if _bench_done(path) and not rerun_bench:
            print(f"[1/3] {label}: {path} exists, skipped (--rerun-bench to measure again)", flush=True)
        else:
            _run_suite(label, path, args)
    t1 = time.perf_counter()
    print(f"[2/3] ablation study {study.name} into {out / 'ablations'}", flush=True)
    study_obj = load_study(study)
    run_study(study_obj, Store(out / "ablations"), RunOptions())
    t2 = time.perf_counter()
    print("[3/3] report", flush=True)
    index = build([bench_json, settings_json], [out / "ablations"], out / "report")
    print(f"done in {time.perf_counter() - t0:.0f} s (benchmarks {t1 - t0:.0f} s, study {t2 - t1:.0f} s). "
          f"Report: {index} and {index.with_name('report.md')}")
    return index


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="where everything goes")
    p.add_argument("--study", help=f"study file (default: {DEMO_STUDY.relative_to(ROOT)})")
    p.add_argument("--rerun-bench", action="store_true", help="measure again even if bench.json exists")
    p.add_argument("--bench-args", nargs=argparse.REMAINDER, help="extra pytest options for the suite, last")


def run_from_args(args: argparse.Namespace) -> int:
    study = Path(args.study) if args.study else DEMO_STUDY
    try:
        run_demo(Path(args.out), DEMO_BENCH_ARGS + (args.bench_args or []), study, args.rerun_bench)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished results are kept in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    return 0
