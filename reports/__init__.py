"""Reports: load benchmark and ablation results into tidy frames, compute statistics, plot, render."""

from .load import ReportInputError, load_ablations, load_bench
from .stats import effects, summarize

__all__ = ["ReportInputError", "effects", "load_ablations", "load_bench", "summarize"]
