"""pyproject.toml as setuptools reads it: no deprecation warnings on install."""

import warnings
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_metadata_builds_without_warnings():
    pytest.importorskip("setuptools", minversion="77")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    messages = [str(w.message) for w in caught if "licen" in str(w.message).lower()]
    assert not messages, messages
    assert dist.metadata.license_expression == "MIT"
    # An isolated build must fetch a setuptools that reads the SPDX string (77 is the first).
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in requires
