"""How much of alpha each look of `run --until-decided` may spend, and the procedure as a pure, vectorised function.

    levels = look_levels(n0=3, max_seeds=10, rule="obf")     # nominal two-sided level of each planned look
    out = simulate(values, ok, n0=3, max_seeds=10, levels=levels, min_effect=0.02)

The looks: look 0 sees the study's n0 seeds; each later look one more baseline seed (and one more for every variant
still open), up to max_seeds, so there are L = max_seeds - n0 + 1 planned looks at information fractions
t_k = (n0 + k) / max_seeds. A rule gives look k a nominal two-sided level a_k:
    even    a_k = alpha / L (the old rule: Bonferroni over the looks)
    pocock  Lan-DeMets spending alpha * ln(1 + (e - 1) t): about equal levels, more than alpha / L each
    obf     Lan-DeMets O'Brien-Fleming-like spending 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)): almost nothing early,
            close to alpha at the last look
For pocock and obf the levels are exact for a z statistic whose looks are correlated as a sum of independent seeds
makes them (the recursive integration of Armitage, McPherson and Rowe): the chance of crossing at look k and not
before is the spending function's increment. At each look the p-value of every variant (by
`ablations.stats.robust.compare`, its t distribution or exact rank distribution; combined by Bonferroni with a
one-sided Fisher test of its rate of seeds that did not train where the pair has such seeds, `look_step`) is
adjusted by Holm across the variants and compared with a_k, and intervals are at 1 - a_k. The t statistic at 3-5
seeds is not the z the levels assume, and Holm over a shared baseline is not the single test they were computed for:
the simulation in tests/test_robust_stats.py is what shows the family-wise rate holds (docs/statistics.md, section
4).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import special
from scipy import stats as sps

from .errors import StatsInputError, check_alpha, check_count
from .failures import excess_failures_p
from .primitives import adjust, decide
from .robust import DEFAULT, TRAINED_ONLY, compare

RULES = ("even", "pocock", "obf")
GRID = 0.01     # step of the integration grid, in units of the score statistic's sd at full information
SPAN = 8.0      # the grid covers +/- SPAN sd


def spent(t, alpha: float, rule: str) -> np.ndarray:
    """Cumulative alpha spent by information fraction t (array in (0, 1]) under a Lan-DeMets spending rule."""
    t = np.asarray(t, dtype=float)
    if rule == "pocock":
        return alpha * np.log(1 + (np.e - 1) * t)
    if rule == "obf":
        return 2 - 2 * sps.norm.cdf(sps.norm.isf(alpha / 2) / np.sqrt(t))
    raise StatsInputError(f"unknown spending rule {rule!r}; choose one of pocock, obf")


def boundaries(fractions, alpha: float, rule: str) -> np.ndarray:
    """Nominal two-sided levels (K,) of looks at information fractions (K,) increasing in (0, 1], so that a
    standardised sum of independent increments first crosses at look k with probability spent(t_k) - spent(t_k-1)."""
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1:
        raise StatsInputError(f"fractions must increase within (0, 1], got {t.tolist()!r}")
    inc = np.diff(np.concatenate([[0.0], spent(t, alpha, rule)]))
    x = np.arange(-SPAN, SPAN + GRID / 2, GRID)              # score S_k = Z_k sqrt(t_k) on a grid
    c = np.empty(len(t))
    c[0] = sps.norm.isf(inc[0] / 2)
    dens = np.where(np.abs(x) < c[0] * np.sqrt(t[0]), sps.norm.pdf(x, 0, np.sqrt(t[0])), 0.0)
    for k in range(1, len(t)):
        sd = np.sqrt(t[k] - t[k - 1])

        def crossing(b):      # P(no crossing before k, |S_k| >= b sqrt(t_k))
            edge = b * np.sqrt(t[k])
            tail = special.ndtr((x - edge) / sd) + special.ndtr((-edge - x) / sd)
            return float(np.sum(dens * tail) * GRID)

        lo, hi = 0.0, 10.0
        for _ in range(50):   # bisection: crossing() falls as the boundary rises
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if crossing(mid) > inc[k] else (lo, mid)
        c[k] = (lo + hi) / 2
        live = dens > 0    # only the continuation region carries density
        kernel = np.exp(-0.5 * ((x[:, None] - x[None, live]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        new = kernel @ dens[live] * GRID                                                      # (grid,)
        dens = np.where(np.abs(x) < c[k] * np.sqrt(t[k]), new, 0.0)
    return 2 * sps.norm.sf(c)


def look_levels(n0: int, max_seeds: int, alpha: float = 0.05, rule: str = "obf") -> np.ndarray:
    """Nominal two-sided level of each of the L = max_seeds - n0 + 1 planned looks, shape (L,)."""
    check_count(n0, "the study's seed count", 1)
    check_count(max_seeds, "max_seeds (the seed cap)", n0)
    check_alpha(alpha)
    if rule not in RULES:
        raise StatsInputError(f"unknown look rule {rule!r}; choose one of {', '.join(RULES)}")
    return np.array(_levels(int(n0), int(max_seeds), float(alpha), rule))


@lru_cache(maxsize=64)
def _levels(n0: int, max_seeds: int, alpha: float, rule: str) -> tuple[float, ...]:
    looks = max_seeds - n0 + 1
    if rule == "even":
        return (alpha / looks,) * looks
    return tuple(boundaries(np.arange(n0, max_seeds + 1) / max_seeds, alpha, rule).tolist())


RULE_LABELS = {
    "even": "alpha split evenly over the planned looks (Bonferroni)",
    "pocock": "Lan-DeMets Pocock-like alpha spending over the planned looks",
    "obf": "Lan-DeMets O'Brien-Fleming-like alpha spending over the planned looks (little alpha early, most at "
           "the last look)",
}


class Schedule(NamedTuple):
    """The looks of a folder's `run --until-decided` (its adaptive.json, `ablations.store.Plan.schedule`): what
    a replay of the looks needs besides the records."""
    rule: str                    # RULES: how alpha is spread over the looks
    levels: tuple[float, ...]    # nominal two-sided level of each planned look (look_levels)
    initial_seeds: int           # the study's listed seeds: look 0 sees these
    max_seeds: int               # seeds per arm at most; look k sees k added seeds
    freeze: bool                 # a decided variant keeps its decision (new rule) or is re-decided (even split)

    @classmethod
    def of(cls, rule: str, initial_seeds: int, max_seeds: int, alpha: float = 0.05,
           freeze: bool = True) -> Schedule:
        return cls(rule, tuple(look_levels(initial_seeds, max_seeds, alpha, rule).tolist()), initial_seeds,
                   max_seeds, freeze)


KEPT = ("diff", "low", "high", "p", "p_adjusted", "level", "n_variant", "n_baseline", "p_effect", "p_fail",
        "k_variant", "k_baseline")


def new_state(studies: int, variants: int) -> dict:
    """The state of the procedure before its first look: every variant undecided. Every entry an array of
    shape (studies, variants): codes (`DECISIONS`), done (frozen), look (the look that decided it, -1 none),
    at (the look whose seeds the kept analysis below saw: the deciding look once frozen, -1 before any look), ever (a better/worse at any look), by_failures (decided worse by its failure rate), and per variant its
    analysis: diff, low, high (the comparison of trained seeds), p (the variant's p: the comparison's p, or its
    Bonferroni combination with p_fail, see `look_step`), p_adjusted (p over the family), level (the look's
    level), n_variant / n_baseline (finished seeds of each arm it saw), k_variant / k_baseline (of those, seeds
    that did not train), p_effect (the comparison's own p), p_fail (one-sided Fisher p that the variant fails to
    train more often; NaN where no seed of the pair did not train or the statistic keeps every seed), used (the
    statistic)."""
    shape = (studies, variants)
    state = {"codes": np.zeros(shape, dtype=int), "done": np.zeros(shape, dtype=bool),
             "look": np.full(shape, -1), "at": np.full(shape, -1), "ever": np.zeros(shape, dtype=bool),
             "by_failures": np.zeros(shape, dtype=bool), "used": np.full(shape, "", dtype=object)}
    state.update({name: np.full(shape, np.nan) for name in KEPT})
    return state


def variant_p(p_effect, p_fail):
    """The variant's p from the comparison's p and the failure test's (arrays of one shape): p_effect where
    p_fail is NaN (no seed of the pair did not train), else the Bonferroni min(1, 2 min(p_effect, p_fail)),
    a missing p_effect (no trained seeds to compare) counting as 1."""
    p_effect, p_fail = np.asarray(p_effect, dtype=float), np.asarray(p_fail, dtype=float)
    return np.where(np.isnan(p_fail), p_effect, np.minimum(1.0, 2 * np.fmin(p_effect, p_fail)))


def look_step(state: dict, seen, ok, level: float, look: int, min_effect: float | None = None,
              maximize: bool = False, statistic: str = DEFAULT, bounds=(0.0, 1.0), freeze: bool = True,
              correction: str = "holm", *, diverged=None) -> dict:
    """One look of --until-decided: every variant not yet decided is compared with the baseline at `level`,
    the family's p-values (frozen ones included) adjusted by `correction`, and decided. The one copy of a
    look, used by `simulate`, by `run --until-decided` and by the report's replay of the looks
    (`ablations.stats.frames`). seen: (studies, 1 + variants, seeds) the values this look sees, arm 0 the
    baseline, NaN for a seed not seen or not finished; ok: bool of that shape, True where the seed trained
    (None: all); diverged: bool of that shape, True where a seen seed diverged (a non-finite training loss: no
    value, and it did not train; None: none). Returns the new state (see `new_state`).

    Failing to train is part of the decision (for the statistics that set such seeds aside, TRAINED_ONLY; the
    others see those seeds among their values). Per variant, of the seeds of the pair with an outcome (finished,
    or diverged): k_v of n_v of the variant's and k_b of n_b of the baseline's did not train (a diverged seed
    did not). When k_v + k_b == 0 the variant's p is the comparison's p, exactly as before failures counted (a
    study without failures decides as it did). Otherwise
    p = min(1, 2 min(p_effect, p_fail)), p_fail the one-sided Fisher exact p that the variant fails to train
    more often (`failures.excess_failures_p`). Why that is a valid p of "no difference" (the same rate of
    failure and the same distribution of trained values): conditional on the failure margins (k_v + k_b of
    n_v + n_b), p_fail is Fisher's exact p, and p_effect, which sees only the trained seeds, whose counts the
    margins and the split fix and whose values are independent of them, is valid given the split; each is
    valid, so their Bonferroni minimum is, whatever their dependence. The margin k_v + k_b == 0 gives p_fail = 1
    identically, so no alpha need be split there. Holm (or the plan's correction) then runs across the variants
    on these p as before.

    Decision: the variant is "worse" by its failure rate (by_failures True, for an error and a maximize metric
    alike: not training is worse either way) when the failure test alone rejects at the step the correction
    gives it: 2 p_fail x (p_adjusted / p) < level, i.e. p_adjusted < level when p_fail <= p_effect (then the
    factor is 1), and a stricter bar when the effect carried p (conservative for Holm, whose multiplier is at
    least the step's). Such a variant is never "better" or "equivalent". Otherwise it is decided from the
    comparison's interval as before: better/worse when p_adjusted < level (the factor 2 is in it) and the
    interval lies beyond 0, equivalent when the interval lies inside +/- min_effect. The interval stays at
    1 - level: where p_adjusted rejects without the failure test, 2 p_effect did, so the interval at the look's
    level excludes 0 whenever the effect's half of the split does; cutting it to 1 - level / 2 would only widen
    equivalence intervals of variants with failures, which equivalence (a claim of the interval alone, outside
    the family-wise rate of false better/worse) does not need."""
    seen = np.asarray(seen, dtype=float)
    ok = np.ones(seen.shape, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    c = compare(seen[:, 1:], np.broadcast_to(seen[:, :1], seen[:, 1:].shape),
                ok[:, 1:], np.broadcast_to(ok[:, :1], ok[:, 1:].shape), statistic, bounds, level)
    finished = ~np.isnan(seen)
    div = np.zeros(seen.shape, dtype=bool) if diverged is None else np.asarray(diverged, dtype=bool) & ~finished
    counts = (finished | div).sum(-1)
    failed = ((finished & ~ok) | div).sum(-1)
    n_v, n_b = counts[:, 1:], np.broadcast_to(counts[:, :1], c.p.shape)
    k_v, k_b = failed[:, 1:], np.broadcast_to(failed[:, :1], c.p.shape)
    some = (k_v + k_b > 0) & (n_v > 0) & (n_b > 0) & (statistic in TRAINED_ONLY)
    p_fail = np.where(some, excess_failures_p(k_v, n_v, k_b, n_b), np.nan)
    p_now = variant_p(c.p, p_fail)
    fresh = ~state["done"] if freeze else np.ones_like(state["done"])
    p = np.where(fresh, p_now, state["p"])
    adjusted = adjust(p, correction)
    now = decide(c.low, c.high, adjusted, maximize, min_effect, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(p > 0, adjusted / p, 1.0)
        by_failures = ~np.isnan(p_fail) & (2 * p_fail * factor < level)
    now = np.where(by_failures, 2, now)
    out = dict(state)
    out["codes"] = np.where(fresh, now, state["codes"])
    fields = {"diff": c.diff, "low": c.low, "high": c.high, "p": p_now, "p_adjusted": adjusted,
              "level": np.full(now.shape, float(level)), "n_variant": n_v, "n_baseline": n_b, "p_effect": c.p,
              "p_fail": p_fail, "k_variant": k_v, "k_baseline": k_b}
    for name, value in fields.items():
        out[name] = np.where(fresh, value, state[name])
    out["used"] = np.where(fresh, c.method, state["used"])
    out["by_failures"] = np.where(fresh, by_failures, state["by_failures"])
    out["look"] = np.where(fresh & (now != 0) & (state["look"] < 0), look, state["look"])
    out["at"] = np.where(fresh, look, state["at"])
    out["ever"] = state["ever"] | (fresh & ((now == 1) | (now == 2)))
    if freeze:
        out["done"] = state["done"] | (now != 0)
    return out


def simulate(values, ok, n0: int, max_seeds: int, levels, min_effect: float | None = None,
             maximize: bool = False, statistic: str = DEFAULT, bounds=(0.0, 1.0), freeze: bool = True,
             correction: str = "holm") -> dict:
    """The --until-decided procedure on pre-drawn outcomes, vectorised over studies.

    values: (studies, 1 + variants, max_seeds) metric values, arm 0 the baseline; arm a's k-th run is
    values[:, a, k]. ok: bool of the same shape, True where that seed trained (None: all did). levels: (L,) from
    `look_levels`. freeze=True: a variant keeps the decision, interval and p of the look that decided it (its p
    stays in later looks' Holm family); False reproduces the even-split rule's procedure, which re-decides every
    look. Returns codes (studies, variants) (`DECISIONS`), ever_rejected (a better/worse at any look), n
    (studies, arms) seeds used, low/high/diff/p of each variant's last analysis, look (studies, variants) the
    look that decided it (-1: never), used (the statistic per variant at that analysis), by_failures (decided
    worse by its failure rate), p_effect and p_fail (the comparison's p and the failure test's, `look_step`)."""
    values = np.asarray(values, dtype=float)
    studies, arms, width = values.shape
    levels = np.asarray(levels, dtype=float)
    if width < max_seeds or len(levels) != max_seeds - n0 + 1:
        raise StatsInputError(f"need values with {max_seeds} seeds and {max_seeds - n0 + 1} levels, got "
                              f"{width} and {len(levels)}")
    ok = np.ones(values.shape, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    n = np.full((studies, arms), n0)
    k = np.arange(width)
    state = new_state(studies, arms - 1)
    for look, level in enumerate(levels):
        seen = np.where(k[None, None, :] < n[:, :, None], values, np.nan)
        state = look_step(state, seen, ok, level, look, min_effect, maximize, statistic, bounds, freeze,
                          correction)
        open_ = (state["codes"] == 0) & (n[:, 1:] < max_seeds)
        go = open_.any(axis=1) & (n[:, 0] < max_seeds)
        if look == len(levels) - 1 or not go.any():
            break
        n[:, 1:] += open_ & go[:, None]
        n[:, 0] += go
    return {"codes": state["codes"], "ever_rejected": state["ever"], "n": n, "look": state["look"],
            **{name: state[name] for name in ("diff", "low", "high", "p", "used", "by_failures", "p_effect",
                                            "p_fail")}}
