"""Time to accuracy, one benchmark per `TTACase`: an untimed warm-up run, then one timed run per seed by the rules
of bench/tta.py. The seeds' times are the case's rounds in pytest-benchmark's JSON; every figure is in extra_info.

    pytest bench --benchmark-only --vgg-modes time_to_accuracy --benchmark-json tta.json
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from vggcore.errors import UserError
from vggcore.intervals import median_interval
from vggcore.device import device_name, dtype_unsupported_reason
from vggcore.threads import threads

from .loop_cost import StepPartsUnavailable, epoch_parts, step_parts
from .progress import CaseBar
from .sampling import record_rounds
from .session import note_tta
from .tta import TOLERANCE, WARMUP, Run, TTACase, timed_run, warm_up
from .tta_stats import round_times, summarize

CLOCK = ("time.perf_counter (wall time) from just before the dataset's load to the end of the first validation "
         "at or above the target; training, data loading and augmentation, and every evaluation included")


def bar_total(case: TTACase) -> int:
    """The case's bar counts epochs: the warm-up's, then each seed's cap (a run stopped at the target moves the
    bar on by the epochs it did not need)."""
    return WARMUP["runs"] * WARMUP["epochs"] + case.seeds * case.max_epochs


def measure(case: TTACase, open_trial, bar: CaseBar) -> tuple[list[dict], dict]:
    """The warm-up, the timed runs and the per-step loop cost, with the case's progress bar (per epoch: which
    run, its validation accuracy). A loop cost that cannot be measured is recorded with its reason, never
    guessed, and the runs are kept."""
    try:
        warm_up(open_trial, lambda row: bar.step(run="warm-up", val_acc=f"{row['val_accuracy']:.1%}"))
        runs = []
        for seed in range(case.seeds):
            show = lambda point, s=seed: bar.step(run=f"seed {s}", val_acc=f"{point['val_accuracy']:.1%}")  # noqa: E731
            runs.append(timed_run(open_trial, seed, case.target, case.max_epochs, on_epoch=show))
            bar.step(case.max_epochs - runs[-1]["epochs_run"], run=f"seed {seed}", status=runs[-1]["status"])
        bar.show(run="loop cost")
        try:
            steps = step_parts(case)
        except StepPartsUnavailable as err:
            steps = {"steps_timed": 0, "steps_unavailable": str(err)}
    finally:
        bar.close()
    return runs, steps


def test_time_to_accuracy(benchmark, tta_case: TTACase, request):
    case = tta_case
    reason = dtype_unsupported_reason(case.device, case.dtype)
    if reason:
        pytest.skip(reason)
    benchmark.group = case.group
    open_trial = lambda seed: Run(case, seed)  # noqa: E731
    try:
        if benchmark.disabled:  # --benchmark-disable: one epoch of one seed, untimed, nothing recorded
            timed_run(open_trial, 0, case.target, 1)
            return
        runs, steps = measure(case, open_trial, CaseBar(request.config, case.id, bar_total(case), "epoch"))
    except UserError as err:  # e.g. --vgg-data-root lacks the dataset's files: one line, not a traceback
        pytest.fail(f"{case.id}: {err}", pytrace=False)
    rounds = round_times(runs)
    record_rounds(benchmark, rounds)
    summary = summarize(runs)
    low, high = median_interval(rounds)   # over the rounds, as every case records it (reports' history bars)
    info = {**asdict(case), **summary, "round_times": rounds, "median_low": low, "median_high": high,
            "curves": [r["curve"] for r in runs],
            "tta_elapsed": [r["elapsed"] for r in runs],
            "loop_cost": {**epoch_parts(runs), **steps},
            "clock": CLOCK, "warmup": WARMUP, "cadence": "validation after every epoch", "tolerance": TOLERANCE,
            "device_name": device_name(case.device), "threads": threads(), "torch_version": torch.__version__,
            "unstable": not summary["valid"], "unstable_reason": summary["valid_reason"]}
    benchmark.extra_info.update(info)
    note_tta(request.config, case.id, summary)   # the terminal summary lists it, invalid ones marked
