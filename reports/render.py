"""`reports build`: load the inputs once, let every section (`reports.sections`) add its blocks, write
report.md, index.html (images beside it, offline), every figure as PNG and every table as CSV.

    python -m reports build --bench bench.json --ablations runs/demo/ablations --out report
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .document import Report, prepare
from .history import latest_runs
from .load import ReportInputError, load_ablations, load_bench
from .output import staged
from .sections import Inputs, sections
from .sections.studies import EFFECTS_COLUMNS, study_effects
from .tta_tables import is_tta


def build(bench_paths=(), ablation_paths=(), out: str | Path = "report", method: str = "t",
          min_effect: float | None = None, correction: str = "holm", progress: bool = False) -> Path:
    """Write the report into `out`, replacing an earlier build's outputs there (`reports.output`); returns the
    path of index.html. `min_effect` overrides each study's own; `progress`: a bar over the sections on stderr."""
    if not bench_paths and not ablation_paths:
        raise ReportInputError("nothing to report: give --bench FILE_OR_DIR and/or --ablations DIR")
    out = Path(out)
    inp = load_inputs(bench_paths, ablation_paths, method, min_effect, correction)
    with staged(out) as folder:
        prepare(folder)
        r = Report(folder)
        r.add("h1", "vggbench report")
        r.add("text", f"Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from "
                      f"{inp.bench_inputs} benchmark input(s) and {inp.ablation_inputs} ablation input(s).")
        if inp.effects:
            pd.concat(inp.effects.values())[EFFECTS_COLUMNS].to_csv(folder / "tables" / "effects.csv", index=False)
        parts = sections()
        bar = _bar(progress, len(parts))
        try:
            for section in parts:
                section.add(r, inp)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(section=section.__name__.rsplit(".", 1)[-1], figures=_count(folder, "*.png"),
                                    tables=_count(folder, "*.csv"))
        finally:
            if bar is not None:
                bar.refresh()   # the last state shown, whatever tqdm's rate limit skipped
                bar.close()
        (folder / "report.md").write_text(r.markdown())
        (folder / "index.html").write_text(r.html("vggbench report"))
    return out / "index.html"


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.rglob(pattern))


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="report", unit="section", leave=False)


def load_inputs(bench_paths=(), ablation_paths=(), method: str = "t", min_effect: float | None = None,
                correction: str = "holm") -> Inputs:
    """Every input file read once into the frames the sections draw from."""
    bench = load_bench(bench_paths) if bench_paths else None
    scaling = None
    if bench is not None and bench["world_size"].notna().any():
        # The data-parallel scaling cases are their own section; the rest is the single-process grid.
        scaling = bench[bench["world_size"].notna()]
        bench = bench[bench["world_size"].isna()]
        bench = None if bench.empty else bench
    tta = None
    if bench is not None and is_tta(bench).any():  # time to accuracy: a section of its own (reports.sections.tta)
        tta, bench = bench[is_tta(bench)], bench[~is_tta(bench)]
        bench = None if bench.empty else bench
    bench_all = bench
    bench, machine = latest_runs(bench_all) if bench_all is not None else (None, None)
    abl = load_ablations(ablation_paths) if ablation_paths else None
    eff, powers = study_effects(abl, method, min_effect, correction)
    return Inputs(bench=bench, bench_all=bench_all, machine=machine, scaling=scaling, ablations=abl, effects=eff,
                  powers=powers, bench_inputs=len(bench_paths), ablation_inputs=len(ablation_paths), tta=tta)
