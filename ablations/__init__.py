"""Declarative ablation studies over VGG design choices: TOML in, one JSON record per finished run out."""

from .study import RunSpec, Study, StudyError, expand, load_study

__all__ = ["RunSpec", "Study", "StudyError", "expand", "load_study"]
