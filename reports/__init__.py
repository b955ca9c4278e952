"""Reports: load benchmark and ablation results into tidy frames, apply the statistics (`ablations.stats`), plot,
render."""

from ablations.stats import effects, summarize

from .load import ReportInputError, load_ablations, load_bench

__all__ = ["ReportInputError", "effects", "load_ablations", "load_bench", "summarize"]
