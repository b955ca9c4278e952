"""The demo's decisions that depend on the machine, as pure functions of measured figures (tests use stubs):

    dtypes, skipped = settings_dtypes({"fp32": 155e9, "bf16": 0.9e9})   # what the settings stage times
    workers = workers_for(arms=5, cores=2)                # Workers(processes=2, threads=1): how runs share cores
    cap = seed_cap(budget_s=480, spent_s=260, per_run_s=20, arms=5, initial_seeds=3, upper=10, workers=2)

Settings stage. bf16 autocast is the fastest setting on a CPU with bf16 arithmetic (AMX: a 2048^3 matmul at
2,176 GFLOP/s against fp32's 329) and by far the slowest on one without (AVX2 only: 0.9 against 155 GFLOP/s for a
1024^3 matmul; a VGG conv at 3.3 against 84), where one bf16 training step of VGG-A at batch 4 takes about a
minute and the stage ran for many minutes. So the stage times a dtype only when this machine's measured peak for
it is at least SLOW_SHARE of fp32's, and prints why it left one out: a dtype that slow cannot be the fastest
setting, so the report's "fastest setting" stays the fastest of what can win here.

Seed cap. The study's listed seeds run first; their mean wall time per run sizes the cap: the most seeds per
variant for which every arm could still run every added seed (the worst case of --until-decided, where no variant
decides early) within the time left of the budget, less REPORT_RESERVE_S for the report. The cap is fixed before
the first look, from run times only, never from the metric, so the looks keep their error rate; a rerun keeps the
cap its folder recorded (adaptive.json).

Workers. The study's runs go to one worker process per core (at most one per arm), each on its share of the
cores (`workers_for`): on 2 cores two runs of one thread each, which finished 1.27x the runs per second of one run
on two threads here. A run's result depends on its thread count, which its record keeps.

Memory format. channels_last changes how a tensor is laid out, not what the network computes, so it is free to
choose. Which is faster depends on the CPU (fp32 channels_last ran a VGG conv at 153 GFLOP/s against 84 on an
AVX2-only one, and the BatchNorm and pooling layers count too), so the demo times the study's own training step
(its base model, batch size and image size, on the runs' thread count) both ways with `vggcore.train.fastest.layout`
(the timer `vggcore train --fast` uses) and trains the study in channels_last only when it was at least
fastest.MIN_GAIN faster. The choice is kept in the demo's folder (`study-layout.json`) so a rerun trains the same
runs (the run ids hash the resolved configuration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SLOW_SHARE = 0.5          # a dtype whose peak is below this share of fp32's is not timed by the settings stage
REPORT_RESERVE_S = 20.0   # the report and the last look: 3 s measured in the demo on this 2-core VM, plus margin
DEFAULT_BUDGET_S = 480.0  # the whole demo on a 2-core machine: 8 minutes (issue 16)


def measure_peaks(dtypes, device: str = "cpu") -> dict[str, float]:
    """This machine's measured peak FLOP/s per dtype (`vggcore.peaks.peak_flops`: its kernels grow only while
    a call stays under half a second, so a slow dtype costs seconds here, not minutes)."""
    from vggcore.peaks import peak_flops

    return {d: peak_flops(device, d)["peak_flops"] for d in dtypes}


def settings_dtypes(peaks: dict[str, float], share: float = SLOW_SHARE) -> tuple[list[str], list[str]]:
    """(dtypes the settings stage times, one reason per dtype left out), from measured peaks (FLOP/s, fp32 among
    them). fp32 is always timed: the report's speed-ups are relative to it."""
    base = peaks["fp32"]
    keep, skipped = ["fp32"], []
    for dtype, peak in peaks.items():
        if dtype == "fp32":
            continue
        if peak >= share * base:
            keep.append(dtype)
        else:
            skipped.append(f"{dtype} left out of the settings stage: its measured peak on this CPU is "
                           f"{peak / 1e9:.3g} GFLOP/s, {peak / base:.1%} of fp32's {base / 1e9:.3g} (below "
                           f"{share:.0%}): this CPU has no fast {dtype} arithmetic, so a {dtype} step would take "
                           f"minutes and cannot be the fastest setting; pytest bench --vgg-dtypes fp32,{dtype} "
                           "times it anyway")
    return keep, skipped


@dataclass(frozen=True)
class SeedCap:
    max_seeds: int   # seeds per variant --until-decided may reach
    reason: str      # how it was chosen, for the terminal and the report's reader


def seed_cap(budget_s: float, spent_s: float, per_run_s: float, arms: int, initial_seeds: int, upper: int,
             reserve_s: float = REPORT_RESERVE_S, workers: int = 1) -> SeedCap:
    """The most seeds per variant whose worst case (every one of `arms` arms runs every added seed, each taking
    `per_run_s`, `workers` at a time: ceil(arms / workers) runs one after another) fits in what is left of
    `budget_s` after `spent_s` and `reserve_s`; at least the study's `initial_seeds` (no added seed), at most
    `upper` (the study's max_seeds, or --until-decided's default)."""
    left = budget_s - spent_s - reserve_s
    if per_run_s <= 0 or not math.isfinite(per_run_s):
        return SeedCap(upper, f"no run time recorded: cap {upper} seeds per variant (the study's max_seeds)")
    round_s = math.ceil(arms / workers) * per_run_s
    rounds = max(0, math.floor(left / round_s))
    cap = min(upper, initial_seeds + rounds)
    side = f" on {workers} workers" if workers > 1 else ""
    why = (f"{left:.0f} s of the {budget_s:.0f} s budget left after {spent_s:.0f} s and {reserve_s:.0f} s for the "
           f"report; at {per_run_s:.1f} s per run and {arms} arms{side} a round of added seeds takes at most "
           f"{round_s:.0f} s: {rounds} round(s) fit")
    if cap == upper and initial_seeds + rounds > upper:
        why += f", the study's max_seeds {upper} is the cap"
    return SeedCap(cap, f"seed cap {cap} per variant: {why}")


@dataclass(frozen=True)
class Workers:
    processes: int   # runs at once (worker processes of `ablations.workers`; 1: in the demo's own process)
    threads: int     # torch threads of each run


def workers_for(arms: int, cores: int) -> Workers:
    """How the study's runs share the cores: one worker process per core, at most one per arm (a round of added
    seeds has at most `arms` runs), the cores split evenly among them. Measured on this 2-core VM (VGG-A width
    0.25, 32x32, batch 64, channels_last): two runs of one thread each finished 1.27x the runs per second of one
    run of two threads (small convolutions do not keep two threads busy)."""
    processes = max(1, min(arms, cores))
    return Workers(processes, max(1, cores // processes))
