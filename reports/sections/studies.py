"""Ablation-study sections: per study, the effects with their statistics, unfinished runs, figures."""

from __future__ import annotations

import pandas as pd

from ablations.stats import effects, power

from .. import plots
from ..document import Report
from ..load import AblationData
from . import Inputs

EFFECTS_COLUMNS = ["study", "variant", "n", "n_ok", "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high",
                   "rel_diff", "p_value", "p_adjusted", "decision", "min_effect", "alpha", "test", "correction",
                   "family", "metric"]


def study_effects(abl: AblationData, method: str = "t", min_effect: float | None = None,
                  correction: str = "holm") -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(study -> effects table, study -> power table); `min_effect` overrides each study's own."""
    ablation_effects, powers = {}, {}
    if abl is None or abl.runs.empty:
        return ablation_effects, powers
    for _, s in abl.studies.iterrows():
        runs = abl.runs[abl.runs["study"] == s["study"]]
        me = min_effect if min_effect is not None else s.get("min_effect")
        me = None if me is None or me != me else float(me)
        ablation_effects[s["study"]] = effects(runs, s["metric"], bool(s["maximize"]), method, min_effect=me,
                                               alpha=float(s.get("alpha", 0.05)), correction=correction)
        powers[s["study"]] = power(runs, s["metric"], me)
    return ablation_effects, powers


def add(r: Report, inp: Inputs) -> None:
    if inp.ablations is not None:
        ablations_section(r, inp.ablations, inp.effects)


def method_text(eff: pd.DataFrame, pw: pd.Series) -> str:
    """What the numbers of one study mean, in words: method, family, threshold, seeds needed."""
    row = eff.iloc[0]
    level = f"{(1 - row['alpha']) * 100:.4g}%"
    looks = "" if row["alpha"] >= 0.05 else (f" Seeds were added --until-decided: every interval and test is at "
                                             f"alpha {row['alpha']:.4g}, 0.05 split over the planned looks.")
    me = row["min_effect"]
    threshold = (f"equivalent: the interval lies inside +/-{me:g}" if me == me
                 else "no min_effect set, so no variant can be called equivalent")
    need = (f" Seeds per variant to detect a difference of {me:g} with 80% power (pooled sd {pw['pooled_sd']:.3g}): "
            f"{pw['seeds_needed']:.0f}, now {pw['seeds_now']}." if pw["seeds_needed"] == pw["seeds_needed"] else "")
    # the words of the report's headers (reports.readable.HEADERS), not the CSV's column names
    return (f"{row['study']}: {row['metric']}; 'finished' of 'seeds' runs ended ok. {row['ci_method']}; difference "
            f"vs baseline = variant - baseline with its {level} interval, change vs baseline = difference / "
            f"|baseline mean|, p: {row['test']} (two-sided), adjusted p by {row['correction']} over the family of "
            f"{row['family']}. Decisions: better/worse when adjusted p < {row['alpha']:.4g} and the interval lies "
            f"beyond 0; {threshold}; undecided otherwise.{looks}{need}")


def ablations_section(r: Report, abl, ablation_effects: dict) -> None:
    r.add("h2", "Ablations")
    for note in abl.skipped:
        r.add("text", f"Skipped input: {note}")
    for study, eff in ablation_effects.items():
        r.add("h3", f"Study {study}")
        r.table(f"effects_{study}", eff.drop(columns=["study"]))
        runs = abl.runs[abl.runs["study"] == study]
        bad = runs[runs["status"] != "ok"]
        if not bad.empty:
            r.table(f"unfinished_{study}", bad[["variant", "seed", "status", "error", "diverged_epoch"]],
                    "failed and diverged runs")
        if (eff["variant"] != "baseline").any():
            r.figure(f"effects_{study}", lambda ax, s=study, e=eff: plots.ablation_effects(e, ax, study=s))
        hist = abl.history[abl.history["study"] == study] if not abl.history.empty else abl.history
        if not hist.empty:
            r.figure(f"curves_{study}", lambda ax, s=study: plots.learning_curves(abl.history, ax, study=s))
            r.figure(f"lr_{study}", lambda ax, s=study: plots.lr_trace(abl.history, ax, study=s))
