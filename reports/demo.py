"""The main job on the embedded default data: quick benchmark grid, the demo ablation study, the report.

    python -m reports demo --out runs/demo        # (./dev demo)

Each stage keeps its results in `out`: a rerun skips a finished benchmark file and resumes the study.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_done(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("benchmarks"))
    except (OSError, ValueError):
        return False


def run_demo(out: Path, bench_args: list[str], study: Path, rerun_bench: bool = False) -> Path:
    from ablations.runner import RunOptions, run_study
    from ablations.store import Store
    from ablations.study import load_study

    from .render import build

    out.mkdir(parents=True, exist_ok=True)
    bench_json = out / "bench.json"
    t0 = time.perf_counter()
    if _bench_done(bench_json) and not rerun_bench:
        print(f"[1/3] benchmarks: {bench_json} exists, skipped (--rerun-bench to measure again)", flush=True)
    else:
        suite = ROOT / "bench"
        if not suite.is_dir():
            raise FileNotFoundError(f"benchmark suite not found at {suite}: run from a source checkout")
        print(f"[1/3] benchmarks: pytest bench --benchmark-only {' '.join(bench_args)}", flush=True)
        tmp = bench_json.with_suffix(".json.partial")
        cmd = [sys.executable, "-m", "pytest", str(suite), "--benchmark-only", "-p", "no:cacheprovider",
               "--benchmark-columns=median,rounds,ops", f"--benchmark-json={tmp}", *bench_args]
        code = subprocess.call(cmd, cwd=ROOT)
        if code != 0:
            raise RuntimeError(f"the benchmark suite failed (exit {code}); see its output above")
        tmp.replace(bench_json)  # only a complete file counts as done
    t1 = time.perf_counter()
    print(f"[2/3] ablation study {study.name} into {out / 'ablations'}", flush=True)
    study_obj = load_study(study)
    run_study(study_obj, Store(out / "ablations"), RunOptions())
    t2 = time.perf_counter()
    print("[3/3] report", flush=True)
    index = build([bench_json], [out / "ablations"], out / "report")
    print(f"done in {time.perf_counter() - t0:.0f} s (benchmarks {t1 - t0:.0f} s, study {t2 - t1:.0f} s). "
          f"Report: {index} and {index.with_name('report.md')}")
    return index
