"""`run --until-decided`: add seeds, a round at a time, only where the answer is still open.

    python -m ablations run STUDY.toml --out DIR --until-decided [--max-seeds 10] [--min-effect 0.01]

Procedure (one_at_a_time designs). Look 0 is the study's own seeds. At each look every variant is compared with
the baseline (`ablations.stats.effects`: Welch t, Holm across the variants) at the per-look level
alpha / L, where L = max_seeds - len(seeds) + 1 is the number of planned looks. A variant is decided when it is
`better`, `worse` or `equivalent` (its interval inside +/- min_effect). If some variant is still undecided and the
baseline has fewer than max_seeds seeds, round r adds seed max(seeds) + r to the baseline and to every undecided
variant below max_seeds, then looks again.

Why it holds its error rate: every look sees the baseline with one more seed, so there are at most L looks; at
each, Holm keeps the chance of any false better/worse below alpha / L; by Bonferroni over the looks the chance of
one at any look, the report's final analysis included, stays below alpha (tests/test_stats_calibration.py).

Added runs are ordinary runs (the id hashes the resolved config and seed). Look r uses only the runs of the
rounds before it, so a rerun after a kill replays the same looks from the records and continues the round that
was cut short. The plan (alpha, max_seeds, min_effect) is kept in `adaptive.json`; the report reads it.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from vggcore.validation import MIN_EFFECT, optional

from .runner import RunOptions, run_study
from .stats import adjust, decide, effects, welch
from .store import PLAN, Plan, Store
from .study import RunSpec, Study, StudyError, resolve, run_id, variant_name, variants

__all__ = ["DEFAULT_MAX_SEEDS", "PLAN", "Plan", "added_seeds", "make_plan", "run_until_decided", "simulate"]
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
    n0 = len(study.seeds)
    if max_seeds is None:
        max_seeds = study.max_seeds if study.max_seeds is not None else max(DEFAULT_MAX_SEEDS, n0)
    elif max_seeds < n0:
        raise StudyError(f"--max-seeds {max_seeds} is below the study's {n0} seeds; give at least {n0}")
    return Plan(min_effect=min_effect, max_seeds=max_seeds, initial_seeds=n0)


def added_seeds(study: Study, plan: Plan) -> list[int]:
    """Seed of round r (1-based) is added_seeds[r - 1]: the next integers after the study's largest seed."""
    top = max(study.seeds)
    return [top + r for r in range(1, plan.max_seeds - len(study.seeds) + 1)]


def _spec(study: Study, levels: dict[str, str], seed: int) -> RunSpec:
    config = resolve(study, levels, seed)
    return RunSpec(run_id(config), study.name, variant_name(study, levels), levels, seed, config)


def _frame(records: dict, specs: list[RunSpec], metric: str):
    import pandas as pd

    rows = []
    for s in specs:
        r = records.get(s.run_id)
        if r is not None:
            rows.append({"study": s.study, "variant": s.variant, "seed": s.seed, "status": r.get("status"),
                         metric: (r.get("final") or {}).get(metric)})
    return pd.DataFrame(rows, columns=["study", "variant", "seed", "status", metric])


def run_until_decided(study: Study, store: Store, options: RunOptions, plan: Plan,
                      report: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict:
    """Run the study, then rounds of added seeds until every variant is decided or at max_seeds.
    Returns {"looks", "decisions" (variant -> decision), "seeds" (variant -> runs), "failed", "ran"}."""
    store.prepare()
    store.keep_plan(plan)
    levels = {variant_name(study, lv): lv for lv in variants(study)}
    specs = [_spec(study, lv, s) for lv in levels.values() for s in study.seeds]
    extra: list[RunSpec] = []
    ran = run_study(study, store, options, report)["ran"]
    rounds = added_seeds(study, plan)
    for look in range(len(rounds) + 1):
        records = store.read(warn=False).records
        frame = _frame(records, specs, study.metric)
        eff = effects(frame, study.metric, study.maximize, min_effect=plan.min_effect,
                      alpha=plan.alpha_per_look, correction=plan.correction).set_index("variant")
        seeds = frame.groupby("variant").size()
        comp = eff[eff.index != "baseline"]
        open_ = [v for v in comp.index if comp.at[v, "decision"] == "undecided" and seeds.get(v, 0) < plan.max_seeds]
        report(_progress(look, plan, comp, seeds, open_, study.metric))
        if not open_ or look == len(rounds) or seeds.get("baseline", 0) >= plan.max_seeds:
            break
        seed = rounds[look]
        new = [_spec(study, levels[v], seed) for v in ["baseline", *open_]]
        extra += new
        specs += new
        ran += run_study(study, store, options, report, extra=extra)["ran"]
    failed = sum(1 for s in specs if records.get(s.run_id, {}).get("status") == "failed")
    return {"looks": look + 1, "decisions": comp["decision"].to_dict(), "seeds": seeds.to_dict(),
            "failed": failed, "ran": ran}


def _progress(look: int, plan: Plan, comp, seeds, open_: list[str], metric: str) -> str:
    lines = [f"look {look + 1} of at most {plan.looks} (alpha {plan.alpha:g} / {plan.looks} looks = "
             f"{plan.alpha_per_look:.4g} per look, {plan.correction} across {len(comp)} variant(s)):"]
    me = plan.min_effect
    for v, row in comp.iterrows():
        n = int(seeds.get(v, 0))
        head = (f"  {v}: {row['decision']}, n={n}, {metric} diff {row['diff']:+.4g} "
                f"[{row['diff_low']:+.4g}, {row['diff_high']:+.4g}], p_adj {row['p_adjusted']:.3g}")
        if v in open_:
            why = "interval crosses 0" if row["diff_low"] <= 0 <= row["diff_high"] or np.isnan(row["diff_low"]) \
                else "not significant after adjustment"
            why += f" and is not inside +/-{me:g}" if me else " (no min_effect: cannot stop as equivalent)"
            head += f"  -> open: {why}; adding a seed"
        elif row["decision"] == "undecided":
            head += f"  -> stopped at max_seeds {plan.max_seeds}"
        lines.append(head)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- simulation (pure)
def simulate(values: np.ndarray, n0: int, max_seeds: int, min_effect: float | None = None,
             maximize: bool = False, alpha: float = 0.05, correction: str = "holm") -> dict:
    """The same procedure on pre-drawn outcomes, vectorised over studies, for calibration tests.

    values: (studies, 1 + variants, max_seeds), arm 0 the baseline; arm a's k-th run is values[:, a, k].
    Returns codes (final decision per variant, ablations.stats.decide codes), ever_rejected (a better/worse at any
    look), n (seeds per arm), low/high (final intervals of variant - baseline)."""
    studies, arms, _ = values.shape
    looks = max_seeds - n0 + 1
    per = alpha / looks
    n = np.full((studies, arms), n0)
    ever = np.zeros((studies, arms - 1), dtype=bool)
    k = np.arange(max_seeds)
    for look in range(looks):
        mask = k[None, None, :] < n[:, :, None]
        mean = np.where(mask, values, 0).sum(-1) / n
        var = np.where(mask, (values - mean[..., None]) ** 2, 0).sum(-1) / (n - 1)
        _, low, high, p = welch(mean[:, 1:], var[:, 1:], n[:, 1:], mean[:, :1], var[:, :1], n[:, :1], per)
        codes = decide(low, high, adjust(p, correction), maximize, min_effect, per)
        ever |= (codes == 1) | (codes == 2)
        open_ = (codes == 0) & (n[:, 1:] < max_seeds)
        go = open_.any(axis=1) & (n[:, 0] < max_seeds)
        if look == looks - 1 or not go.any():
            break
        n[:, 1:] += open_ & go[:, None]
        n[:, 0] += go
    return {"codes": codes, "ever_rejected": ever, "n": n, "low": low, "high": high}
