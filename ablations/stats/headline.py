"""The effects table a person reads first: one plain line per variant, the same words in the report (HTML and
Markdown, `reports.sections`) and on the terminal (`run --until-decided`).

    table = headline(eff)        # eff: one study's `frames.effects`; a frame of strings, one row per variant
    print(headline_text(eff))    # the same table, aligned for a terminal
    method_summary(eff)          # a few sentences to put under it

Each row reads from one look (`frames.effects` takes every number of a row from the seeds of the look that decided
it, else the last look): the decision, the effect in the metric's units with its interval, what that effect
estimates (difference of means, Hodges-Lehmann shift, mean of paired differences), the seeds of both arms, the
adjusted p and the level of the row's intervals with its look. A variant decided by its failure rate says so, with
both arms' counts and the Fisher p of that look. No relative change here: a ratio to an error near 0.01 says little,
and the margin (min_effect) is in the metric's units; the detailed table gives the change with its Fieller interval.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["variant", "decision", "effect [interval]", "estimand", "seeds (variant vs baseline)", "adjusted p",
           "level (look)"]


def _signed(x: float) -> str:
    return f"{x:+.3g}"


def _p(x: float) -> str:
    if x != x:
        return "-"
    return "< 0.001" if x < 0.001 else f"{x:.3g}"


def effect_text(row) -> str:
    """The effect with its interval at the row's level, or what is true when there is none to give."""
    if row["diff"] != row["diff"]:
        if row["n_used"] == 0:
            return "no trained seed"
        if row.get("n_used_baseline", 1) == 0:
            return "no trained baseline seed"
        return "no estimate"
    if row["diff_low"] != row["diff_low"] or row["diff_high"] != row["diff_high"]:
        return f"{_signed(row['diff'])} (no interval: under 2 seeds in an arm)"
    return f"{_signed(row['diff'])} [{_signed(row['diff_low'])}, {_signed(row['diff_high'])}]"


def failure_text(row) -> str:
    """The failure test of the row's look in words: "k of n vs k of n did not train (one-sided Fisher p ...)"."""
    return (f"{int(row['k_compared'])} of {int(row['n_compared'])} vs {int(row['k_compared_baseline'])} of "
            f"{int(row['n_compared_baseline'])} did not train (one-sided Fisher p {_p(row['excess_failure_p'])})")


def arm_seeds_text(row) -> str:
    """Seeds of both arms at the row's look: those with an outcome, and the trained ones where fewer."""
    text = f"{int(row['n_compared'])} vs {int(row['n_compared_baseline'])}"
    used = (int(row["n_used"]), int(row.get("n_used_baseline", row["n_compared_baseline"])))
    if used != (int(row["n_compared"]), int(row["n_compared_baseline"])):
        text += f" ({used[0]} vs {used[1]} trained)"
    return text


def level_text(row) -> str:
    level = f"{(1 - row['alpha']) * 100:.4g}%"
    return level if row["rule"] == "fixed seeds" else f"{level} (look {int(row['look'])})"


def headline(eff: pd.DataFrame) -> pd.DataFrame:
    """One study's effects (`frames.effects`) as the plain table COLUMNS, one row per variant, ranked as given."""
    rows = []
    for _, row in eff[eff["variant"] != "baseline"].iterrows():
        by_failures = row.get("decided_by") == "failure rate"
        estimand = row["estimand"] or "-"
        if by_failures:
            estimand = f"failure rate: {failure_text(row)}"
        rows.append([row["variant"], row["decision"], effect_text(row), estimand, arm_seeds_text(row),
                     _p(row["p_adjusted"]), level_text(row)])
    return pd.DataFrame(rows, columns=COLUMNS)


def headline_text(eff: pd.DataFrame) -> str:
    """`headline` aligned in columns for a terminal, under one line naming the study, metric and baseline."""
    table = headline(eff)
    cells = [COLUMNS, *table.values.tolist()]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    base = eff[eff["variant"] == "baseline"]
    head = f"{eff['study'].iloc[0]}: {eff['metric'].iloc[0]}, variant - baseline"
    if len(base):
        b = base.iloc[0]
        head += f"; baseline mean {b['mean']:.4g} over {int(b['n_used'])} seeds at the last look"
    return "\n".join([head, *lines])


def method_summary(eff: pd.DataFrame, detail: str = "") -> str:
    """A few sentences for under the table: where the numbers come from, how p was adjusted, what each decision
    means, and where the detail is (`detail`: e.g. "the study's section below")."""
    row = eff.iloc[0]
    me = row["min_effect"]
    equivalent = f"equivalent: the interval inside +/-{me:g}" if me == me else "no min_effect, so nothing is " \
        "called equivalent"
    where = ("every number on a row comes from the seeds of the look that decided it (the last look while "
             "undecided), its intervals at that look's level" if row["rule"] != "fixed seeds"
             else f"one analysis of every seed, intervals at {(1 - row['alpha']) * 100:.4g}%")
    text = (f"{row['metric']}, variant - baseline; {where}. p adjusted by {row['correction']} over the "
            f"{int((eff['variant'] != 'baseline').sum())} variants. better/worse: adjusted p below the level and "
            f"the interval beyond 0, or worse when the variant's seeds fail to train more often (Fisher's test); "
            f"{equivalent}; undecided otherwise.")
    return text + (f" Method and every column: {detail}." if detail else "")
