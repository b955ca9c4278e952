"""Loaders: result files -> tidy pandas DataFrames (one row per observation). Pure functions of the files.

`load_bench(paths)`: one row per benchmark case. Columns:
    file, name, group, commit, commit_dirty, datetime, machine_node, machine_cpu, python
    min, max, mean, stddev, median, iqr, rounds, ops        timing statistics, seconds per step
    every extra_info key (see bench/runner.py): arch, mode, batch_size, image_size, width, device, device_name,
    dtype, channels_last, compiled, implementation, images_per_s, macs_per_image, achieved_flops, peak_flops,
    mfu, peak_memory_bytes, activation_bytes, param_bytes, torch_version, threads, ...  (NaN when absent)
    and always the fields of BENCH_DEFAULTS, filled where a file lacks them, so no reader asks whether a column
    exists: unstable (bool), unstable_reason, median_low, median_high, round_times, world_size, optimizer
    (train_step's SGD implementation), profile (--vgg-profile's record, a dict: `reports.profiles`)

`load_ablations(paths)` -> AblationData with
    runs:    one row per run: `ablations.runs.runs_table`'s columns (study, run_id, variant, seed, status, ...,
             level.<factor>, the final metrics, the rule's inputs, the test protocol), and file
    history: one row per run and epoch (`ablations.runs.history_table`): study, run_id, variant, seed, epoch, lr,
             train_loss, train_accuracy, val_loss, val_top1_error, val_top5_error, epoch_seconds, images_per_s,
             data_fraction
    studies: one row per study: study, metric, maximize, source, min_effect (None when not set), looks and alpha
             (planned looks and the last look's level of `run --until-decided`, from adaptive.json; else 1, 0.05),
             statistic (the decision statistic) and plan (adaptive.json's `ablations.store.Plan`, None for fixed
             seeds)
    skipped: human-readable notes on lines that could not be read
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablations.runs import history_table, runs_table
from ablations.store import Store
from vggcore.errors import UserError

BENCH_EXTRA_KEYS = ("arch", "mode", "batch_size", "image_size", "width", "device", "device_name", "dtype",
                    "channels_last", "compiled", "implementation", "images_per_s", "macs_per_image",
                    "achieved_flops", "peak_flops", "mfu", "peak_memory_bytes", "activation_bytes", "param_bytes",
                    "torch_version", "threads")
STAT_KEYS = ("min", "max", "mean", "stddev", "median", "iqr", "rounds", "ops")
NAN = float("nan")
# extra_info fields that some files lack, and the value that reads such a file as it was measured. Before
# adaptive sampling (bench/sampling.py, commit 1664250) no case was judged unstable and neither the median's
# interval nor the round times were kept; the within-run noise of such a file comes from pytest-benchmark's IQR
# (reports.compare.within_run_variance). Only the data-parallel scaling cases have a world size.
BENCH_DEFAULTS: dict[str, object] = {
    "unstable": False,
    "unstable_reason": "",
    "median_low": NAN,
    "median_high": NAN,
    "round_times": None,
    "world_size": NAN,
    # Before --vgg-optimizer (issue 17) train_step ran torch's own SGD choice (the for-loop on CPU, foreach on
    # CUDA), and no case had a per-layer profile (--vgg-profile; `reports.profiles` reads it).
    "optimizer": "auto",
    "profile": None,
}


class ReportInputError(UserError, ValueError):
    """An input file or folder that is not what the report expects."""


def _files(paths, pattern: str) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob(pattern))
            if not found:
                raise ReportInputError(f"{p}: no {pattern} files in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ReportInputError(f"{p} does not exist")
    return out


def _bench_shaped(data) -> bool:
    """The members load_bench reads are objects (or absent, where pytest-benchmark may leave them out)."""
    if not (isinstance(data, dict) and isinstance(data.get("machine_info"), dict)
            and isinstance(data.get("benchmarks"), list)):
        return False
    maybe = lambda value: value is None or isinstance(value, dict)  # noqa: E731
    return (maybe(data.get("commit_info")) and maybe(data["machine_info"].get("cpu"))
            and all(isinstance(b, dict) and maybe(b.get("stats")) and maybe(b.get("extra_info"))
                    for b in data["benchmarks"]))


def load_bench(paths) -> pd.DataFrame:
    """pytest-benchmark JSON files (--benchmark-json output, or .benchmarks/ autosave folders)."""
    rows = []
    for path in _files(paths, "*.json"):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ReportInputError(f"{path} is not JSON ({err}); expected pytest-benchmark output "
                                   "(--benchmark-json)") from None
        except OSError as err:
            raise ReportInputError(f"cannot read {path}: {err.strerror or err}") from None
        if not _bench_shaped(data):
            raise ReportInputError(f"{path} is not a pytest-benchmark JSON file: expected an object with "
                                   "'machine_info' and a 'benchmarks' list of objects, as --benchmark-json writes")
        machine, commit = data["machine_info"], data.get("commit_info") or {}
        for b in data["benchmarks"]:
            stats = b.get("stats") or {}
            row = {"file": str(path), "name": b.get("name"), "group": b.get("group"),
                   "commit": commit.get("id"), "commit_dirty": commit.get("dirty"), "datetime": data.get("datetime"),
                   "machine_node": machine.get("node"), "machine_cpu": (machine.get("cpu") or {}).get("brand_raw"),
                   "python": machine.get("python_version")}
            row.update({k: stats.get(k) for k in STAT_KEYS})
            extra = b.get("extra_info", {}) or {}
            row.update({k: extra.get(k) for k in BENCH_EXTRA_KEYS})
            row.update({k: v for k, v in extra.items() if k not in row})
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ReportInputError(f"no benchmark cases in {', '.join(map(str, paths))}")
    return fill_bench_defaults(frame)


def fill_bench_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every BENCH_DEFAULTS column, its missing values filled (booleans as a bool column)."""
    frame = frame.copy()
    for key, default in BENCH_DEFAULTS.items():
        column = frame[key] if key in frame else pd.Series(None, index=frame.index, dtype=object)
        missing = column.isna()
        if isinstance(default, bool):
            frame[key] = column.where(~missing, default).astype(bool)
        elif isinstance(default, float):
            frame[key] = pd.to_numeric(column, errors="coerce").astype(float)
        else:
            frame[key] = column.astype(object).where(~missing, default)
    return frame


@dataclass
class AblationData:
    runs: pd.DataFrame
    history: pd.DataFrame
    studies: pd.DataFrame
    skipped: list[str] = field(default_factory=list)


def load_ablations(paths) -> AblationData:
    """`results.jsonl` files or the folders holding them (each with its study.json)."""
    runs, history, studies, skipped = [], [], {}, []
    for path in _files(paths, "results.jsonl"):
        store = Store.of_results(path)
        parsed = store.read(warn=False)  # the latest record of a run wins (e.g. a retried failure)
        records, bad = parsed.records, parsed.corrupt_lines
        if not records:
            raise ReportInputError(f"{path} is not ablation results: expected JSON lines with a 'run_id' each, "
                                   "as `python -m ablations run` writes")
        if bad:
            skipped.append(f"{path}: {len(bad)} unreadable line(s) skipped ({', '.join(map(str, bad[:5]))})")
        analysis = store.analysis()  # study.json, and adaptive.json's looks when seeds were added
        for r in records.values():
            studies.setdefault(r.study, {"study": r.study, "metric": analysis.metric,
                                         "maximize": analysis.maximize, "source": analysis.source,
                                         "min_effect": analysis.min_effect, "looks": analysis.looks,
                                         "alpha": analysis.alpha, "statistic": analysis.statistic,
                                         "plan": analysis.plan})
        runs.append(runs_table(records.values(), file=str(path)))
        history.append(history_table(records.values()))
    return AblationData(pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(),
                        pd.concat(history, ignore_index=True) if history else pd.DataFrame(),
                        pd.DataFrame(list(studies.values())), skipped)
