"""Simulated pytest-benchmark runs from a seeded noise model, shared by the compare and history tests."""

import math

import numpy as np

CASES = {"A-forward-b1": 0.08, "A-forward-b4": 0.25, "A-train_step-b1": 0.6, "D-train_step-b4": 2.9}
# The noise of this VM (two back-to-back runs of one commit, 2026-11-28): a run's median moves ~2.5% (SD) from
# run to run; rounds within a run spread ~5% with one slow outlier in twenty.
RUN_SD, ROUND_SD, OUTLIER = 0.025, 0.05, 0.05


def simulate_run(rng, cases: dict, slowdown: dict | None = None, run_sd: float = RUN_SD, rounds: int = 8) -> dict:
    """One pytest-benchmark JSON document: per case, rounds from the noise model around its true time."""
    benches = []
    for name, seconds in cases.items():
        true = seconds * (slowdown or {}).get(name, 1.0) * math.exp(rng.normal(0, run_sd))
        times = true * np.exp(rng.normal(0, ROUND_SD, rounds))
        times = np.where(rng.random(rounds) < OUTLIER, times * 1.5, times)
        q1, q3 = np.quantile(times, [0.25, 0.75])
        benches.append({"name": name, "group": "g", "extra_info": {"round_times": times.tolist()},
                        "stats": {"median": float(np.median(times)), "min": float(times.min()),
                                  "max": float(times.max()), "mean": float(times.mean()), "iqr": float(q3 - q1),
                                  "rounds": rounds, "stddev": float(times.std(ddof=1)), "ops": 1 / times.mean()}})
    return {"machine_info": {"node": "vm"}, "commit_info": {}, "datetime": "2026-11-28T00:00:00",
            "benchmarks": benches}
