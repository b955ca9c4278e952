"""Readable numbers for benchmark tables: binary bytes, SI FLOP/s, x ratios; never scientific notation."""

import math

import pytest

from reports.format import bytes_h, flops_h, number_h, percent_h, ratio_interval_h, seconds_h


@pytest.mark.parametrize("func,value,text", [
    (bytes_h, 1536, "1.50 KiB"), (bytes_h, 3.2e9, "2.98 GiB"), (bytes_h, 200 * 2 ** 20, "200 MiB"), (bytes_h, 12, "12 B"),
    (flops_h, 3.29e11, "329 GFLOP/s"), (flops_h, 2.176e12, "2.18 TFLOP/s"),
    (seconds_h, 0.0123, "12.3 ms"), (seconds_h, 2.5, "2.50 s"), (number_h, 12345.6, "12,346"),
    (percent_h, 0.0215, "2.1%"), (percent_h, 2.26e-5, "0.0023%"), (percent_h, 0.0, "0.0%"), (bytes_h, math.nan, "—"), (flops_h, None, "—"),
])
def test_readable(func, value, text):
    assert func(value) == text and "e+" not in func(value)


def test_ratio_with_interval():
    assert ratio_interval_h(1.234, 1.1, 1.37) == "1.23x [1.10x, 1.37x]"
    assert ratio_interval_h(1.234, math.nan, math.nan) == "1.23x"
