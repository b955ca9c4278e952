"""The --until-decided procedure on pre-drawn outcomes, vectorised over studies: what the calibration simulations
run. A study decides look by look through `ablations.stats.sequential.look_step`; this replays the same rule
over thousands of simulated studies at once.
"""

from __future__ import annotations

import numpy as np
from ablations.stats.errors import StatsInputError
from ablations.stats.robust import DEFAULT
from ablations.stats.sequential import look_step, new_state


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
