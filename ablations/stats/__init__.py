"""Statistics over seeds, below `reports` because the study runner needs them too (`run --until-decided` decides
at each look, `status` prints the seeds needed). Pure functions, seeded where they resample, no plotting.

    frames      effects / summarize / power: a study's runs frame in, the report's tables out (COLUMNS)
    primitives  the one copy of Welch t, Student-t intervals, Holm / Benjamini-Hochberg and the decision codes
    bounded     intervals of means and differences inside a metric's bounds (error rates in [0, 1])
    failures    the rule for seeds that did not train, their rate's interval, the excess-failure test
    robust      the candidate comparisons and the default decision statistic, "trained" (`robust.compare`)
    planning    seeds needed per variant from its own spread and failure rate
    sequential  the looks of `run --until-decided`: per-look levels (even split, O'Brien-Fleming-like), one step
    samples     one sample at a time: Student-t or percentile-bootstrap interval and test (`--interval bootstrap`)
    errors      StatsInputError, the one error bad input raises here

The figures behind the defaults: docs/statistics.md, made by the simulations of `ablations.calibration`
(`python -m ablations.calibration`), which live apart from a study's path. The names below are those
`ablations.stats` always had.
"""

import importlib

# public name -> the module that owns it; imported on first use, so `ablations.stats.levels` (and every light
# command that reads it) imports no numpy
PUBLIC = {
    "COLUMNS": "frames", "effects": "frames", "power": "frames", "summarize": "frames", "POWER": "planning",
    "seeds_needed": ("planning", "two_arm_seeds_needed"), "ALPHA": "levels", "CORRECTIONS": "primitives",
    "DECISIONS": "primitives", "adjust": "primitives", "benjamini_hochberg": "primitives", "decide": "primitives",
    "holm": "primitives", "t_interval": "primitives", "welch": "primitives", "METHODS": "samples",
    "RESAMPLES": "samples", "bootstrap_means": "samples", "diff_test": "samples", "mean_interval": "samples",
}
__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = PUBLIC[name] if isinstance(PUBLIC[name], tuple) else (PUBLIC[name], name)
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
