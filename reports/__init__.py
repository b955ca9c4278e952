"""Reports: load benchmark and ablation results into tidy frames, apply the statistics (`ablations.stats`), plot,
render. The names below are imported on first use, so `vggbench report --help` imports no pandas."""

import importlib

PUBLIC = {"ReportInputError": "reports.load", "load_ablations": "reports.load", "load_bench": "reports.load",
          "effects": "ablations.stats", "summarize": "ablations.stats"}
__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
