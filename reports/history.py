"""Benchmark history from saved runs (`.benchmarks/` autosaves or several --benchmark-json files): each case's
median with its interval over the runs in time order, and the step where it changed.

    python -m reports build --bench .benchmarks/ --out report     # history figures and a table of steps

A step is the split of a case's runs into "before" and "after" whose comparison (`reports.compare`: beyond the
threshold and beyond the noise) says regression or faster. Every split is a test, so each is made at
95% / (number of splits) confidence (Bonferroni): a flat history flags a step at most 5% of the time under the
noise model, checked by a seeded simulation in tests/test_history.py. Runs from different machines are never
mixed: each machine gets its own history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .compare import BETWEEN_RUN, CONFIDENCE, judge, ratio_interval, within_run_variance


def machine_label(frame: pd.DataFrame) -> pd.Series:
    """'node (cpu)' per row: the machine a run was measured on."""
    node = frame["machine_node"].fillna("unknown host").astype(str)
    cpu = frame["machine_cpu"].fillna("unknown cpu").astype(str)
    return node + " (" + cpu + ")"


def machines(bench: pd.DataFrame) -> pd.DataFrame:
    """One row per machine: machine, runs (files), latest (datetime of its newest run)."""
    frame = bench.assign(machine=machine_label(bench))
    out = frame.groupby("machine").agg(runs=("file", "nunique"), latest=("datetime", "max")).reset_index()
    return out.sort_values("latest").reset_index(drop=True)


def latest_runs(bench: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The newest run of every case on the machine that ran last, and that machine's label: the tables of a
    report describe one machine's current state; older runs belong to the history."""
    frame = bench.assign(machine=machine_label(bench))
    machine = machines(bench)["machine"].iloc[-1]
    mine = frame[frame["machine"] == machine].sort_values("datetime", na_position="first")
    return mine.groupby("name", sort=False).tail(1).reset_index(drop=True), machine


def history(bench: pd.DataFrame) -> pd.DataFrame:
    """One row per machine, case and run, in time order: run (0, 1, ...), datetime, commit, median, low, high."""
    frame = bench.assign(machine=machine_label(bench)).dropna(subset=["median"])
    frame = frame.sort_values(["machine", "name", "datetime", "file"])
    out = pd.DataFrame({"machine": frame["machine"], "name": frame["name"], "group": frame["group"],
                        "datetime": frame["datetime"], "commit": frame["commit"], "file": frame["file"],
                        "median": frame["median"].astype(float),
                        "low": frame["median_low"].fillna(frame["median"]).astype(float),
                        "high": frame["median_high"].fillna(frame["median"]).astype(float),
                        "unstable": frame["unstable"],
                        "within_var": frame.apply(within_run_variance, axis=1)})
    out["run"] = out.groupby(["machine", "name"]).cumcount()
    return out.reset_index(drop=True)


def detect_step(medians, within_var, threshold: float = 0.05, between_run: float = BETWEEN_RUN) -> dict | None:
    """The most significant step in one case's series of run medians, or None.

    Returns {at (index of the first run after the step), ratio (after/before), low, high, verdict}."""
    logs = np.log(np.asarray(medians, dtype=float))
    w2 = np.asarray(within_var, dtype=float)
    n = len(logs)
    if n < 2:
        return None
    confidence = 1 - (1 - CONFIDENCE) / (n - 1)
    best = None
    for k in range(1, n):
        ratio, low, high, _ = ratio_interval(logs[:k], w2[:k], logs[k:], w2[k:], between_run, confidence)
        verdict, _ = judge(ratio, low, high, threshold)
        if verdict in ("regression", "faster") and (best is None or abs(np.log(ratio)) > abs(np.log(best["ratio"]))):
            best = {"at": k, "ratio": ratio, "low": low, "high": high, "verdict": verdict}
    return best


def steps(hist: pd.DataFrame, threshold: float = 0.05, between_run: float = BETWEEN_RUN) -> pd.DataFrame:
    """One row per machine and case with a step: where (run, datetime, commit), the ratio, its interval."""
    rows = []
    for (machine, name), g in hist.groupby(["machine", "name"], sort=True):
        step = detect_step(g["median"], g["within_var"], threshold, between_run)
        if step:
            after = g.iloc[step["at"]]
            rows.append({"machine": machine, "name": name, "runs": len(g), "step_at_run": step["at"],
                         "datetime": after["datetime"], "commit": after["commit"], "ratio": step["ratio"],
                         "low": step["low"], "high": step["high"], "verdict": step["verdict"]})
    return pd.DataFrame(rows, columns=["machine", "name", "runs", "step_at_run", "datetime", "commit", "ratio", "low",
                                       "high", "verdict"])
