"""Seeds each variant needs, from its own spread and its own rate of seeds that did not train.

    need = seeds_needed(min_effect, sd_variant, sd_baseline, fail_variant, fail_baseline, comparisons=4)
    plan = plan_variants(values, ok, min_effect)      # values (1 + variants, seeds), arm 0 the baseline

The report before issue 16 pooled one seed-to-seed sd over every variant, so one variant with a seed that barely
trained (sd 0.11 against 0.015) asked 2,903 seeds of all of them. Here each comparison of a variant with the baseline is
planned alone, for the default statistic (`ablations.stats.robust`, Welch t on the seeds that trained):
    n per arm such that Welch's t at alpha / comparisons (Bonferroni, Holm's first step), with n (1 - f_v)
    trained variant seeds of sd s_v and n (1 - f_b) trained baseline seeds of sd s_b, rejects a true difference
    of min_effect with probability `power` (non-central t with Welch-Satterthwaite degrees of freedom).
The rank statistic the default switches to at 7 trained seeds per arm has 95-100% of Welch's power on trained
seeds, and more when an unflagged failed seed slips in, so the Welch figure is the plan. Simulated at the seeds it
asks for, the default reaches 80-83% power (tests/test_robust_stats.py; docs/statistics.md, section 3).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .primitives import nan_moments
from .errors import StatsInputError, check_alpha, check_bounds, check_count, check_min_effect, check_rate
from .levels import ALPHA

POWER = 0.8
LIMIT = 10_000


def welch_power(n, min_effect, sd_v, sd_b, fail_v=0.0, fail_b=0.0, alpha: float = ALPHA):
    """Power of the two-sided Welch t at `alpha` with n seeds per arm, of which n (1 - fail) trained, to detect a
    true difference `min_effect` (metric units) between arms of sds sd_v and sd_b. Arrays broadcast."""
    n, d, sv, sb, fv, fb = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                                 (n, min_effect, sd_v, sd_b, fail_v, fail_b)))
    nv, nb = n * (1 - fv), n * (1 - fb)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = sv ** 2 / nv, sb ** 2 / nb
        se = np.sqrt(a + b)
        dof = np.where(se > 0, (a + b) ** 2 / (a ** 2 / (nv - 1) + b ** 2 / (nb - 1)), np.inf)
        ncp = np.where(se > 0, d / se, np.inf)
        crit = sps.t.isf(alpha / 2, dof)
        power = sps.nct.sf(crit, dof, ncp) + sps.nct.cdf(-crit, dof, ncp)
    power = np.where(se > 0, power, 1.0)
    return np.where((nv >= 2) & (nb >= 2), power, 0.0)


def seeds_needed(min_effect, sd_variant, sd_baseline, fail_variant=0.0, fail_baseline=0.0, comparisons: int = 1,
                 alpha: float = ALPHA, power: float = POWER, limit: int = LIMIT) -> np.ndarray:
    """Seeds per arm (float array, the broadcast shape of the inputs) for `power` at alpha / comparisons; inf
    beyond `limit`, NaN where an sd is NaN. min_effect > 0 in metric units; sds in metric units; fail_* the
    rates of seeds that did not train, in [0, 1)."""
    check_count(comparisons, "comparisons", 1)
    check_alpha(alpha)
    if not 0 < power < 1:
        raise StatsInputError(f"power must be between 0 and 1, got {power!r}")
    d, sv, sb, fv, fb = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                              (min_effect, sd_variant, sd_baseline, fail_variant, fail_baseline)))
    if np.any(~(d > 0)):
        raise StatsInputError(f"min_effect must be a positive number in metric units, got {d.ravel().tolist()!r}")
    for rate, name in ((fv, "fail_variant"), (fb, "fail_baseline")):
        for r in rate.ravel():
            check_rate(float(r), name)
    per = alpha / comparisons
    out = np.full(d.shape, np.inf)
    grid = np.unique(np.concatenate([np.arange(2, 200), np.geomspace(200, limit, 400).round()]))
    for idx in np.ndindex(d.shape):
        if np.isnan(sv[idx]) or np.isnan(sb[idx]):
            out[idx] = np.nan
            continue
        got = welch_power(grid, d[idx], sv[idx], sb[idx], fv[idx], fb[idx], per) >= power
        if got.any():
            hi = int(grid[np.argmax(got)])
            lo = int(grid[max(np.argmax(got) - 1, 0)])
            fine = np.arange(lo, hi + 1)       # the coarse grid skips integers past 200
            ok = welch_power(fine, d[idx], sv[idx], sb[idx], fv[idx], fb[idx], per) >= power
            out[idx] = float(fine[np.argmax(ok)])
    return out


def plan_variants(values, ok=None, min_effect: float = 0.01, names=None, alpha: float = ALPHA,
                  power: float = POWER, bounds=(0.0, 1.0), max_seeds: int | None = None, *,
                  diverged=None) -> list[dict]:
    """Per variant: seeds needed and why. values (1 + variants, seeds) in metric units, row 0 the baseline,
    NaN absent; ok same shape, True where the seed trained (None: all); diverged same shape, True where a seed
    diverged (no value; it did not train; None: none). Returns one dict per variant (rows 1..): name, n (seeds
    with an outcome: finished or diverged), failed (k did not train), sd (over trained seeds), fail_rate,
    seeds_needed, and reason (a sentence naming what makes the variant expensive, for the report)."""
    bounds = check_bounds(bounds)
    min_effect = check_min_effect(min_effect, bounds)
    if not min_effect:
        raise StatsInputError("plan_variants needs a positive min_effect, got 0 or None: no seed count detects a "
                              "difference of 0")
    values = np.asarray(values, dtype=float)
    finished = ~np.isnan(values)
    ok = finished if ok is None else (np.asarray(ok, dtype=bool) & finished)
    if diverged is not None:
        finished = finished | np.asarray(diverged, dtype=bool)
    n_all, n_ok = finished.sum(-1), ok.sum(-1)
    _, _, var = nan_moments(np.where(ok, values, np.nan))
    sd = np.sqrt(var)
    # a variant with no failed seed so far is planned at rate 0; with k of n, at k / n (the report shows its
    # interval); a rate of 1 cannot be planned for
    fail = np.where(n_all > 0, (n_all - n_ok) / np.maximum(n_all, 1), 0.0)
    comparisons = max(1, len(values) - 1)
    names = names or [f"variant {i}" for i in range(1, len(values))]
    rows = []
    for i in range(1, len(values)):
        row = {"name": names[i - 1], "n": int(n_all[i]), "failed": int(n_all[i] - n_ok[i]), "sd": float(sd[i]),
               "fail_rate": float(fail[i]), "seeds_needed": float("nan")}
        if n_ok[i] < 2 or n_ok[0] < 2 or fail[i] >= 1 or fail[0] >= 1:
            row["reason"] = (f"cannot plan: {int(n_ok[i])} trained seed(s) of {row['name']}, {int(n_ok[0])} of "
                             "the baseline (need 2 each)")
        else:
            need = float(seeds_needed(min_effect, sd[i], sd[0], fail[i], fail[0], comparisons, alpha, power))
            row["seeds_needed"] = need
            row["reason"] = _reason(row, float(sd[0]), float(fail[0]), need, min_effect, max_seeds)
        rows.append(row)
    return rows


def _reason(row: dict, sd_b: float, fail_b: float, need: float, min_effect: float, max_seeds: int | None) -> str:
    parts = [f"sd {row['sd']:.2g} over {row['n'] - row['failed']} trained seeds"]
    if sd_b > 0 and row["sd"] > 1.5 * sd_b:
        parts[0] += f" ({row['sd'] / sd_b:.1f}x the baseline's {sd_b:.2g})"
    if row["failed"]:
        parts.append(f"{row['failed']} of {row['n']} seeds did not train (needs {1 / (1 - row['fail_rate']):.2g}x "
                     "the seeds)")
    if fail_b:
        parts.append(f"the baseline's failure rate {fail_b:.0%}")
    head = f"{need:.0f} seeds per arm to detect {min_effect:g}" if np.isfinite(need) else \
        f"more than {LIMIT:,} seeds per arm to detect {min_effect:g}"
    if max_seeds is not None and need > max_seeds:
        head += f" (beyond max_seeds {max_seeds})"
    return head + ": " + "; ".join(parts)



def two_arm_seeds_needed(sd: float, min_effect: float | None, alpha: float = ALPHA, power: float = POWER,
                         limit: int = LIMIT) -> float:
    """Seeds per arm for two arms of one sd `sd`, none failing, one comparison (the textbook two-sample t
    answer: sd 1, min_effect 1 -> 17). NaN where min_effect is unset or sd is not finite."""
    if not min_effect or not np.isfinite(sd):
        return float("nan")
    return float(seeds_needed(min_effect, sd, sd, alpha=alpha, power=power, limit=limit))
