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
4). A paired t (statistic "paired") is compared with its own level instead, `paired_levels`: at the z's levels a
paired t over 3-7 pairs crossed at some look in 5.8% of null studies (docs/statistics.md, section 6).
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
from .robust import DEFAULT, PAIRED, TRAINED_ONLY, compare

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


PAIRED_DRAWS = 500_000   # null sequences behind `paired_levels` (seeded: the levels are the same on every machine)


def first_crossings(counts, levels) -> np.ndarray:
    """P(a z statistic over counts[k] independent seeds first crosses its two-sided level levels[k] at look k),
    shape (K,), for counts strictly increasing: the same recursive integration as `boundaries`, run forward."""
    t = np.asarray(counts, dtype=float) / counts[-1]
    c = sps.norm.isf(np.asarray(levels, dtype=float) / 2)
    x = np.arange(-SPAN, SPAN + GRID / 2, GRID)
    out = np.empty(len(t))
    out[0] = float(levels[0])
    dens = np.where(np.abs(x) < c[0] * np.sqrt(t[0]), sps.norm.pdf(x, 0, np.sqrt(t[0])), 0.0)
    for k in range(1, len(t)):
        sd = np.sqrt(t[k] - t[k - 1])
        edge = c[k] * np.sqrt(t[k])
        out[k] = float(np.sum(dens * (special.ndtr((x - edge) / sd) + special.ndtr((-edge - x) / sd))) * GRID)
        live = dens > 0
        kernel = np.exp(-0.5 * ((x[:, None] - x[None, live]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        dens = np.where(np.abs(x) < edge, kernel @ dens[live] * GRID, 0.0)
    return out


_RUNS: dict = {}   # paired_levels' simulated sequences at the end of a schedule's prefix, to extend it look by look


@lru_cache(maxsize=256)
def paired_levels(levels: tuple[float, ...], counts: tuple[int, ...]) -> np.ndarray:
    """The paired t's nominal two-sided level at each look, shape (K,): the level at which a paired t over
    counts[k] pairs first crosses at look k as often as a z statistic over the same seeds does at the look's own
    level levels[k] (`first_crossings`; the z's levels are `look_levels`, computed for a sum of independent seeds).

    Why: each look's t re-estimates the differences' spread, so the t statistics of successive looks are less
    correlated than the z's, and at the z's levels the t crossed at some look more often than alpha (5.3-5.8% at
    alpha 0.05 for 3 to 7 and 3 to 16 seeds, normal differences; tests/test_paired_decisions.py). Under "no
    difference" with normal differences the paired t's sequence is free of the unknown spread, so its crossing
    probabilities are the same for every study: they are read from PAIRED_DRAWS seeded null sequences. The first
    look keeps its level (one look: the t's p is exact); at each later look the level is the quantile of the t's p,
    among the sequences it has not yet crossed on, that leaves the z's share of first crossings there (the levels
    of an exact sequential t, as Jennison and Turnbull computed them by integration in 1991, here by simulation;
    the share's standard error is under 5% of itself from look 2 on at the demo's plans). Pair counts that do not
    increase, or a look of under 2 pairs, keep the z's levels."""
    levels = tuple(float(x) for x in levels)
    counts = tuple(int(c) for c in counts)
    if len(counts) != len(levels) or not counts:
        raise StatsInputError(f"paired levels need one pair count per level, got {list(counts)} for "
                              f"{len(levels)} levels")
    if counts[0] < 2 or np.any(np.diff(counts) <= 0):
        return np.asarray(levels)
    target = first_crossings(counts, levels)
    run = _RUNS.pop((levels[:-1], counts[:-1]), None)
    if run is None:   # from the first look: one column of differences per pair, always in the same order
        rng = np.random.default_rng(20230)
        run = (rng, np.zeros(PAIRED_DRAWS), np.zeros(PAIRED_DRAWS), 0, np.ones(PAIRED_DRAWS, dtype=bool), ())
        start = 0
    else:
        start = len(counts) - 1
    rng, total, sum_sq, n, alive, out = run
    for k in range(start, len(counts)):
        while n < counts[k]:
            d = rng.standard_normal(PAIRED_DRAWS)
            total, sum_sq, n = total + d, sum_sq + d * d, n + 1
        var = np.maximum(sum_sq - total ** 2 / n, 0.0) / (n - 1)
        with np.errstate(divide="ignore"):
            p = 2 * sps.t.sf(np.abs(total / n) / np.sqrt(var / n), n - 1)
        left = np.sort(p[alive])
        want = int(round(target[k] * PAIRED_DRAWS))
        level = levels[k] if k == 0 else (left[want - 1] + left[want]) / 2 if 0 < want < len(left) else \
            (left[0] / 2 if want == 0 else levels[k])
        out = out + (float(level),)
        alive = alive & ~(p < level)
    if len(_RUNS) >= 4:   # a few schedules at a time; each holds three arrays of PAIRED_DRAWS
        _RUNS.pop(next(iter(_RUNS)))
    _RUNS[(levels, counts)] = (rng, total, sum_sq, n, alive, out)
    return np.asarray(out)


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
        "k_variant", "k_baseline", "p_family", "scale")


def new_state(studies: int, variants: int) -> dict:
    """The state of the procedure before its first look: every variant undecided. Every entry an array of
    shape (studies, variants): codes (`DECISIONS`), done (frozen), look (the look that decided it, -1 none),
    at (the look whose seeds the kept analysis below saw: the deciding look once frozen, -1 before any look),
    ever (a better/worse at any look), by_failures (decided worse by its failure rate), and per variant its
    analysis: diff, low, high (the comparison of trained seeds), p (the variant's p: the comparison's p, or its
    Bonferroni combination with p_fail, see `look_step`), p_adjusted (p over the family), level (the look's
    level), n_variant / n_baseline (finished seeds of each arm it saw), k_variant / k_baseline (of those, seeds
    that did not train), p_effect (the comparison's own p), p_fail (one-sided Fisher p that the variant fails to
    train more often; NaN where no seed of the pair did not train or the statistic keeps every seed), used (the
    statistic), p_family (the p Holm saw: the paired t's scaled by `scale`), scale (the look's level over the
    level of the comparison that was used: > 1 for a paired t, `paired_levels`; 1 otherwise). And for the whole
    batch, looks: (the levels, the seed counts) of the looks so far, which a paired t's level needs."""
    shape = (studies, variants)
    state = {"codes": np.zeros(shape, dtype=int), "done": np.zeros(shape, dtype=bool),
             "look": np.full(shape, -1), "at": np.full(shape, -1), "ever": np.zeros(shape, dtype=bool),
             "by_failures": np.zeros(shape, dtype=bool), "used": np.full(shape, "", dtype=object),
             "looks": ((), ())}
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
    args = (seen[:, 1:], np.broadcast_to(seen[:, :1], seen[:, 1:].shape),
            ok[:, 1:], np.broadcast_to(ok[:, :1], ok[:, 1:].shape), statistic, bounds)
    c = compare(*args, level)
    looks = tuple(a + (b,) for a, b in zip(state.get("looks", ((), ())),
                                          (float(level), int((~np.isnan(seen)).any(axis=(0, 1)).sum()))))
    scale = np.ones(c.p.shape)
    own_level = np.full(c.p.shape, float(level))
    if statistic == PAIRED and (c.method == "paired_t").any():
        # the paired t at its own level (`paired_levels`); in the family its p counts scaled by level / that
        # level, so Holm's step j compares p_t with paired_level / j as it compares another's p with level / j
        t_level = float(paired_levels(*looks)[-1])
        by_t = c.method == "paired_t"
        if t_level != level:
            ct = compare(*args, t_level)
            c = c._replace(low=np.where(by_t, ct.low, c.low), high=np.where(by_t, ct.high, c.high))
        scale = np.where(by_t, level / t_level, 1.0)
        own_level = np.where(by_t, t_level, own_level)
    finished = ~np.isnan(seen)
    div = np.zeros(seen.shape, dtype=bool) if diverged is None else np.asarray(diverged, dtype=bool) & ~finished
    counts = (finished | div).sum(-1)
    failed = ((finished & ~ok) | div).sum(-1)
    n_v, n_b = counts[:, 1:], np.broadcast_to(counts[:, :1], c.p.shape)
    k_v, k_b = failed[:, 1:], np.broadcast_to(failed[:, :1], c.p.shape)
    some = (k_v + k_b > 0) & (n_v > 0) & (n_b > 0) & (statistic in TRAINED_ONLY)
    p_fail = np.where(some, excess_failures_p(k_v, n_v, k_b, n_b), np.nan)
    p_now = variant_p(c.p, p_fail)
    family_now = variant_p(np.minimum(1.0, c.p * scale), p_fail)
    fresh = ~state["done"] if freeze else np.ones_like(state["done"])
    p = np.where(fresh, family_now, state["p_family"])
    adjusted = adjust(p, correction)
    now = decide(c.low, c.high, adjusted, maximize, min_effect, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(p > 0, adjusted / p, 1.0)
        by_failures = ~np.isnan(p_fail) & (2 * p_fail * factor < level)
    now = np.where(by_failures, 2, now)
    out = dict(state)
    out["looks"] = looks
    out["codes"] = np.where(fresh, now, state["codes"])
    # a row states its own comparison's level, and its adjusted p on that scale (the decision is the same)
    fields = {"diff": c.diff, "low": c.low, "high": c.high, "p": p_now, "p_adjusted": adjusted / scale,
              "level": own_level, "n_variant": n_v, "n_baseline": n_b, "p_effect": c.p,
              "p_fail": p_fail, "k_variant": k_v, "k_baseline": k_b, "p_family": family_now, "scale": scale}
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


