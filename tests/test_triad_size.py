"""VGGBENCH_TRIAD_BYTES: a smaller STREAM triad for quick runs (the documented-commands walk), said as such.

The default triad follows STREAM's rule (each array at least 4x the last-level cache): on a machine whose sysfs
reports a 480 MiB L3 that is 3 arrays of 1.9 GiB, about 25 s per triad, and a profile measures one or two.
"""

from __future__ import annotations

import pytest

from vggcore.errors import UserError
from vggcore.profile.roofs import TRIAD_BYTES_ENV, default_numel, stream_triad


def test_the_variable_sets_the_array_size_and_the_figures_say_so(monkeypatch):
    monkeypatch.setenv(TRIAD_BYTES_ENV, "4M")
    numel, cache = default_numel("cpu", "fp32")
    assert numel * 4 == 4 * 2 ** 20
    triad = stream_triad("cpu", "bf16", repeats=1)
    assert triad.array_bytes == 4 * 2 ** 20 and triad.numel == 2 * 2 ** 20
    method = triad.as_dict()["bandwidth_method"]
    assert TRIAD_BYTES_ENV in method and "STREAM's rule" in method


def test_unset_or_empty_keeps_streams_rule(monkeypatch):
    monkeypatch.setenv(TRIAD_BYTES_ENV, "")
    numel, cache = default_numel("cpu", "fp32")
    assert numel * 4 >= 64 * 2 ** 20 and (cache is None or numel * 4 >= 4 * cache)
    assert TRIAD_BYTES_ENV not in stream_triad("cpu", "fp32", numel=1024, repeats=1).as_dict()["bandwidth_method"]


@pytest.mark.parametrize("raw", ["0", "-5M", "lots", "1.5G"])
def test_a_bad_value_is_a_user_error_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(TRIAD_BYTES_ENV, raw)
    with pytest.raises(UserError, match=TRIAD_BYTES_ENV):
        default_numel("cpu", "fp32")
