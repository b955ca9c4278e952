"""Seeded, vectorised simulations behind the statistics' defaults; the figures of docs/statistics.md.

    python -m ablations.calibrate [--studies 20000]      # prints the docs' tables (minutes at 20,000)

A simulated study: a baseline and VARIANTS variants, `seeds` seeds each. A seed that trained ends with a test
error drawn from a beta distribution (mean 0.03, sd 0.015 by default: the demo's trained seeds); with probability
`fail` a seed did not train and ends uniform in [0.3, 0.9]. The tests (tests/test_robust_stats.py) call the same
functions with fewer studies and assert the nominal rates; nothing here is a figure typed in by hand.
"""

from __future__ import annotations

import argparse

import numpy as np

from .bounded import diff_interval, mean_interval
from .failures import did_not_train
from .robust import compare, decide, holm

VARIANTS = 4
BASE, SD = 0.03, 0.015
FAIL_LOW, FAIL_HIGH = 0.3, 0.9
CLASSES = 10
# (statistic, which seeds): the candidates of docs/statistics.md section 2
CANDIDATES = {
    "trained (rule flags)": ("trained", "rule"),
    "trained (every failure flagged)": ("trained", "truth"),
    "welch (all seeds)": ("welch", "all"),
    "welch_trained (rule flags)": ("welch_trained", "rule"),
    "welch_trained (every failure flagged)": ("welch_trained", "truth"),
    "yuen 20% (all seeds)": ("yuen", "all"),
    "yuen 20% (rule flags)": ("yuen", "rule"),
    "hodges_lehmann (all seeds)": ("hodges_lehmann", "all"),
    "hodges_lehmann (rule flags)": ("hodges_lehmann", "rule"),
    "hodges_lehmann (every failure flagged)": ("hodges_lehmann", "truth"),
}


def beta(rng: np.random.Generator, mean, sd, shape) -> np.ndarray:
    """Beta draws with the given mean and sd (fractions; mean may be an array broadcast against shape)."""
    mean = np.broadcast_to(np.asarray(mean, dtype=float), shape)
    k = mean * (1 - mean) / sd ** 2 - 1
    return rng.beta(mean * k, (1 - mean) * k, shape)


def draw(rng: np.random.Generator, studies: int, seeds: int, shifts=(0.0,) * VARIANTS, fail: float = 0.0,
         base: float = BASE, sd: float = SD, fail_variant: float | None = None):
    """(values, failed): both (studies, 1 + variants, seeds); arm 0 the baseline, arm a's trained mean
    base + shifts[a - 1]. `fail` is every arm's failure rate; fail_variant, if given, variant 1's instead."""
    arms = 1 + len(shifts)
    means = base + np.concatenate([[0.0], np.asarray(shifts, dtype=float)])
    values = beta(rng, means[None, :, None], sd, (studies, arms, seeds))
    rate = np.full(arms, fail)
    if fail_variant is not None:
        rate[1] = fail_variant
    failed = rng.random((studies, arms, seeds)) < rate[None, :, None]
    values = np.where(failed, rng.uniform(FAIL_LOW, FAIL_HIGH, values.shape), values)
    return values, failed


def trained_mask(values, failed, which: str):
    """Which seeds a statistic keeps: "all" every seed, "truth" those that trained (the simulation knows),
    "rule" those the record rule keeps (here only its test-error criterion can fire: no loss history)."""
    if which == "all":
        return np.ones(values.shape, dtype=bool)
    if which == "truth":
        return ~failed
    nan = np.full(values.shape, np.nan)
    return ~did_not_train(nan, nan, values, CLASSES)


def analyse(values, failed, statistic: str, which: str, alpha: float = 0.05, min_effect: float | None = 0.01):
    """Every variant vs the baseline of every study: dict of (studies, variants) arrays diff, low, high, p,
    p_adjusted (Holm over the variants) and decision codes (ablations.robust.DECISIONS)."""
    ok = trained_mask(values, failed, which)
    v, b = values[:, 1:], values[:, :1]
    okv, okb = ok[:, 1:], ok[:, :1]
    v, b = np.where(okv, v, np.nan), np.broadcast_to(np.where(okb, b, np.nan), v.shape)
    c = compare(v, b, None, None, statistic, (0.0, 1.0), alpha)
    pa = holm(c.p)
    return {"diff": c.diff, "low": c.low, "high": c.high, "p": c.p, "p_adjusted": pa, "method": c.method,
            "codes": decide(c.low, c.high, pa, False, min_effect, alpha)}


def decision_figures(rng: np.random.Generator, studies: int, seeds: int, fail: float, effect: float = 0.02,
                     candidates=CANDIDATES) -> dict:
    """Per candidate: family-wise false better/worse with no effect, coverage of 0 by each no-effect interval,
    and power (variant 1 worse by `effect` among trained seeds called worse, the others without effect)."""
    null = draw(rng, studies, seeds, fail=fail)
    alt = draw(rng, studies, seeds, shifts=(effect, 0, 0, 0), fail=fail)
    out = {}
    for name, (stat, which) in candidates.items():
        a0, a1 = analyse(*null, stat, which), analyse(*alt, stat, which)
        out[name] = {"fwer": float(np.mean(((a0["codes"] == 1) | (a0["codes"] == 2)).any(-1))),
                     "coverage": float(np.mean((a0["low"] <= 0) & (0 <= a0["high"]))),
                     "power": float(np.mean(a1["codes"][:, 0] == 2))}
    return out


def bounded_figures(rng: np.random.Generator, studies: int, seeds: int, base: float, sd: float,
                    effect: float = 0.0) -> dict:
    """Coverage and bound-keeping of the bounded mean interval (baseline) and difference interval (one variant
    `effect` away), next to the plain t / Welch they replace."""
    b = beta(rng, base, sd, (studies, seeds))
    v = beta(rng, base + effect, sd, (studies, seeds))
    m, lo, hi = mean_interval(b, None)
    _, clo, chi = mean_interval(b, (0.0, 1.0))
    d, dlo, dhi, _ = diff_interval(v, b, None)
    _, cdlo, cdhi, _ = diff_interval(v, b, (0.0, 1.0))
    allow_lo = mean_interval(v)[1] - mean_interval(b)[2]
    return {"t_coverage": float(np.mean((lo <= base) & (base <= hi))), "t_below_0": float(np.mean(lo < 0)),
            "coverage": float(np.mean((clo <= base) & (base <= chi))),
            "welch_coverage": float(np.mean((dlo <= effect) & (effect <= dhi))),
            "welch_beyond_means": float(np.mean(dlo < allow_lo - 1e-15)),
            "diff_coverage": float(np.mean((cdlo <= effect) & (effect <= cdhi))),
            "diff_width": float(np.mean(cdhi - cdlo)), "welch_width": float(np.mean(dhi - dlo))}


def _table(rows, head):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ablations.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=20_000)
    parser.add_argument("--part", choices=("bounded", "decision", "power", "adaptive", "min_effect", "all"), default="all")
    args = parser.parse_args(argv)
    S = args.studies
    if args.part in ("bounded", "all"):
        rows = []
        for base, sd, effect in [(0.01, 0.005, 0.0), (0.03, 0.015, 0.0), (0.05, 0.015, 0.0), (0.03, 0.015, 0.02),
                                 (0.03, 0.015, -0.02), (0.01, 0.015, 0.0)]:
            for n in (3, 5, 10):
                f = bounded_figures(np.random.default_rng([1, n, int(base * 1000), int(effect * 1000) + 50]),
                                    S, n, base, sd, effect)
                rows.append([f"{base:g}", f"{sd:g}", f"{effect:+g}", str(n), f"{f['t_coverage']:.3f}",
                             f"{f['t_below_0']:.2f}", f"{f['coverage']:.3f}", f"{f['welch_coverage']:.3f}",
                             f"{f['welch_beyond_means']:.2f}", f"{f['diff_coverage']:.3f}",
                             f"{f['diff_width']:.4f}"])
        print(_table(rows, ["baseline", "sd", "effect", "seeds", "t cover", "t below 0", "cut t cover",
                            "Welch cover", "Welch beyond means", "cut diff cover", "cut diff width"]))
    if args.part in ("decision", "all"):
        rows = []
        for fail in (0.0, 0.1):
            for n in (3, 5, 10):
                f = decision_figures(np.random.default_rng([2, n, int(fail * 100)]), S, n, fail)
                for name, r in f.items():
                    rows.append([name, f"{fail:.0%}", str(n), f"{r['fwer']:.3f}", f"{r['coverage']:.3f}",
                                 f"{r['power']:.3f}"])
        print(_table(rows, ["statistic", "failed seeds", "seeds", "family-wise false better/worse",
                            "no-effect interval covers 0", "power (+0.02)"]))
    if args.part in ("power", "all"):
        from .planning import power_table
        print(power_table(S))
    if args.part in ("adaptive", "all"):
        from .sequential import adaptive_table
        print(adaptive_table(S))
    if args.part in ("min_effect", "all"):
        from .sequential import min_effect_table
        print(min_effect_table(S))


if __name__ == "__main__":
    main()
