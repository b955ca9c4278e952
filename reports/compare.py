"""Regression check between two pytest-benchmark JSON files, for CI pipelines.

    python -m reports compare OLD.json NEW.json --threshold 5%

A case regresses when its median step time grew by more than the threshold. Exit status 1 on any regression.
"""

from __future__ import annotations

import pandas as pd

from .load import load_bench


def parse_threshold(text: str) -> float:
    raw = text.strip().rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"--threshold must be a percentage like 5% or 2.5, got {text!r}") from None
    if value < 0:
        raise ValueError(f"--threshold must not be negative, got {text!r}")
    return value / 100


def compare(old_path: str, new_path: str, threshold: float) -> pd.DataFrame:
    """One row per case name in either file: old and new median seconds, change, verdict."""
    old, new = load_bench([old_path]), load_bench([new_path])
    merged = pd.merge(old[["name", "median"]], new[["name", "median"]], on="name", how="outer",
                      suffixes=("_old", "_new"))
    merged["change"] = merged["median_new"] / merged["median_old"] - 1
    merged["verdict"] = "ok"
    merged.loc[merged["change"] > threshold, "verdict"] = "REGRESSION"
    merged.loc[merged["change"] < -threshold, "verdict"] = "faster"
    merged.loc[merged["median_old"].isna(), "verdict"] = "new case"
    merged.loc[merged["median_new"].isna(), "verdict"] = "missing in new"
    return merged.sort_values("name").reset_index(drop=True)
