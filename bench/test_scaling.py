"""With --vgg-world-sizes: images/s of the data-parallel training step at each world size, per-rank batch fixed.

    pytest bench --benchmark-only --vgg-world-sizes 1,2,4,8 --vgg-archs A --vgg-image-size 224

Records `world_size`, global `images_per_s`, `speedup` and `scaling_efficiency` = images_per_s(N) /
(N x images_per_s(1)), the latter two when world size 1 ran in the same session.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import pytest
import torch

from vggcore.measure import device_name

from .scaling import Group, ScalingCase

MIN_ROUNDS, MAX_ROUNDS = 3, 50


@pytest.fixture(scope="session")
def world_one() -> dict:
    """images_per_s at world size 1 per case, for the efficiency of the larger worlds."""
    return {}


def test_data_parallel_scaling(benchmark, scaling_case: ScalingCase, world_one, max_time):
    case = scaling_case
    reason = case.skip_reason()
    if reason:
        pytest.skip(reason)
    benchmark.group = case.group
    group = Group(case)
    try:
        group()
        start = time.perf_counter()
        group()
        estimate = time.perf_counter() - start
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(max_time / max(estimate, 1e-6))))
        benchmark.pedantic(group, rounds=rounds, warmup_rounds=1, iterations=1)
        median = benchmark.stats.stats.median if benchmark.stats is not None else estimate
    finally:
        group.close()
    images_per_s = case.world_size * case.batch_size / median
    if case.world_size == 1:
        world_one[case.baseline_key] = images_per_s
    base = world_one.get(case.baseline_key)
    benchmark.extra_info.update({
        **asdict(case), "implementation": "vggcore", "device_name": device_name(case.device),
        "images_per_s": round(images_per_s, 3), "per_rank_images_per_s": round(images_per_s / case.world_size, 3),
        "speedup": round(images_per_s / base, 4) if base else None,
        "scaling_efficiency": round(images_per_s / (case.world_size * base), 4) if base else None,
        "backend": group.info[0]["backend"], "threads_per_rank": group.info[0]["threads"],
        "threads": group.info[0]["threads"], "torch_version": torch.__version__, "rounds": rounds})
