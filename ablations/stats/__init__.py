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
    calibrate   the seeded simulations behind every default (`python -m ablations.stats.calibrate`)
    errors      StatsInputError, the one error bad input raises here

The figures behind the defaults: docs/statistics.md. The names below are those `ablations.stats` always had.
"""

from .frames import COLUMNS, effects, power, summarize
from .planning import POWER
from .planning import two_arm_seeds_needed as seeds_needed
from .primitives import ALPHA, CORRECTIONS, DECISIONS, adjust, benjamini_hochberg, decide, holm, t_interval, welch
from .samples import METHODS, RESAMPLES, bootstrap_means, diff_test, mean_interval

__all__ = ["ALPHA", "COLUMNS", "CORRECTIONS", "DECISIONS", "METHODS", "POWER", "RESAMPLES", "adjust",
           "benjamini_hochberg", "bootstrap_means", "decide", "diff_test", "effects", "holm", "mean_interval",
           "power", "seeds_needed", "summarize", "t_interval", "welch"]
