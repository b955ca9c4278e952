"""A study's runs in, the numbers the report, `ablations status` and `run --until-decided` print out: tidy frames.

    eff = effects(runs, "test_top1_error", maximize=False, min_effect=0.025)        # fixed seeds: one look
    eff = effects(runs, metric, schedule=plan.schedule(), statistic=plan.statistic)  # replays the looks
    summarize(runs, metric)          # the descriptive columns alone
    power(runs, metric, min_effect)  # per variant: seeds needed and why

`runs`: one row per run, columns study, variant, status ("ok", "failed", "diverged"), the metric, and where known
seed and the inputs of the rule for seeds that did not train (`failures.RULE_COLUMNS`: first_train_loss,
final_train_loss, rule_error, num_classes; a column that is absent is no evidence). `reports.load.load_ablations`
and `ablations.adaptive` build it from the records.

Per study, every variant is compared with the baseline by the decision statistic (`robust.compare`; DEFAULT
"trained": on the seeds that trained, Welch t with intervals inside the metric's bounds below 7 trained seeds per
arm, the Hodges-Lehmann shift with its exact interval from 7 on; where a seed of the pair did not train, its p
combined with a one-sided Fisher test of the failure rate, `sequential.look_step`), the family's p-values adjusted
(Holm), and each variant decided: from the interval (`primitives.decide`), or worse by its failure rate. With
--interval bootstrap the one analysis decides from the trained seeds alone, as before. With a `schedule`
(adaptive.json) the looks of `run --until-decided` are replayed from the records by the procedure's own step
(`sequential.look_step`), at the plan's per-look levels: look 0 sees the study's listed seeds, look k the k-th added
seed; a look counts once the baseline and every variant still open have a record at its seed. Under the rule a new
plan records (obf) a variant keeps the decision of the look that made it; under the even split recorded by older
folders every look re-decides, as that code did, so such a folder gives the decisions it gave.

Every column of `effects` is described in COLUMNS (the report's tables/effects.csv has these columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vggcore.results import METRICS
from vggcore.validation import MIN_EFFECT, optional

from .bounded import interval_label, mean_interval, metric_bounds
from .errors import StatsInputError, check_alpha, check_min_effect
from .failures import did_not_train_rows, excess_failures_p, rate_interval
from .planning import plan_variants
from .primitives import ALPHA, CORRECTION_NAMES, DECISIONS, adjust, check_correction, decide, fieller
from .robust import DEFAULT, ESTIMANDS, LABELS, TRAINED_ONLY
from .samples import bootstrap_label, diff_test, mean_interval as sample_interval
from .sequential import Schedule, look_step, new_state

METHODS = ("t", "bootstrap")

COLUMNS = {
    "study": "the study's name",
    "variant": "baseline, or factor=level (a=x,b=y in full designs)",
    "metric": "what the study ranks by; every value column is in its units (an error rate is a fraction)",
    "n": "runs recorded for the variant, whatever their status",
    "n_ok": "runs that finished with a value of the metric",
    "n_failed": "runs that failed (an error, no result)",
    "n_diverged": "runs that diverged (a non-finite training loss, no result)",
    "n_not_trained": "seeds that did not train: finished runs the rule flags (failures.rule_text) and runs that "
                     "diverged, of n_ok + n_diverged",
    "not_trained_low": "95% Clopper-Pearson interval on the rate behind n_not_trained of n_ok + n_diverged: low "
                       "end",
    "not_trained_high": "... and high end",
    "excess_failure_p": "one-sided Fisher exact p that the variant's seeds fail to train more often than the "
                        "baseline's, k_compared of n_compared against k_compared_baseline of n_compared_baseline "
                        "(the seeds of this row's look); NaN on the baseline. Part of the decision: where a seed "
                        "of the pair did not train, p_value is min(1, 2 min(p of the trained seeds, this p)) "
                        "(sequential.look_step)",
    "n_used": "seeds the decision statistic uses at this row's look: the trained seeds for trained / "
              "welch_trained / paired, every finished seed otherwise (the baseline row: at the last look)",
    "mean": "mean of the metric over the n_used seeds",
    "std": "their seed-to-seed standard deviation (ddof 1)",
    "median": "their median",
    "ci_low": "interval of the mean at 1 - alpha (ci_method says how it was made): low end",
    "ci_high": "... and high end",
    "mean_all": "mean over all n_ok finished seeds, those that did not train included",
    "n_used_baseline": "the baseline's seeds the decision statistic uses at this row's look",
    "baseline_mean": "the baseline's mean over those seeds: the mean this row's difference is taken against",
    "baseline_ci_low": "its interval at this row's level: low end",
    "baseline_ci_high": "... and high end",
    "diff": "variant - baseline by the decision statistic: a difference of means, or the Hodges-Lehmann shift "
            "(diff_method)",
    "diff_low": "interval of diff at 1 - alpha: low end (inside the metric's range for a bounded metric)",
    "diff_high": "... and high end",
    "diff_method": "which statistic made this row's diff: welch_trained, hodges_lehmann, paired_t, welch, ...",
    "estimand": "what diff estimates, in words (robust.ESTIMANDS): difference of means, Hodges-Lehmann shift, "
                "mean of paired differences, ...",
    "rel_diff": "relative change of the mean: mean / baseline_mean - 1 (a ratio of means, whatever diff estimates)",
    "rel_low": "Fieller interval of rel_diff at this row's level (paired where diff is): low end; -inf/inf "
               "where the baseline's mean is not clearly away from 0",
    "rel_high": "... and high end",
    "p_value": "p of 'no difference' (the same rate of not training and the same trained values): the trained "
               "seeds' two-sided p, or where a seed of the pair did not train its Bonferroni combination with the "
               "failure test's p (2 x the smaller, at most 1)",
    "p_adjusted": "p_value adjusted over the family (correction) at the look this row shows",
    "decision": "better / worse (p_adjusted < alpha and the interval beyond 0), worse (the variant fails to train "
                "more often: the failure test alone rejects), equivalent (the interval inside +/- min_effect), "
                "undecided; 'baseline' on the baseline row",
    "decided_by": "what the decision rests on: 'failure rate' (worse because its seeds fail to train more often), "
                  "'trained seeds' (the comparison of the seeds that trained), '' while undecided and on the "
                  "baseline row",
    "look": "the look (1-based) this row's comparison comes from: the one that decided it, else the last "
            "analysed; 1 for fixed seeds",
    "alpha": "the nominal two-sided level of that look: intervals are at 1 - alpha (the family's alpha for "
             "fixed seeds)",
    "n_compared": "seeds of the variant that look saw with an outcome (finished, or diverged)",
    "n_compared_baseline": "seeds of the baseline that look saw with an outcome (finished, or diverged)",
    "k_compared": "of n_compared, the variant's seeds that did not train (diverged ones included)",
    "k_compared_baseline": "of n_compared_baseline, the baseline's seeds that did not train",
    "seeds_needed": "seeds per arm for 80% power to detect min_effect, planned from this variant's own trained "
                    "seeds' sd, the baseline's, and both rates of seeds that did not train (planning.seeds_needed)",
    "seeds_needed_reason": "what makes the variant cheap or expensive to decide",
    "min_effect": "smallest difference that matters (metric units); NaN: none set",
    "alpha_family": "family-wise error rate over every comparison and look (0.05)",
    "statistic": "the decision statistic's name (robust.LABELS)",
    "test": "the decision statistic in words",
    "ci_method": "how the intervals were made: bounded in the metric's range, or unbounded (plain t)",
    "correction": "the adjustment over the family (Holm or Benjamini-Hochberg)",
    "family": "what the adjustment ran over",
    "rule": "how the looks spent alpha: fixed seeds (one look), or the plan's rule (even / obf)",
    "looks": "looks analysed of those planned (1 of 1 for fixed seeds)",
}
SUMMARY_COLUMNS = ["study", "variant", "n", "n_ok", "n_failed", "n_diverged", "n_not_trained", "n_used", "mean",
                   "std", "median", "ci_low", "ci_high", "ci_method"]


class MetricMissing(StatsInputError):
    """A study's metric is in none of its finished records."""


def _check_arguments(method: str, alpha: float, correction: str, statistic: str) -> None:
    if method not in METHODS:
        raise StatsInputError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")
    check_alpha(alpha)
    check_correction(correction)
    if statistic not in LABELS:
        raise StatsInputError(f"unknown statistic {statistic!r}; choose one of {', '.join(LABELS)}")


def check_metric(runs: pd.DataFrame, metric: str) -> None:
    """Refuse a study whose finished runs hold no value of `metric`, naming what they hold."""
    for study, group in runs.groupby("study", sort=False):
        finished = group[group["status"] == "ok"]
        if finished.empty or (metric in finished and finished[metric].notna().any()):
            continue
        held = [m for m in METRICS if m in finished and finished[m].notna().any()]
        raise MetricMissing(f"study {study}: metric {metric!r} is in none of its {len(finished)} finished "
                            f"records; they hold {', '.join(held) or 'no known metric'}: set [study] metric to one "
                            "of those")


# ---------------------------------------------------------------------------------------------- one study
class Arms:
    """One study's runs as (arms, columns) arrays, arm 0 the baseline (empty if the study has none) and one
    column per (seed, occurrence); what the looks and the descriptive columns are computed from."""

    def __init__(self, group: pd.DataFrame, metric: str) -> None:
        group = group.copy()
        if "seed" not in group or group["seed"].isna().any():
            group["seed"] = group.groupby("variant", sort=False).cumcount()   # frames without seeds: run order
        group["seed"] = group["seed"].astype(int)
        group["nth"] = group.groupby(["variant", "seed"], sort=False).cumcount()
        names = list(dict.fromkeys(group["variant"]))
        self.has_baseline = "baseline" in names
        self.names = ["baseline", *[v for v in names if v != "baseline"]]
        keys = sorted(set(zip(group["seed"], group["nth"])))
        self.seeds = np.array([s for s, _ in keys])
        col = {k: j for j, k in enumerate(keys)}
        shape = (len(self.names), len(keys))
        self.values = np.full(shape, np.nan)
        self.recorded = np.zeros(shape, dtype=bool)
        self.status = np.full(shape, "", dtype=object)
        rule = {c: group[c].to_numpy(dtype=float) if c in group else np.full(len(group), np.nan)
                for c in ("first_train_loss", "final_train_loss", "rule_error", "num_classes")}
        not_trained = did_not_train_rows(rule["first_train_loss"], rule["final_train_loss"], rule["rule_error"],
                                         rule["num_classes"])
        self.flagged = np.zeros(shape, dtype=bool)
        metric_values = group[metric].to_numpy(dtype=float) if metric in group else np.full(len(group), np.nan)
        arm = {name: i for i, name in enumerate(self.names)}
        for i, (variant, seed, nth, status) in enumerate(zip(group["variant"], group["seed"], group["nth"],
                                                           group["status"])):
            a, j = arm[variant], col[(seed, nth)]
            self.recorded[a, j] = True
            self.status[a, j] = status
            if status == "ok" and not np.isnan(metric_values[i]):
                self.values[a, j] = metric_values[i]
                self.flagged[a, j] = not_trained[i]
        self.finished = ~np.isnan(self.values)
        self.trained = self.finished & ~self.flagged
        self.diverged = (self.status == "diverged") & ~self.finished   # no value, and it did not train
        self.not_trained = (self.finished & self.flagged) | self.diverged

    def look_of_columns(self, schedule: Schedule | None) -> np.ndarray:
        """Look index of each column: 0 for the study's listed seeds, k for the k-th added seed. The listed seeds
        are the `initial_seeds` smallest (every added seed is above the largest listed one)."""
        if schedule is None:
            return np.zeros(len(self.seeds), dtype=int)
        distinct = np.unique(self.seeds)
        top = distinct[min(schedule.initial_seeds, len(distinct)) - 1] if len(distinct) else 0
        return np.clip(self.seeds - top, 0, None)


def replay(arms: Arms, schedule: Schedule | None, alpha: float, min_effect: float | None, maximize: bool,
           statistic: str, bounds, correction: str) -> tuple[dict, int, int]:
    """The looks the records hold, replayed: (state of `sequential.look_step` for one study, looks analysed,
    looks planned). Without a schedule: one look over every seed at `alpha`."""
    levels = schedule.levels if schedule is not None else (alpha,)
    freeze = schedule.freeze if schedule is not None else True
    look_of = arms.look_of_columns(schedule)
    state = new_state(1, len(arms.names) - 1)
    open_ = np.ones(len(arms.names) - 1, dtype=bool)
    analysed = 0
    for k, level in enumerate(levels):
        if k > 0:   # a look counts once the baseline and every open variant have run its seed
            at = look_of == k
            need = [0, *(1 + np.flatnonzero(open_))]
            if not at.any() or not arms.recorded[np.ix_(need, at)].any(axis=1).all():
                break
        seen = np.where((look_of <= k)[None, :], arms.values, np.nan)
        diverged = (look_of <= k)[None, :] & arms.diverged
        state = look_step(state, seen[None], arms.trained[None], level, k, min_effect, maximize, statistic, bounds,
                          freeze, correction, diverged=diverged[None])
        analysed = k + 1
        open_ = state["codes"][0] == 0
        if not open_.any():
            break
    return state, analysed, len(levels)


def _study_rows(group: pd.DataFrame, study: str, metric: str, maximize: bool, method: str, seed: int,
                min_effect: float | None, alpha: float, correction: str, statistic: str,
                schedule: Schedule | None, max_seeds: int | None) -> list[dict]:
    arms = Arms(group, metric)
    bounds, _ = metric_bounds(metric)
    used = arms.trained if statistic in TRAINED_ONLY else arms.finished
    state, analysed, planned = replay(arms, schedule, alpha, min_effect, maximize, statistic, bounds, correction)
    levels = schedule.levels if schedule is not None else (alpha,)
    last_level = levels[max(analysed, 1) - 1]
    if method == "bootstrap":
        seen = arms.look_of_columns(schedule) < max(analysed, 1)
        state = _bootstrap(arms, used & seen[None, :], state, last_level, seed, min_effect, maximize, correction,
                           max(analysed, 1) - 1)
    plan = _plans(arms, used, statistic, min_effect, bounds, schedule.max_seeds if schedule else max_seeds)
    n_ok, n_not = arms.finished.sum(1), arms.not_trained.sum(1)
    n_judged = n_ok + arms.diverged.sum(1)   # seeds whose training has an outcome: finished or diverged
    low_rate, high_rate = rate_interval(n_not, n_judged)
    rule = schedule.rule if schedule is not None else "fixed seeds"
    label = interval_label(bounds, metric, level_text="1 - alpha")
    if method == "bootstrap":
        label = bootstrap_label(seed)
    look_of = arms.look_of_columns(schedule)
    last = max(analysed, 1) - 1
    rows = []
    for a, name in enumerate(arms.names):
        if a == 0 and not arms.has_baseline:
            continue
        v = a - 1
        # the look whose seeds this row's numbers come from: the deciding look, else the last analysed
        at = last if a == 0 or state["at"][0, v] < 0 else int(state["at"][0, v])
        level = last_level if a == 0 or np.isnan(state["level"][0, v]) else float(state["level"][0, v])
        seen = look_of <= at
        arm = _arm(arms.values[a], used[a] & seen, bounds, level, method, seed)
        row = {"study": study, "variant": name, "metric": metric, "n": int(arms.recorded[a].sum()),
               "n_ok": int(n_ok[a]), "n_failed": int(np.sum(arms.status[a] == "failed")),
               "n_diverged": int(np.sum(arms.status[a] == "diverged")), "n_not_trained": int(n_not[a]),
               "not_trained_low": float(low_rate[a]), "not_trained_high": float(high_rate[a]), **arm,
               "mean_all": float(np.nanmean(arms.values[a])) if n_ok[a] else float("nan"),
               "alpha": level, "min_effect": float("nan") if min_effect is None else float(min_effect),
               "alpha_family": alpha, "statistic": statistic,
               "test": LABELS[statistic], "ci_method": label, "rule": rule, "looks": f"{analysed} of {planned}",
               "correction": CORRECTION_NAMES[correction],
               "family": f"{len(arms.names) - 1} comparison(s) with the baseline of study {study}"}
        if a == 0:
            row.update(diff=0.0, diff_low=float("nan"), diff_high=float("nan"), diff_method="", estimand="",
                       p_value=float("nan"), p_adjusted=float("nan"), decision="baseline", look=last + 1,
                       n_compared=int(n_judged[0]), n_compared_baseline=int(n_judged[0]),
                       k_compared=int(n_not[0]), k_compared_baseline=int(n_not[0]), excess_failure_p=float("nan"),
                       seeds_needed=float("nan"), seeds_needed_reason="", rel_diff=0.0, rel_low=float("nan"),
                       rel_high=float("nan"))
        else:
            code = int(state["codes"][0, v]) if arms.has_baseline else 0
            base = _arm(arms.values[0], used[0] & seen, bounds, level, method, seed)
            how = str(state["used"][0, v])
            counts = [state[k][0, v] for k in ("k_variant", "n_variant", "k_baseline", "n_baseline")]
            row.update(diff=float(state["diff"][0, v]), diff_low=float(state["low"][0, v]),
                       diff_high=float(state["high"][0, v]), diff_method=how, estimand=ESTIMANDS.get(how, how),
                       p_value=float(state["p"][0, v]), p_adjusted=float(state["p_adjusted"][0, v]),
                       decision=DECISIONS[code], decided_by=_decided_by(code, bool(state["by_failures"][0, v])),
                       look=at + 1, n_compared=_count(counts[1]), n_compared_baseline=_count(counts[3]),
                       k_compared=_count(counts[0]), k_compared_baseline=_count(counts[2]),
                       excess_failure_p=float(excess_failures_p(*(_count(c) for c in counts)))
                       if arms.has_baseline else float("nan"),
                       baseline_mean=base["mean"], baseline_ci_low=base["ci_low"], baseline_ci_high=base["ci_high"],
                       n_used_baseline=base["n_used"], **plan[v])
            x, y = (np.where(used[i] & seen, arms.values[i], np.nan) for i in (a, 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                row["rel_diff"] = float(row["mean"] / base["mean"] - 1) if base["mean"] else float("nan")
            rel = fieller(x, y, level, paired=how == "paired_t")
            row["rel_low"], row["rel_high"] = (float(r) for r in rel)
            if not arms.has_baseline:
                row["seeds_needed_reason"] = "no baseline runs to compare with"
        rows.append(row)
    return rows


def _arm(values, mask, bounds, level: float, method: str, seed: int) -> dict:
    """One arm's descriptive columns over the seeds `mask` keeps (the seeds of one look the statistic uses)."""
    kept = values[mask]
    if method == "bootstrap":
        low, high = sample_interval(kept, "bootstrap", seed, level)
    else:
        _, low, high = (float(x) for x in mean_interval(np.where(mask, values, np.nan), bounds, level))
    return {"n_used": len(kept), "mean": float(kept.mean()) if len(kept) else float("nan"),
            "std": float(kept.std(ddof=1)) if len(kept) > 1 else float("nan"),
            "median": float(np.median(kept)) if len(kept) else float("nan"), "ci_low": low, "ci_high": high}


def _decided_by(code: int, by_failures: bool) -> str:
    if code == 0:
        return ""
    return "failure rate" if by_failures else "trained seeds"


def _count(x) -> int:
    return 0 if np.isnan(x) else int(x)


def _plans(arms: Arms, used, statistic: str, min_effect, bounds, max_seeds) -> list[dict]:
    """seeds_needed and its reason per variant (planning.plan_variants on the seeds the statistic uses)."""
    variants = len(arms.names) - 1
    if not min_effect:
        return [{"seeds_needed": float("nan"), "seeds_needed_reason": "no min_effect set: set [study] min_effect "
                 "(metric units, above 0) to plan seeds"}] * variants
    values = np.where(arms.finished, arms.values, np.nan)
    ok = arms.trained if statistic in TRAINED_ONLY else None
    plans = plan_variants(values, ok, min_effect, names=arms.names[1:], bounds=bounds, max_seeds=max_seeds,
                          diverged=arms.diverged if statistic in TRAINED_ONLY else None)
    return [{"seeds_needed": p["seeds_needed"], "seeds_needed_reason": p["reason"]} for p in plans]


def _bootstrap(arms: Arms, used, state: dict, level: float, seed: int, min_effect, maximize, correction,
               last: int) -> dict:
    """The --interval bootstrap option: one analysis of every seed the statistic uses at the last look's level,
    by percentile bootstrap (too narrow at 3-10 seeds: samples.py)."""
    state = {k: np.array(v, copy=True) for k, v in state.items()}
    base = arms.values[0][used[0]]
    for v in range(len(arms.names) - 1):
        this = arms.values[v + 1][used[v + 1]]
        low, high, p = diff_test(this, base, "bootstrap", seed, level)
        state["diff"][0, v] = this.mean() - base.mean() if len(this) and len(base) else np.nan
        state["low"][0, v], state["high"][0, v], state["p"][0, v] = low, high, p
        state["used"][0, v] = "bootstrap"
        state["level"][0, v] = level
        state["look"][0, v] = -1
        state["at"][0, v] = last
        state["by_failures"][0, v] = False
    state["p_adjusted"] = adjust(state["p"], correction)
    state["codes"] = decide(state["low"], state["high"], state["p_adjusted"], maximize, min_effect, level)
    return state


# ------------------------------------------------------------------------------------------------ frames
def effects(runs: pd.DataFrame, metric: str, maximize: bool = False, method: str = "t", seed: int = 0, *,
            min_effect: float | None = None, alpha: float = ALPHA, correction: str = "holm",
            statistic: str = DEFAULT, schedule: Schedule | None = None,
            max_seeds: int | None = None) -> pd.DataFrame:
    """One row per (study, variant) with the columns of COLUMNS, ranked best first within each study.

    alpha: the family-wise level (fixed seeds: every interval and test is at alpha; with a schedule the looks use
    its levels). method "bootstrap": percentile-bootstrap intervals over the seeds the statistic uses, one look
    (`seed` seeds the resampling). max_seeds: the seed cap the seeds-needed reason compares with (a schedule
    brings its own)."""
    optional(MIN_EFFECT)("min_effect", min_effect)
    _check_arguments(method, alpha, correction, statistic)
    bounds, _ = metric_bounds(metric)
    min_effect = check_min_effect(min_effect, bounds, metric)
    check_metric(runs, metric)
    rows = []
    for study, group in runs.groupby("study", sort=False):
        rows += _study_rows(group, study, metric, maximize, method, seed, min_effect, alpha, correction, statistic,
                            schedule, max_seeds)
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    order = out["mean"] * (-1 if maximize else 1)
    return out.assign(_order=order).sort_values(["study", "_order"], na_position="last", kind="stable") \
        .drop(columns="_order").reset_index(drop=True)


def summarize(runs: pd.DataFrame, metric: str, method: str = "t", seed: int = 0, alpha: float = ALPHA,
              statistic: str = DEFAULT) -> pd.DataFrame:
    """The descriptive columns of `effects` (SUMMARY_COLUMNS), one row per (study, variant), in run order."""
    eff = effects(runs, metric, method=method, seed=seed, alpha=alpha, statistic=statistic)
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(runs["study"], runs["variant"])))}
    eff = eff.assign(_order=[order.get(k, 0) for k in zip(eff["study"], eff["variant"])])
    return eff.sort_values("_order", kind="stable")[SUMMARY_COLUMNS].reset_index(drop=True)


def power(runs: pd.DataFrame, metric: str, min_effect: float | None, statistic: str = DEFAULT,
          max_seeds: int | None = None) -> pd.DataFrame:
    """Per (study, variant): finished and trained seeds, the sd of the seeds the statistic uses, seeds_needed and
    seeds_needed_reason (see COLUMNS), from each variant's own spread and failure rate, never a pooled sd."""
    eff = effects(runs, metric, min_effect=min_effect, statistic=statistic, max_seeds=max_seeds)
    eff = eff[eff["variant"] != "baseline"]
    return eff[["study", "variant", "n_ok", "n_not_trained", "n_used", "std", "decision", "seeds_needed",
                "seeds_needed_reason"]].reset_index(drop=True)


def expensive(eff: pd.DataFrame) -> pd.Series | None:
    """The undecided variant of one study's effects that needs the most seeds (None when none is undecided or
    none can be planned): the one the report names as expensive to decide."""
    open_ = eff[(eff["decision"] == "undecided")]
    if open_.empty:
        return None
    planned = open_[open_["seeds_needed"].notna()]
    if planned.empty:
        return open_.iloc[0]
    return planned.loc[planned["seeds_needed"].idxmax()]
