"""Regression gate between benchmark runs: a verdict per case that accounts for the noise it measured.

    python -m reports compare OLD.json NEW.json                       # one run per side
    python -m reports compare --old a1.json a2.json a3.json --new b1.json b2.json b3.json --threshold 5%
    python -m reports compare .benchmarks/old_runs/ .benchmarks/new_runs/      # a folder = every run in it

The noise model. A case's median step time from one pytest run is log-normal around the truth with two parts:
  - within-run: how well the run's rounds pin its median (robust standard error of the log-median from the
    rounds kept in extra_info `round_times`, else from pytest-benchmark's IQR and rounds);
  - between-run: how far a whole run's median wanders from the next run's (machine state, memory layout,
    other jobs). On the project's earlier 2-core VM two back-to-back runs of one commit moved medians by up to
    6.8% (measured 2026-11-28; docs/benchmarks.md, "Noise, comparisons and history"), which `BETWEEN_RUN`
    encodes. A user can set `--run-noise` for another machine.
With several files per side the between-run spread is also measured from them (pooled over both sides); the
larger of the measured and the modelled variance is used, so a quiet pair of runs cannot talk the gate into a
verdict its machine does not support.

The ratio new/old of geometric-mean medians gets a 95% interval from that variance. Verdicts:
  regression     ratio above 1 + threshold and the whole interval above 1 (slower beyond threshold AND noise)
  faster         ratio below 1 / (1 + threshold) and the whole interval below 1
  ok             the interval's upper end within 1 + threshold: no slowdown beyond the threshold is plausible
  inconclusive   anything else, with the reason (slower but within noise; or interval too wide to rule it out;
                 or a case whose rounds were unstable, compared with a single run on a side)
  new case / missing in new
Exit 1 on regressions only (`--fail-on-inconclusive` also fails on inconclusive); the false-regression rate of
A/A comparisons under the model is checked by a seeded simulation in tests/test_compare.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from vggcore.validation import number, option_value

from .load import ReportInputError, load_bench
from .noise import BETWEEN_RUN

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Verdict:
    ratio: float        # new / old median step time (> 1 = slower)
    low: float          # 95% interval of the ratio
    high: float
    verdict: str        # ok, faster, regression, inconclusive, new case, missing in new
    reason: str         # why, in words (empty for a plain ok)
    noise: str          # which noise estimate set the interval


PERCENT = number(0, allowed="a finite percentage >= 0, like 5% or 2.5")


def parse_percent(option: str, text: str) -> float:
    """'5%' or '5' -> 0.05; a one-line ConfigError naming the option for anything not a finite percentage >= 0."""
    return option_value(option, text, PERCENT, scale="percent")


def parse_threshold(text: str) -> float:
    return parse_percent("--threshold", text)


def within_run_variance(row: pd.Series) -> float:
    """Variance of the log of one run's median from its own rounds (robust: MAD of log round times); from
    pytest-benchmark's IQR and rounds for a file that kept no round times."""
    times = row.get("round_times")
    if isinstance(times, (list, tuple)) and len(times) >= 2:
        logs = np.log(np.asarray(times, dtype=float))
        sd = 1.4826 * np.median(np.abs(logs - np.median(logs)))
        n = len(logs)
    else:
        rounds, iqr, median = row.get("rounds"), row.get("iqr"), row.get("median")
        if not rounds or pd.isna(iqr) or not median:
            return 0.0
        sd, n = iqr / 1.349 / median, rounds
    return float((1.2533 * sd) ** 2 / n)  # the median's standard error is ~1.25x the mean's


def ratio_interval(old_logs, old_w2, new_logs, new_w2, between_run: float = BETWEEN_RUN,
                   confidence: float = CONFIDENCE) -> tuple[float, float, float, str]:
    """(ratio, low, high, noise description) for exp(mean(new_logs) - mean(old_logs)).

    `*_logs`: log median of each run; `*_w2`: each run's within-run variance of that log median."""
    old_logs, new_logs = np.asarray(old_logs, float), np.asarray(new_logs, float)
    k_old, k_new = len(old_logs), len(new_logs)
    v_model = between_run ** 2 + float(np.mean(np.concatenate([old_w2, new_w2])))
    dof = k_old + k_new - 2
    q = sps.norm.ppf(0.5 + confidence / 2)
    v, noise = v_model, f"model: {between_run:.1%} between runs + within-run rounds"
    if dof > 0:
        s2 = (((old_logs - old_logs.mean()) ** 2).sum() + ((new_logs - new_logs.mean()) ** 2).sum()) / dof
        if s2 > v_model:
            v, q = s2, sps.t.ppf(0.5 + confidence / 2, dof)
            noise = f"measured: {math.sqrt(s2):.1%} between the {k_old}+{k_new} runs"
    se = math.sqrt(v * (1 / k_old + 1 / k_new))
    d = float(new_logs.mean() - old_logs.mean())
    return math.exp(d), math.exp(d - q * se), math.exp(d + q * se), noise


def judge(ratio: float, low: float, high: float, threshold: float) -> tuple[str, str]:
    """Verdict and reason from a ratio, its interval and the allowed slowdown."""
    limit = 1 + threshold
    if ratio > limit and low > 1:
        return "regression", f"slower by {ratio - 1:.1%}, beyond the {threshold:.0%} threshold and the noise"
    if ratio < 1 / limit and high < 1:
        return "faster", f"faster by {1 - ratio:.1%}, beyond the threshold and the noise"
    if high <= limit:
        return "ok", ""
    if ratio > limit:
        return "inconclusive", f"slower by {ratio - 1:.1%} but within the noise (interval reaches {low:.3f}x)"
    return "inconclusive", (f"a slowdown up to {high - 1:.1%} is within the noise, more than the {threshold:.0%} "
                            "threshold: give more runs per side or more time per case")


def _per_run(paths, side: str) -> pd.DataFrame:
    try:
        frame = load_bench(paths)
    except ReportInputError as err:
        raise ReportInputError(f"{side}: {err}") from None
    hosts = (frame["machine_node"].fillna("unknown host").astype(str) + " ("
             + frame["machine_cpu"].fillna("unknown cpu").astype(str) + ")")
    if hosts.nunique() > 1:
        counts = "; ".join(f"{h}: {n} file(s)" for h, n in frame.groupby(hosts)["file"].nunique().items())
        raise ReportInputError(f"{side} mixes runs from {hosts.nunique()} machines ({counts}); the runs of one "
                               "side must come from one machine: pass that machine's files")
    frame = frame.dropna(subset=["median"])
    frame = frame[frame["median"] > 0]
    frame = frame.assign(log_median=np.log(frame["median"].astype(float)),
                         within_var=frame.apply(within_run_variance, axis=1))
    return frame


def compare(old_paths, new_paths, threshold: float, between_run: float = BETWEEN_RUN) -> pd.DataFrame:
    """One row per case name on either side: runs per side, medians, ratio with its interval, verdict, reason."""
    if isinstance(old_paths, (str, bytes)) or not hasattr(old_paths, "__iter__"):
        old_paths = [old_paths]
    if isinstance(new_paths, (str, bytes)) or not hasattr(new_paths, "__iter__"):
        new_paths = [new_paths]
    old, new = _per_run(old_paths, "OLD"), _per_run(new_paths, "NEW")
    shared = set(old["name"]) & set(new["name"])
    if not shared:
        raise ReportInputError(
            f"OLD and NEW share no benchmark case, so there is nothing to compare: OLD has {_names(old)}; "
            f"NEW has {_names(new)}")
    rows = []
    for name in sorted(set(old["name"]) | set(new["name"])):
        o, n = old[old["name"] == name], new[new["name"] == name]
        row = {"name": name, "runs_old": len(o), "runs_new": len(n),
               "median_old": float(np.exp(o["log_median"].mean())) if len(o) else float("nan"),
               "median_new": float(np.exp(n["log_median"].mean())) if len(n) else float("nan"),
               "unstable": bool(pd.concat([o, n])["unstable"].any())}
        if o.empty or n.empty:
            row.update(ratio=float("nan"), low=float("nan"), high=float("nan"), noise="",
                       verdict="new case" if o.empty else "missing in new",
                       reason="only in NEW" if o.empty else "only in OLD")
        else:
            ratio, low, high, noise = ratio_interval(o["log_median"], o["within_var"], n["log_median"],
                                                     n["within_var"], between_run)
            verdict, reason = judge(ratio, low, high, threshold)
            if verdict in ("regression", "faster") and row["unstable"] and min(len(o), len(n)) < 2:
                # unstable rounds say the machine changed state during the run; with one run on a side the
                # between-run spread is not measured, and a machine that got busier looks like a regression
                verdict, reason = "inconclusive", (f"{reason.split(',')[0]}, but the rounds were unstable and one "
                                                   "run per side cannot tell a busier machine from slower code: "
                                                   "rerun on a quiet machine or give several runs per side")
            row.update(ratio=ratio, low=low, high=high, noise=noise, verdict=verdict, reason=reason)
        rows.append(row)
    return pd.DataFrame(rows)


def _names(frame: pd.DataFrame, most: int = 3) -> str:
    names = sorted(set(frame["name"]))
    shown = ", ".join(names[:most])
    return f"{len(names)} case(s) ({shown}{', ...' if len(names) > most else ''})"


def format_table(table: pd.DataFrame) -> str:
    """The comparison as text people read: seconds with units, ratios as x with their interval."""
    from .format import seconds_h, ratio_interval_h

    shown = pd.DataFrame({
        "case": table["name"],
        "old": [seconds_h(v) for v in table["median_old"]],
        "new": [seconds_h(v) for v in table["median_new"]],
        "runs": [f"{a}/{b}" for a, b in zip(table["runs_old"], table["runs_new"])],
        "new/old [95% interval]": [ratio_interval_h(r, lo, hi) for r, lo, hi in
                                   zip(table["ratio"], table["low"], table["high"])],
        "verdict": [v + (" (unstable)" if u else "") for v, u in zip(table["verdict"], table["unstable"])],
        "reason": table["reason"],
    })
    return shown.to_string(index=False)
