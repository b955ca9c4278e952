"""Ablation-study sections: per study, the effects with their statistics, seeds that did not train, the seeds each
variant needs and which one is expensive to decide, unfinished runs, figures. The numbers are
`ablations.stats.frames.effects` (its COLUMNS are tables/effects.csv's); this module only puts them in words."""

from __future__ import annotations

import pandas as pd

from ablations.stats.failures import failure_line, rule_text
from ablations.stats.frames import COLUMNS, effects, expensive
from ablations.stats.headline import arm_seeds_text, effect_text, failure_text, headline, method_summary
from ablations.stats.planning import LIMIT as SEEDS_LIMIT
from ablations.stats.robust import TRAINED_ONLY
from ablations.stats.sequential import RULE_LABELS
from ablations.store import Plan

from .. import plots
from ..document import Report
from ..load import AblationData
from . import Inputs

EFFECTS_COLUMNS = list(COLUMNS)
POWER_COLUMNS = ["study", "variant", "n_ok", "n_not_trained", "n_used", "std", "decision", "seeds_needed",
                 "seeds_needed_reason"]


def study_effects(abl: AblationData, method: str = "t", min_effect: float | None = None,
                  correction: str = "holm") -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(study -> effects table, study -> per-variant seeds-needed table); `min_effect` overrides each study's own.
    A folder run --until-decided is analysed at its plan's per-look levels, replaying its looks."""
    ablation_effects, powers = {}, {}
    if abl is None or abl.runs.empty:
        return ablation_effects, powers
    for _, s in abl.studies.iterrows():
        runs = abl.runs[abl.runs["study"] == s["study"]]
        me = min_effect if min_effect is not None else s.get("min_effect")
        me = None if me is None or me != me else float(me)
        plan = s.get("plan") if isinstance(s.get("plan"), Plan) else None   # None: fixed seeds
        eff = effects(runs, s["metric"], bool(s["maximize"]), method, min_effect=me,
                      alpha=plan.alpha if plan is not None else 0.05, correction=correction,
                      statistic=s.get("statistic") or "trained",
                      schedule=plan.schedule() if plan is not None else None)
        ablation_effects[s["study"]] = eff
        powers[s["study"]] = eff[eff["variant"] != "baseline"][POWER_COLUMNS].reset_index(drop=True)
    return ablation_effects, powers


def add(r: Report, inp: Inputs) -> None:
    if inp.ablations is not None:
        ablations_section(r, inp.ablations, inp.effects)


def seeds_text(seeds: float) -> str:
    """Seeds needed in words: a count, "more than 10,000" past planning's limit, "cannot plan" for NaN."""
    if seeds != seeds:
        return "cannot plan"
    return f"{seeds:,.0f}" if seeds <= SEEDS_LIMIT else f"more than {SEEDS_LIMIT:,}"


# The detailed effects table (the studies section; the CSV keeps every column of COLUMNS): both arms of each row at
# its look, the change of the mean only with its interval. How the numbers were made is said once, under it, by
# method_detail; the summary's plain table is `effects_display` (ablations.stats.headline).
DETAIL_COLUMNS = ["variant", "n", "n_ok", "n_not_trained", "n_used", "mean", "ci_low", "ci_high", "n_used_baseline",
                  "baseline_mean", "baseline_ci_low", "baseline_ci_high", "diff", "diff_low", "diff_high",
                  "estimand", "rel_diff", "rel_low", "rel_high", "p_adjusted", "decision", "decided_by", "look",
                  "alpha", "seeds_needed"]


def effects_display(eff: pd.DataFrame) -> pd.DataFrame:
    """The plain headline table (ablations.stats.headline): variant, decision, effect with its interval, the
    estimand, seeds per arm, adjusted p, the level and look of the row."""
    return headline(eff)


def effects_detail(eff: pd.DataFrame) -> pd.DataFrame:
    """The effects table with both arms of each row (machine columns that `reports.readable` turns into words);
    the look column only for studies run --until-decided, "decided by" only where a variant was decided by its
    failure rate."""
    shown = {"look": (eff["rule"] != "fixed seeds").any(),
             "decided_by": "decided_by" in eff and (eff["decided_by"] == "failure rate").any()}
    cols = [c for c in DETAIL_COLUMNS if shown.get(c, True)]
    return eff[cols]


def method_text(eff: pd.DataFrame) -> str:
    """The few sentences under the plain table, pointing at the study's section for the method."""
    return method_summary(eff, detail=f"'Study {eff['study'].iloc[0]}' under Ablations below, and "
                                      "docs/statistics.md")


def method_detail(eff: pd.DataFrame) -> str:
    """One study's statistics in words: statistic, intervals, family, look rule and levels, threshold. It uses the
    words of the report's headers (reports.readable.HEADERS), not the CSV's column names."""
    row = eff.iloc[0]
    me = row["min_effect"]
    threshold = (f"equivalent: the interval lies inside +/-{me:g}" if me == me
                 else "no min_effect set, so no variant can be called equivalent")
    if row["rule"] == "fixed seeds":
        looks = f"Fixed seeds: one analysis, every interval and test at level (alpha) {row['alpha']:.4g}."
    else:
        levels = sorted(set(float(x) for x in eff["alpha"].round(8)))
        looks = (f"Seeds were added --until-decided ({RULE_LABELS.get(row['rule'], row['rule'])}): {row['looks']} "
                 f"planned looks analysed; every number on a variant's row (both arms' seeds, means and intervals, "
                 f"the difference, p, the failure test, the decision) comes from the seeds of the look that decided "
                 f"it (the last look while undecided), at that look's level ({', '.join(f'{x:.3g}' for x in levels)}"
                 f" here), a family-wise {row['alpha_family']:g} over all looks.")
    return (f"{row['study']}: {row['metric']}. Decision statistic: {row['test']}. Intervals: {row['ci_method']}. "
            f"Difference vs baseline = variant - baseline (its estimand is named on the row); change vs baseline = "
            f"the variant's mean / the baseline's mean - 1, with its Fieller interval; adjusted p by "
            f"{row['correction']} over the family of {row['family']}; better/worse when adjusted p < the level and "
            f"the interval lies beyond 0; worse also when the variant's seeds fail to train more often than the "
            f"baseline's by a one-sided Fisher exact test that rejects on its own; {threshold}; undecided "
            f"otherwise. Where a seed of the pair did not train, p is 2 x the smaller of the trained seeds' p and "
            f"the failure test's (Bonferroni, at most 1). {looks}")


def failure_lines(eff: pd.DataFrame) -> list[str]:
    """Per variant: "k of n seeds did not train" with its interval, the excess-failure p on a line of its own
    (how it enters the decision, and whether it decided it), and the effect among the seeds that trained beside
    it."""
    lines = []
    base = eff[eff["variant"] == "baseline"]
    base_not_trained = int(base["n_not_trained"].iloc[0]) if len(base) else 0
    for _, row in eff.iterrows():
        judged = int(row["n_ok"]) + int(row["n_diverged"])   # a diverged seed did not train
        head = f"{row['variant']}: {failure_line(int(row['n_not_trained']), judged)}"
        if row["n_diverged"]:
            head += f" ({row['n_diverged']} of them diverged)"
        if row["n_failed"]:
            head += f"; {row['n_failed']} failed (an error: counted apart)"
        if row["variant"] != "baseline":
            head += (f"; effect among the seeds that trained at look {int(row['look'])}: {effect_text(row)}"
                     f" ({row['estimand'] or 'none'}, {arm_seeds_text(row)} seeds)")
        lines.append(head)
        if row["variant"] != "baseline" and row["excess_failure_p"] == row["excess_failure_p"]:
            line = (f"{row['variant']} fails to train more often than the baseline? at look {int(row['look'])}, "
                    f"{failure_text(row)}")
            if row["statistic"] not in TRAINED_ONLY:
                line += f" (not part of the decision: the {row['statistic']} statistic keeps every finished seed)"
            elif row["n_not_trained"] or base_not_trained:
                line += (" (part of the decision: a seed of the pair did not train, so the variant's p is 2 x the "
                         "smaller of this p and the trained seeds' p, at most 1)")
            if row.get("decided_by") == "failure rate":
                line += "; decided worse by its failure rate"
            lines.append(line)
    return lines


def expensive_text(eff: pd.DataFrame) -> str:
    """Which variant is expensive to decide and why, or that none is left open."""
    variants = eff[eff["variant"] != "baseline"]
    worst = expensive(variants)
    if worst is None:
        return "Every variant is decided: no seeds needed."
    per = "; ".join(f"{v}: {seeds_text(s)}" for v, s, d in
                    zip(variants["variant"], variants["seeds_needed"], variants["decision"]) if d == "undecided")
    return (f"Seeds needed per undecided variant (80% power for min_effect, each from its own spread and rate of "
            f"seeds that did not train): {per}. Expensive to decide: {worst['variant']}, "
            f"{worst['seeds_needed_reason']}.")


def ablations_section(r: Report, abl, ablation_effects: dict) -> None:
    r.add("h2", "Ablations")
    for note in abl.skipped:
        r.add("text", f"Skipped input: {note}")
    if ablation_effects:
        r.add("text", f"Seeds that did not train: {rule_text()}. The rate's interval is Clopper-Pearson (95%).")
    for study, eff in ablation_effects.items():
        r.add("h3", f"Study {study}")
        r.table(f"effects_{study}", eff.drop(columns=["study"]), display=effects_detail(eff))
        r.add("text", method_detail(eff))
        for line in failure_lines(eff):
            r.add("text", line)
        r.add("text", expensive_text(eff))
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
