"""The report's sections, in the order they appear. Each module has one `add(report, inputs)` that appends its
blocks to a `reports.document.Report` from the loaded inputs (`Inputs`), or nothing when its inputs are absent.
A new kind of result gets a module of its own here and a place in `SECTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..load import AblationData


@dataclass
class Inputs:
    """Everything the sections draw from, loaded once by `reports.render.build`."""
    bench: pd.DataFrame | None            # single-process cases of the latest run of `machine`
    bench_all: pd.DataFrame | None        # every single-process case of every run given (history)
    machine: str | None                   # the machine whose latest run `bench` is
    scaling: pd.DataFrame | None          # data-parallel scaling cases
    ablations: AblationData | None
    effects: dict[str, pd.DataFrame] = field(default_factory=dict)   # study -> ablations.stats.effects table
    powers: dict[str, pd.DataFrame] = field(default_factory=dict)    # study -> ablations.stats.power table
    bench_inputs: int = 0                 # how many benchmark paths were given
    ablation_inputs: int = 0
    tta: pd.DataFrame | None = None       # time-to-accuracy cases of every run given (bench/tta.py)


def sections():
    """The section modules in report order (imported here so each module may import `Inputs`)."""
    from . import benchmarks, profile, protocols, studies, summary, tta

    return [summary, benchmarks, profile, tta, studies, protocols]
