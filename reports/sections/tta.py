"""Time-to-accuracy section: per setting the time to the target over seeds with its interval, every seed, the
training curves behind the times, where the clock's time went, and the cases' history over saved runs."""

from __future__ import annotations

from .. import tta_plots
from ..document import Report
from ..format import ratio_interval_h
from ..history import history, latest_runs, steps
from ..tta_tables import cases_display, cases_table, curves, loop_cost, seeds_table
from . import Inputs

RULES = ("The clock (wall time) runs from just before a run loads its dataset to the end of the first "
         "validation at or above the target: data loading and augmentation, training and every evaluation "
         "count. Validation after every epoch; the target is confirmed on the test split afterwards, untimed. One "
         "untimed warm-up run precedes each case's seeds. A run that ends its epochs (the cap) or diverges "
         "without reaching the target did not converge; more than one such run makes the case invalid (MLPerf). "
         "Olympic mean: the runs less the fastest and the slowest, averaged. The interval is the median's "
         "distribution-free one, at the level shown (93.75% with 5 seeds, 96.9% with 6): a missed run counts as "
         "the slowest, so it needs no assumed distribution. 'vs plain fp32': the plain fp32 case's olympic mean "
         "over this one's (a point estimate).")


def add(r: Report, inp: Inputs) -> None:
    if inp.tta is None:
        return
    latest, machine = latest_runs(inp.tta)
    r.add("h2", "Time to accuracy")
    r.add("text", f"{RULES} Latest runs of {machine}.")
    r.table("time_to_accuracy", cases_table(latest), "time to the target per setting", display=cases_display(latest))
    r.table("tta_seeds", seeds_table(latest), "every seed (seconds and epochs empty: not reached)")
    r.figure("tta_times", lambda ax: tta_plots.times(latest, ax))
    points = curves(latest)
    if not points.empty:
        r.figure("tta_curves", lambda ax: tta_plots.curves(points, ax))
    cost = loop_cost(latest)
    if not cost.empty:
        r.table("tta_loop_cost", cost, "where the clock went (shares over every timed run) and a step's parts "
                                       "(median seconds)")
    hist = history(inp.tta)
    if hist.groupby(["machine", "name"]).size().max() >= 2:
        found = steps(hist)
        r.add("h3", "Time-to-accuracy history")
        if found.empty:
            r.add("text", "No step: no case's median time to the target changed beyond 5% and the noise between "
                          "its saved runs.")
        else:
            shown = found.assign(change=[ratio_interval_h(a, b, c) for a, b, c in
                                         zip(found["ratio"], found["low"], found["high"])])
            r.table("tta_history_steps", found, "steps detected (after / before, median time to the target)",
                    display=shown[["machine", "name", "verdict", "change", "step_at_run", "datetime", "commit"]])
