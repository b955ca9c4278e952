"""The report's opening: the fastest setting per architecture, each study's effects ranked, the paper's Table 2."""

from __future__ import annotations

from ..bench_tables import fastest_display, fastest_with_speedup, paper_table2
from ..document import Report
from . import Inputs
from .studies import effects_display, expensive_text, method_text


def add(r: Report, inp: Inputs) -> None:
    r.add("h2", "Summary")
    # A/B cases alone (`pytest bench --vgg-ab ... -k test_ab`) have no throughput: their table is their section's
    if inp.bench is not None and inp.bench["images_per_s"].notna().any():
        r.add("h3", "Fastest setting per architecture")
        fastest = fastest_with_speedup(inp.bench)
        r.table("fastest_settings", fastest, display=fastest_display(fastest))
        r.add("text", "Speed-up: median step time of plain fp32 (same device, batch size and implementation) over "
                      "the fastest setting's, with a 95% interval from both cases' rounds and the between-run "
                      "noise model of `reports compare`.")
    if inp.effects:
        r.add("h3", "Effects, ranked (best first)")
        for study, eff in inp.effects.items():
            # the studies section's columns, ranked; the summary CSV keeps them (alpha labels the intervals' level)
            r.table(f"summary_{study}", effects_display(eff), study)
            r.add("text", method_text(eff))
            r.add("text", expensive_text(eff))
    r.add("h3", "Paper Table 2 beside vggcore")
    r.table("paper_table2", paper_table2())
    given = next((d for d in (inp.bench, inp.scaling, inp.tta) if d is not None), None)
    missing = [name for name, data in (("benchmark", given),
                                       ("ablation", inp.ablations)) if data is None]
    if missing:
        r.add("text", f"Not in this report: {' and '.join(missing)} results (none were given).")
