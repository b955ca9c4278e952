"""Seeded, vectorised simulations behind the statistics' defaults; the figures of docs/statistics.md.

    python -m ablations.calibration [--studies 20000]      # prints the docs' tables (minutes at 20,000)

A simulated study: a baseline and VARIANTS variants, `seeds` seeds each. A seed that trained ends with a test
error drawn from a beta distribution (mean 0.03, sd 0.015 by default: the demo's trained seeds); with probability
`fail` a seed did not train and ends uniform in [0.3, 0.9]. The tests (tests/test_robust_stats.py) call the same
functions with fewer studies and assert the nominal rates; nothing here is a figure typed in by hand.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import stats as sps

from vggcore.cli.parser import Parser
from vggcore.errors import UsageError, run_command

from ablations.stats.bounded import diff_interval, mean_interval
from ablations.stats.failures import did_not_train
from ablations.stats.planning import seeds_needed
from ablations.stats.primitives import decide, holm
from ablations.stats.robust import DEFAULT, compare
from ablations.stats.sequential import RULES, look_levels, paired_levels

from .simulate import simulate

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
    p_adjusted (Holm over the variants) and decision codes (ablations.stats.primitives.DECISIONS)."""
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
        defined = ~np.isnan(a0["low"])   # an arm left with under 2 trained seeds has no interval
        out[name] = {"fwer": float(np.mean(((a0["codes"] == 1) | (a0["codes"] == 2)).any(-1))),
                     "coverage": float(np.mean((a0["low"] <= 0)[defined] & (0 <= a0["high"])[defined])),
                     "undefined": float(np.mean(~defined)),
                     "power": float(np.mean(a1["codes"][:, 0] == 2))}
    return out


def iqm(values, axis: int = -1):
    """Interquartile mean (rliable's IQM: scipy.stats.trim_mean at 0.25, floor(n / 4) cut from each end)."""
    return sps.trim_mean(values, 0.25, axis=axis)


def iqm_bootstrap_figures(rng: np.random.Generator, studies: int, seeds: int, fail: float, resamples: int = 1000,
                          effect: float = 0.02, chunk: int = 100) -> dict:
    """The IQM-difference candidate with a percentile bootstrap (resampling each arm's seeds), Holm over four
    variants: family-wise false better/worse and coverage of 0 with no effect, power for +effect. Slow (studies x
    resamples x arms x seeds values), so a few thousand studies."""
    out = {}
    for label, shifts in (("null", (0.0,) * VARIANTS), ("alt", (effect, 0, 0, 0))):
        values, _ = draw(rng, studies, seeds, shifts=shifts, fail=fail)
        low, high, p = (np.empty((studies, VARIANTS)) for _ in range(3))
        for start in range(0, studies, chunk):
            v = values[start:start + chunk]                                        # (c, arms, seeds)
            idx = rng.integers(0, seeds, (len(v), 1 + VARIANTS, resamples, seeds))
            boot = iqm(np.take_along_axis(v[:, :, None, :].repeat(resamples, 2), idx, -1))   # (c, arms, B)
            d = boot[:, 1:] - boot[:, :1]
            low[start:start + chunk], high[start:start + chunk] = np.quantile(d, [0.025, 0.975], axis=-1)
            p[start:start + chunk] = np.minimum(1, 2 * np.minimum((d <= 0).mean(-1), (d >= 0).mean(-1)))
        codes = decide(low, high, holm(p), False, 0.01)
        if label == "null":
            out["fwer"] = float(np.mean(((codes == 1) | (codes == 2)).any(-1)))
            out["coverage"] = float(np.mean((low <= 0) & (0 <= high)))
        else:
            out["power"] = float(np.mean(codes[:, 0] == 2))
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


def markdown_table(rows, head):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def power_table(studies: int = 20_000) -> str:
    """docs/statistics.md section 3: the default's simulated power at the seeds `seeds_needed` asks for."""
    rows = []
    for effect, sd, fail in [(0.02, 0.015, 0.0), (0.02, 0.015, 0.1), (0.03, 0.015, 0.1), (0.02, 0.01, 0.0),
                             (0.03, 0.03, 0.0)]:
        need = int(seeds_needed(effect, sd, sd, fail, fail, comparisons=4))
        values, failed = draw(np.random.default_rng([3, need, int(fail * 10)]), studies, need,
                              shifts=(effect, 0, 0, 0), fail=fail, sd=sd)
        got = analyse(values, failed, "trained", "truth")
        rows.append([f"{effect:g}", f"{sd:g}", f"{fail:.0%}", str(need),
                     f"{np.mean(got['codes'][:, 0] == 2):.3f}"])
    return markdown_table(rows, ["min_effect", "sd", "failed seeds", "seeds_needed", "simulated power (Holm over 4)"])


# (label, look rule, statistic, freeze): the old procedure (before issue 16) first
ADAPTIVE_RULES = (("old rule: even split, Welch on all seeds", "even", "welch", False),
                  ("even split, default statistic", "even", DEFAULT, True),
                  ("Pocock-like spending, default statistic", "pocock", DEFAULT, True),
                  ("O'Brien-Fleming-like spending, default statistic", "obf", DEFAULT, True))


def adaptive_figures(rng: np.random.Generator, studies: int, effect: float, fail: float, min_effect: float | None,
                     n0: int = 3, max_seeds: int = 10, rules=ADAPTIVE_RULES) -> dict:
    """Per rule, on one set of drawn studies (variant 1 worse by `effect` among trained seeds, the other three
    without effect; `fail` of all seeds did not train and are flagged): family-wise false better/worse over the
    no-effect variants at any look, coverage of 0 by their final intervals, their mean seeds, and for variant 1
    (when effect > 0) the share called worse and its mean seeds."""
    values, failed = draw(rng, studies, max_seeds, shifts=(effect, 0, 0, 0), fail=fail)
    null = slice(1, None) if effect else slice(None)
    out = {}
    for label, rule, statistic, freeze in rules:
        levels = look_levels(n0, max_seeds, 0.05, rule)
        r = simulate(values, ~failed, n0, max_seeds, levels, min_effect, statistic=statistic, freeze=freeze)
        wrong = r["ever_rejected"][:, null]
        if effect:
            wrong = wrong | (r["codes"][:, null] == 1)
        row = {"fwer": float(np.mean(wrong.any(-1))),
               "coverage": float(np.nanmean(np.where(np.isnan(r["low"][:, null]), np.nan,
                                                     (r["low"][:, null] <= 0) & (0 <= r["high"][:, null])))),
               "seeds_null": float(r["n"][:, 1:][:, null].mean()),
               "equivalent_null": float(np.mean(r["codes"][:, null] == 3))}
        if effect:
            row["detected"] = float(np.mean(r["codes"][:, 0] == 2))
            row["seeds_effect"] = float(r["n"][:, 1].mean())
        out[label] = row
    return out


def adaptive_table(studies: int = 20_000, min_effects=(0.01, 0.02)) -> str:
    """docs/statistics.md section 4: old and new --until-decided rules on simulated studies (n0 3, max 10)."""
    rows = []
    for min_effect in min_effects:
        for effect in (0.0, 0.01, 0.02):
            for fail in (0.0, 0.1):
                f = adaptive_figures(np.random.default_rng([4, int(effect * 100), int(fail * 10),
                                                            int(min_effect * 1000)]), studies, effect, fail,
                                     min_effect)
                for label, r in f.items():
                    rows.append([f"{min_effect:g}", f"{effect:g}", f"{fail:.0%}", label, f"{r['fwer']:.3f}",
                                 f"{r['coverage']:.3f}", f"{r['seeds_null']:.2f}", f"{r['equivalent_null']:.3f}",
                                 f"{r['detected']:.3f}" if effect else "-",
                                 f"{r['seeds_effect']:.2f}" if effect else "-"])
    return markdown_table(rows, ["min_effect", "true effect (variant 1)", "failed seeds", "rule",
                         "family-wise false better/worse", "no-effect final interval covers 0",
                         "seeds per no-effect variant", "no-effect variants equivalent",
                         "variant 1 called worse", "seeds of variant 1"])


def min_effect_table(studies: int = 20_000, min_effects=(0.01, 0.015, 0.02, 0.025, 0.03), rule: str = "obf",
                     sd: float = SD, fail: float = 0.1, max_seeds: int = 10, base: float = BASE) -> str:
    """docs/statistics.md section 5: what a digits study (trained baseline mean `base`, sd `sd`, `fail` of seeds
    not training, 3 to `max_seeds` seeds, four variants) decides under each min_effect with the recommended rule:
    the share of no-effect variants ending equivalent, of variants 0.02 / 0.03 worse ending worse, and mean seeds.
    The demo's seed cap comes from its time budget (vggbench.demo_plan): --max-seeds 6 or 8 shows what it buys;
    --base and --sd set the baseline a study file quotes its figures at."""
    levels = look_levels(3, max_seeds, 0.05, rule)
    rows = []
    for me in min_effects:
        cells = [f"{me:g}"]
        for i, effect in enumerate((0.0, 0.02, 0.03, me)):
            key = [5, int(me * 1000), i] + ([] if max_seeds == 10 else [max_seeds])   # 10: the docs' draws
            values, failed = draw(np.random.default_rng(key), studies, max_seeds, shifts=(effect,) * 4, fail=fail,
                                  base=base, sd=sd)
            r = simulate(values, ~failed, 3, max_seeds, levels, me)
            if i == 3:   # a change of exactly min_effect must rarely be called equivalent
                cells.append(f"{np.mean(r['codes'] == 3):.3f}")
                continue
            want = 3 if effect == 0 else 2
            cells += [f"{np.mean(r['codes'] == want):.3f}", f"{r['n'][:, 1:].mean():.2f}"]
        rows.append(cells)
    return markdown_table(rows, ["min_effect", "no effect: equivalent", "seeds", "+0.02: worse", "seeds",
                         "+0.03: worse", "seeds", "+min_effect: called equivalent"])


# ------------------------------------------------------------------------------------- paired seeds (issue 30)
DEMO_BASE, DEMO_SD = 0.015, 0.008   # the demo's baseline: trained test error near 0.015, seed sd near 0.008
RHOS = (-0.5, -0.3, 0.0, 0.3, 0.6)   # correlation of a variant's seed with the baseline's seed of the same number
PAIRED_RULES = (("unpaired: trained", DEFAULT), ("paired where the pairs are whole", "paired"))


def draw_pairs(rng: np.random.Generator, studies: int, seeds: int, shifts=(0.0,) * VARIANTS, rho: float = 0.0,
               fail: float = 0.0, base: float = DEMO_BASE, sd: float = DEMO_SD):
    """Like `draw`, but seed k of every variant is correlated rho with seed k of the baseline (a Gaussian copula
    on the beta margins: the seeds share their data order and, for same-shaped nets, their initial weights).
    Failures stay independent per seed and arm. Returns (values, failed), (studies, 1 + variants, seeds)."""
    arms = 1 + len(shifts)
    z = rng.standard_normal((studies, arms, seeds))
    z[:, 1:] = rho * z[:, :1] + np.sqrt(1 - rho ** 2) * z[:, 1:]
    means = base + np.concatenate([[0.0], np.asarray(shifts, dtype=float)])
    k = means * (1 - means) / sd ** 2 - 1
    values = sps.beta.ppf(sps.norm.cdf(z), (means * k)[None, :, None], ((1 - means) * k)[None, :, None])
    failed = rng.random((studies, arms, seeds)) < fail
    values = np.where(failed, rng.uniform(FAIL_LOW, FAIL_HIGH, values.shape), values)
    return values, failed


def paired_figures(rng: np.random.Generator, studies: int, rho: float, fail: float, effect: float,
                   max_seeds: int = 7, min_effect: float = 0.03, n0: int = 3, rules=PAIRED_RULES) -> dict:
    """Per statistic, on one set of drawn studies (variant 1 worse by `effect`, the others without effect; all
    variants without effect when effect is 0): family-wise false better/worse over the no-effect variants at any
    look, the share of studies calling variant 1 worse and its mean seeds (effect > 0), mean seeds per no-effect
    variant."""
    values, failed = draw_pairs(rng, studies, max_seeds, shifts=(effect, 0, 0, 0), rho=rho, fail=fail)
    null = slice(1, None) if effect else slice(None)
    levels = look_levels(n0, max_seeds, 0.05, "obf")
    out = {}
    for label, statistic in rules:
        r = simulate(values, ~failed, n0, max_seeds, levels, min_effect, statistic=statistic)
        wrong = r["ever_rejected"][:, null]
        if effect:
            wrong = wrong | (r["codes"][:, null] == 1)
        out[label] = {"fwer": float(np.mean(wrong.any(-1))), "seeds_null": float(r["n"][:, 1:][:, null].mean()),
                      "detected": float(np.mean(r["codes"][:, 0] == 2)) if effect else float("nan"),
                      "seeds_effect": float(r["n"][:, 1].mean()) if effect else float("nan")}
    return out


def paired_table(studies: int = 20_000, max_seeds: int = 7, rhos=RHOS, effects_=(0.0, 0.01, 0.02, 0.03),
                 min_effect: float | None = 0.03) -> str:
    """docs/statistics.md section 6: paired against unpaired under --until-decided at the demo's baseline (0.015,
    sd 0.008, 3 to max_seeds seeds, four variants, Holm), 0% and 10% of seeds failing; min_effect 0.03 (the
    demo's), or None: no variant can stop as equivalent, every no-effect variant runs to the cap (the worst case
    for the family-wise rate)."""
    rows = []
    for effect in effects_:
        for fail in (0.0, 0.1):
            for rho in rhos:
                key = [9, int(effect * 1000), int(fail * 10), int(rho * 10) + 10, max_seeds, min_effect is None]
                f = paired_figures(np.random.default_rng(key), studies, rho, fail, effect, max_seeds, min_effect)
                for label, r in f.items():
                    rows.append([f"{effect:g}", f"{fail:.0%}", f"{rho:+g}", label, f"{r['fwer']:.3f}",
                                 f"{r['seeds_null']:.2f}", f"{r['detected']:.3f}" if effect else "-",
                                 f"{r['seeds_effect']:.2f}" if effect else "-"])
    return markdown_table(rows, ["true effect (variant 1)", "failed seeds", "pair correlation", "statistic",
                                 "family-wise false better/worse", "seeds per no-effect variant",
                                 "variant 1 called worse", "seeds of variant 1"])


def sequential_t_rate(rng: np.random.Generator, studies: int, levels, n0: int) -> float:
    """Share of null studies in which a lone paired t over n0, n0 + 1, ... exactly normal differences crosses
    the level of some look (levels: one per look), computed directly, apart from `look_step`."""
    d = rng.standard_normal((studies, n0 + len(levels) - 1))
    crossed = np.zeros(studies, dtype=bool)
    for k, level in enumerate(levels):
        x = d[:, :n0 + k]
        t = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(n0 + k))
        crossed |= 2 * sps.t.sf(np.abs(t), n0 + k - 1) < level
    return float(crossed.mean())


PLANS = (("obf", 3, 7), ("obf", 3, 10), ("obf", 3, 16), ("obf", 5, 10), ("pocock", 3, 7), ("pocock", 3, 10))


def paired_levels_table(studies: int = 200_000, plans=PLANS) -> str:
    """docs/statistics.md section 6: a lone paired t under --until-decided (no margin, normal differences) at the
    z's look levels and at its own (`sequential.paired_levels`), with the binomial standard error."""
    rows = []
    for rule, n0, cap in plans:
        z = look_levels(n0, cap, 0.05, rule)
        own = paired_levels(tuple(z.tolist()), tuple(range(n0, cap + 1)))
        cells = [rule, str(n0), str(cap)]
        for i, levels in enumerate((z, own)):
            rate = sequential_t_rate(np.random.default_rng([12, n0, cap, RULES.index(rule), i]), studies, levels, n0)
            cells.append(f"{rate:.4f} +/- {np.sqrt(rate * (1 - rate) / studies):.4f}")
        rows.append(cells)
    return markdown_table(rows, ["rule", "first look (pairs)", "seed cap", "at the z's levels",
                                 "at the paired t's own levels"])


def main(argv=None) -> int:
    parser = Parser(prog="python -m ablations.calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=20_000)
    parser.add_argument("--max-seeds", type=int, default=10, help="seed cap of the min_effect part (the paired "
                        "part: 7 unless given)")
    parser.add_argument("--base", type=float, default=BASE, help="trained baseline mean of the min_effect part")
    parser.add_argument("--sd", type=float, default=SD, help="seed-to-seed sd of the min_effect part")
    parser.add_argument("--part", default="all",
                        choices=("bounded", "decision", "crossover", "power", "adaptive", "min_effect", "paired",
                                 "all"))
    args = parser.parse_args(argv)
    return run_command(_run, args)


OWN_MIN_EFFECTS = (0.01, 0.015, 0.02, 0.025, 0.03, 0.04)   # the min_effect part at a cap or baseline of one's own


def _check(args: argparse.Namespace) -> None:
    """The simulated baseline must be one a beta distribution can have: 0 < mean, the largest mean drawn (base +
    the largest min_effect) < 1, and 0 < sd < sqrt(mean (1 - mean)) at both ends."""
    if args.studies < 1:
        raise UsageError(f"--studies {args.studies}: simulate at least 1 study")
    shift = max(OWN_MIN_EFFECTS)
    top = args.base + shift
    if not (0 < args.base and top < 1):
        raise UsageError(f"--base {args.base:g}: the baseline's mean must be above 0 and below {1 - shift:g} (the "
                         f"part draws means up to base + {shift:g})")
    limit = min(np.sqrt(m * (1 - m)) for m in (args.base, top))
    if not 0 < args.sd < limit:
        raise UsageError(f"--sd {args.sd:g}: a beta-distributed error of mean {args.base:g} to {top:g} needs an sd "
                         f"above 0 and below {limit:.3g}")


def _run(args: argparse.Namespace) -> None:
    _check(args)
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
        print(markdown_table(rows, ["baseline", "sd", "effect", "seeds", "t covers", "t below 0", "bounded covers",
                            "Welch covers", "Welch beyond the means", "bounded diff covers", "bounded diff width"]))
    if args.part in ("decision", "all"):
        rows = []
        for fail in (0.0, 0.1):
            for n in (3, 5, 10):
                f = decision_figures(np.random.default_rng([2, n, int(fail * 100)]), S, n, fail)
                for name, r in f.items():
                    rows.append([name, f"{fail:.0%}", str(n), f"{r['fwer']:.3f}", f"{r['coverage']:.3f}",
                                 f"{r['undefined']:.3f}", f"{r['power']:.3f}"])
        print(markdown_table(rows, ["statistic", "failed seeds", "seeds", "family-wise false better/worse",
                            "no-effect interval covers 0", "no interval (< 2 trained)", "power (+0.02)"]))
        rows = []
        for fail in (0.0, 0.1):
            for n in (3, 5, 10):
                r = iqm_bootstrap_figures(np.random.default_rng([6, n, int(fail * 100)]), min(S, 2000), n, fail)
                rows.append(["IQM, percentile bootstrap (all seeds)", f"{fail:.0%}", str(n), f"{r['fwer']:.3f}",
                             f"{r['coverage']:.3f}", f"{r['power']:.3f}"])
        print(markdown_table(rows, ["statistic", "failed seeds", "seeds", "family-wise false better/worse",
                            "no-effect interval covers 0", "power (+0.02)"]))
    if args.part in ("crossover", "all"):
        rows = []
        pick = {k: CANDIDATES[k] for k in ("welch_trained (rule flags)", "hodges_lehmann (rule flags)",
                                           "welch_trained (every failure flagged)",
                                           "hodges_lehmann (every failure flagged)")}
        for fail in (0.0, 0.1):
            for n in (5, 6, 7, 8):
                f = decision_figures(np.random.default_rng([8, n, int(fail * 100)]), S, n, fail, candidates=pick)
                rows.append([f"{fail:.0%}", str(n)] + [f"{r['power']:.3f}" for r in f.values()])
        print(markdown_table(rows, ["failed seeds", "seeds", *pick]))
    if args.part in ("power", "all"):
        print(power_table(S))
    if args.part in ("adaptive", "all"):
        print(adaptive_table(S))
    if args.part in ("min_effect", "all"):
        own = args.max_seeds != 10 or args.base != BASE or args.sd != SD
        print(min_effect_table(S, min_effects=OWN_MIN_EFFECTS, max_seeds=args.max_seeds,
                               base=args.base, sd=args.sd) if own else min_effect_table(S))
    if args.part in ("paired", "all"):
        cap = args.max_seeds if args.max_seeds != 10 else 7
        print(paired_levels_table(10 * S))   # a lone t is cheap: ten times the studies
        print(paired_table(S, cap, effects_=(0.0,), min_effect=None))
        print(paired_table(S, cap))


if __name__ == "__main__":
    sys.exit(main())
