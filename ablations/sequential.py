"""How much of alpha each look of `run --until-decided` may spend, and the procedure as a pure, vectorised function.

    levels = look_levels(n0=3, max_seeds=10, rule="obf")     # nominal two-sided level of each planned look
    out = simulate(values, ok, n0=3, max_seeds=10, levels=levels, min_effect=0.02)

The looks: look 0 sees the study's n0 seeds; each later look one more baseline seed (and one more for every variant
still open), up to max_seeds, so there are L = max_seeds - n0 + 1 planned looks at information fractions
t_k = (n0 + k) / max_seeds. A rule gives look k a nominal two-sided level a_k:
    even    a_k = alpha / L (today's rule: Bonferroni over the looks)
    pocock  Lan-DeMets spending alpha * ln(1 + (e - 1) t): about equal levels, more than alpha / L each
    obf     Lan-DeMets O'Brien-Fleming-like spending 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)): almost nothing early,
            close to alpha at the last look
For pocock and obf the levels are exact for a z statistic whose looks are correlated as a sum of independent
seeds makes them (the recursive integration of Armitage, McPherson and Rowe): the chance of crossing at look k and
not before is the spending function's increment. At each look the p-value of every variant (by
`ablations.robust.compare`, its t distribution or exact rank distribution) is adjusted by Holm across the variants
and compared with a_k, and intervals are at 1 - a_k. The t statistic at 3-5 seeds is not the z the levels assume,
and Holm over a shared baseline is not the single test they were computed for: the simulation in
tests/test_robust_stats.py is what shows the family-wise rate holds (docs/statistics.md, section 4).
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy import stats as sps

from .robust import DEFAULT, compare, decide, holm
from .statserrors import StatsInputError, check_alpha, check_count

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
    check_count(n0, "the study's seed count", 2)
    check_count(max_seeds, "max_seeds", n0)
    check_alpha(alpha)
    if rule not in RULES:
        raise StatsInputError(f"unknown look rule {rule!r}; choose one of {', '.join(RULES)}")
    looks = max_seeds - n0 + 1
    if rule == "even":
        return np.full(looks, alpha / looks)
    return boundaries(np.arange(n0, max_seeds + 1) / max_seeds, alpha, rule)


def simulate(values, ok, n0: int, max_seeds: int, levels, min_effect: float | None = None,
             maximize: bool = False, statistic: str = DEFAULT, bounds=(0.0, 1.0), freeze: bool = True) -> dict:
    """The --until-decided procedure on pre-drawn outcomes, vectorised over studies.

    values: (studies, 1 + variants, max_seeds) metric values, arm 0 the baseline; arm a's k-th run is
    values[:, a, k]. ok: bool of the same shape, True where that seed trained (None: all did). levels: (L,) from
    `look_levels`. freeze=True: a variant keeps the decision, interval and p of the look that decided it (its p
    stays in later looks' Holm family); False reproduces today's procedure, which re-decides every look.
    Returns codes (studies, variants) (`ablations.robust.DECISIONS`), ever_rejected (a better/worse at any
    look), n (studies, arms) seeds used, low/high/diff/p of each variant's last analysis, look (studies,
    variants) the look that decided it (-1: never), and used (the statistic per variant at that analysis)."""
    values = np.asarray(values, dtype=float)
    studies, arms, width = values.shape
    levels = np.asarray(levels, dtype=float)
    if width < max_seeds or len(levels) != max_seeds - n0 + 1:
        raise StatsInputError(f"need values with {max_seeds} seeds and {max_seeds - n0 + 1} levels, got "
                              f"{width} and {len(levels)}")
    ok = np.ones(values.shape, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    n = np.full((studies, arms), n0)
    k = np.arange(width)
    codes = np.zeros((studies, arms - 1), dtype=int)
    done = np.zeros((studies, arms - 1), dtype=bool)
    look_of = np.full((studies, arms - 1), -1)
    ever = np.zeros((studies, arms - 1), dtype=bool)
    keep = {name: np.full((studies, arms - 1), np.nan) for name in ("diff", "low", "high", "p")}
    keep["used"] = np.full((studies, arms - 1), "", dtype=object)
    for look, level in enumerate(levels):
        seen = np.where(k[None, None, :] < n[:, :, None], values, np.nan)
        c = compare(seen[:, 1:], np.broadcast_to(seen[:, :1], seen[:, 1:].shape),
                    ok[:, 1:], np.broadcast_to(ok[:, :1], ok[:, 1:].shape), statistic, bounds, level)
        fresh = ~done if freeze else np.ones_like(done)
        p = np.where(fresh, c.p, keep["p"])
        now = decide(c.low, c.high, holm(p), maximize, min_effect, level)
        codes = np.where(fresh, now, codes)
        for name in ("diff", "low", "high", "p"):
            keep[name] = np.where(fresh, getattr(c, name), keep[name])
        keep["used"] = np.where(fresh, c.method, keep["used"])
        newly = fresh & (now != 0)
        look_of = np.where(newly & (look_of < 0), look, look_of)
        ever |= fresh & ((now == 1) | (now == 2))
        if freeze:
            done |= now != 0
        open_ = (codes == 0) & (n[:, 1:] < max_seeds)
        go = open_.any(axis=1) & (n[:, 0] < max_seeds)
        if look == len(levels) - 1 or not go.any():
            break
        n[:, 1:] += open_ & go[:, None]
        n[:, 0] += go
    return {"codes": codes, "ever_rejected": ever, "n": n, "look": look_of, **keep}

