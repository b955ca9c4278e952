"""`run --until-decided`: add seeds, a round at a time, only where the answer is still open.

    python -m ablations run STUDY.toml --out DIR --until-decided [--max-seeds 10] [--min-effect 0.025]

Procedure (one_at_a_time designs). Look 0 is the study's own seeds. At each look every variant not yet decided is
compared with the baseline by the plan's decision statistic (default "trained": the seeds that did not train set
aside, `ablations.stats.robust`) at the look's own nominal level, Holm across the variants, and decided: `better`,
`worse`, or `equivalent` (its interval inside +/- min_effect). Failing to train counts: where a seed of the pair did
not train, the variant's p is the Bonferroni combination with a one-sided Fisher test of its failure rate, and a
variant whose seeds fail significantly more often is `worse` ("fails to train", `sequential.look_step`). A decided
variant keeps its decision. If some variant is still undecided and the baseline has fewer than max_seeds seeds,
round r adds seed max(seeds) + r to the baseline and to every undecided variant, then looks again.

The levels (`ablations.stats.sequential.look_levels`, rule "obf"): Lan-DeMets O'Brien-Fleming-like alpha spending
over the L = max_seeds - len(seeds) + 1 planned looks, exact for correlated looks of a z statistic, so the chance of
any false better/worse over all looks stays near alpha (family-wise at most 4.3% in the worst of 12 simulated
scenarios, docs/statistics.md section 4). For 3 to 10 seeds the levels run from 0.00035 at the first look to 0.034 at the last, where the even split gives
0.00625 to every look; simulated with four variants (min_effect 0.02), the new rule needed 9.2-9.4 seeds per
no-effect variant against 9.7-9.9, and found a +0.02 change in 40-55% of studies against 4-29%.

A folder started before the rules were recorded (adaptive.json without "rule") keeps its own: alpha / L at every
look, Welch t on every finished seed, every look re-deciding; a rerun of such a folder continues under it.

Every look is computed by `ablations.stats.frames.effects(..., schedule=plan.schedule())`, the replay of the
looks from the records that the report runs too, so the report's decisions are the run's; each row's numbers come
from the seeds of the look that decided it, and the run ends by printing the report's plain table
(`ablations.stats.headline`). Added runs are ordinary
runs (the id hashes the resolved config and seed). A rerun after a kill replays the same looks from the records
and continues the round that was cut short. The plan is kept in `adaptive.json`.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from vggcore.validation import MIN_EFFECT, optional

from .runner import RunOptions, run_study
from .stats.bounded import metric_bounds
from .stats.errors import check_min_effect
from .stats.frames import effects
from .stats.headline import effect_text, failure_text, headline_text, arm_seeds_text
from .stats.sequential import RULE_LABELS
from .store import PLAN, Plan, Store
from .study import RunSpec, Study, StudyError, variant_name, variants

__all__ = ["DEFAULT_MAX_SEEDS", "PLAN", "Plan", "added_seeds", "make_plan", "run_until_decided"]
DEFAULT_MAX_SEEDS = 10


def make_plan(study: Study, min_effect: float | None = None, max_seeds: int | None = None) -> Plan:
    """The plan from the command line, else the study file, else defaults; refuses what cannot be run."""
    if study.design != "one_at_a_time":
        raise StudyError(
            f"--until-decided needs a one_at_a_time design; study {study.name} is {study.design!r}. A full "
            "factorial asks about main effects and interactions, which the per-variant comparison with the "
            "baseline does not test, and adding seeds cell by cell would unbalance it. Run it with fixed seeds")
    if len(variants(study)) < 2:
        raise StudyError(f"--until-decided: study {study.name} has no variant to compare with the baseline")
    min_effect = study.min_effect if min_effect is None else min_effect
    optional(MIN_EFFECT)("--min-effect", min_effect)
    check_min_effect(min_effect, metric_bounds(study.metric)[0], study.metric)
    n0 = len(study.seeds)
    if max_seeds is None:
        max_seeds = study.max_seeds if study.max_seeds is not None else max(DEFAULT_MAX_SEEDS, n0)
    elif max_seeds < n0:
        raise StudyError(f"--max-seeds {max_seeds} is below the study's {n0} seeds; give at least {n0}")
    plan = Plan(min_effect=min_effect, max_seeds=max_seeds, initial_seeds=n0, statistic=study.statistic)
    plan.schedule()   # the levels are computed (and checked) before any run
    return plan


def added_seeds(study: Study, plan: Plan) -> list[int]:
    """Seed of round r (1-based) is added_seeds[r - 1]: the next integers after the study's largest seed."""
    top = max(study.seeds)
    return [top + r for r in range(1, plan.max_seeds - len(study.seeds) + 1)]


def _spec(study: Study, levels: dict[str, str], seed: int) -> RunSpec:
    return RunSpec.of(study, levels, seed)


def _frame(records: dict, specs: list[RunSpec], metric: str):
    """The runs table (`ablations.runs`) of the specs recorded so far, in the specs' order."""
    from .runs import runs_table

    return runs_table([records[s.run_id] for s in specs if s.run_id in records])


def analyse(study: Study, plan: Plan, records: dict, specs: list[RunSpec]):
    """The looks the records of `specs` hold, replayed under the plan: the effects frame indexed by variant."""
    frame = _frame(records, specs, study.metric)
    return effects(frame, study.metric, study.maximize, min_effect=plan.min_effect, alpha=plan.alpha,
                   correction=plan.correction, statistic=plan.statistic,
                   schedule=plan.schedule()).set_index("variant"), frame


def run_until_decided(study: Study, store: Store, options: RunOptions, plan: Plan,
                      report: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict:
    """Run the study, then rounds of added seeds until every variant is decided or at max_seeds.
    Returns {"looks", "decisions" (variant -> decision), "seeds" (variant -> runs), "failed", "ran", "plan"}:
    the plan the folder runs under (the one it recorded, when it was started before)."""
    store.prepare()
    plan = store.keep_plan(plan)
    levels = {variant_name(study, lv): lv for lv in variants(study)}
    specs = [_spec(study, lv, s) for lv in levels.values() for s in study.seeds]
    extra: list[RunSpec] = []
    ran = run_study(study, store, options, report)["ran"]
    rounds = added_seeds(study, plan)
    for look in range(len(rounds) + 1):
        records = store.read(warn=False).records
        eff, frame = analyse(study, plan, records, specs)
        seeds = frame.groupby("variant").size()
        comp = eff[eff.index != "baseline"]
        open_ = [v for v in comp.index if comp.at[v, "decision"] == "undecided" and seeds.get(v, 0) < plan.max_seeds]
        base = eff.loc["baseline"] if "baseline" in eff.index else None
        report(progress(look, plan, comp, seeds, open_, study.metric, base))
        if not open_ or look == len(rounds) or seeds.get("baseline", 0) >= plan.max_seeds:
            break
        seed = rounds[look]
        new = [_spec(study, levels[v], seed) for v in ["baseline", *open_]]
        extra += new
        specs += new
        ran += run_study(study, store, options, report, extra=extra)["ran"]
    report(headline_text(eff.reset_index()))
    failed = sum(1 for s in specs if s.run_id in records and records[s.run_id].status == "failed")
    return {"looks": look + 1, "decisions": comp["decision"].to_dict(), "seeds": seeds.to_dict(),
            "failed": failed, "ran": ran, "plan": plan}


def plan_line(plan: Plan) -> str:
    """The plan in words: rule, looks and their levels."""
    levels = plan.levels
    span = f"{levels[0]:.4g}" if len(set(levels)) == 1 else f"{levels[0]:.3g} at the first to {levels[-1]:.3g} at the last"
    return (f"up to {plan.max_seeds} seeds per variant, {plan.looks} look(s), {RULE_LABELS[plan.rule]}: level "
            f"{span} (family-wise {plan.alpha:g}); {plan.statistic} statistic, {plan.correction} across the "
            f"variants; min_effect {plan.min_effect}")


def progress(look: int, plan: Plan, comp, seeds, open_: list[str], metric: str, base=None) -> str:
    """One look's lines for the terminal: each variant's decision, effect with its interval, the seeds of both arms
    its row comes from, and why it is still open; a variant decided by its failure rate says so with both arms'
    counts and the Fisher p of its deciding look (base: unused, kept for callers that pass it)."""
    level = plan.levels[min(look, plan.looks - 1)]
    lines = [f"look {look + 1} of at most {plan.looks} (level {level:.4g} at this look, {plan.rule} rule; "
             f"{plan.correction} across {len(comp)} variant(s)):"]
    me = plan.min_effect
    for v, row in comp.iterrows():
        n = int(seeds.get(v, 0))
        decision = row["decision"]
        if row.get("decided_by") == "failure rate":
            decision += f" (fails to train: {failure_text(row)})"
        what = f"{row['estimand']} " if row["diff"] == row["diff"] else ""   # no estimate: say what is true
        head = (f"  {v}: {decision}, n={n}, {metric} {what}{effect_text(row)} "
                f"({arm_seeds_text(row)} seeds, {(1 - row['alpha']) * 100:.4g}% interval), p_adj "
                f"{row['p_adjusted']:.3g}")
        if row["k_compared"] and row.get("decided_by") != "failure rate":
            head += f", {int(row['k_compared'])} of {int(row['n_compared'])} did not train"
        if v in open_:
            why = "interval crosses 0" if row["diff_low"] <= 0 <= row["diff_high"] or np.isnan(row["diff_low"]) \
                else "not significant after adjustment"
            why += f" and is not inside +/-{me:g}" if me else " (no min_effect: cannot stop as equivalent)"
            head += f"  -> open: {why}; adding a seed"
        elif row["decision"] == "undecided":
            head += f"  -> stopped at max_seeds {plan.max_seeds}"
        elif plan.freeze and row["look"] < look + 1:
            head += f"  (decided at look {int(row['look'])})"
        lines.append(head)
    return "\n".join(lines)
