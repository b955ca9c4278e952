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

from .loop_cost import epoch_parts, step_parts
from .sampling import record_rounds
from .session import note_tta
from .tta import TOLERANCE, WARMUP, Run, TTACase, timed_run, warm_up
from .tta_stats import round_times, summarize

CLOCK = ("time.perf_counter (wall time) from just before the dataset's load to the end of the first validation "
         "at or above the target; training, data loading and augmentation, and every evaluation included")


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
        warm_up(open_trial)
        runs = [timed_run(open_trial, seed, case.target, case.max_epochs) for seed in range(case.seeds)]
        steps = step_parts(case)
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
