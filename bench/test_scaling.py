"""With --vgg-world-sizes: images/s of the data-parallel training step at each world size, per-rank batch fixed.

    pytest bench --benchmark-only --vgg-world-sizes 1,2,4,8 --vgg-archs A --vgg-image-size 224

Rounds are sampled as for the single-process grid (`bench.sampling`: at least 6, until the median is known to
--vgg-precision or --vgg-max-time runs out). Records `world_size`, global `images_per_s`, `speedup` and
`scaling_efficiency` = images_per_s(N) / (N x images_per_s(1)), the latter two when world size 1 ran in the same
session.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from vggcore.device import device_name

from .runner import warm_up
from .sampling import SamplingRule, record_rounds, sample
from .scaling import Group, ScalingCase
from .session import note_unstable


@pytest.fixture(scope="session")
def world_one() -> dict:
    """images_per_s at world size 1 per case, for the efficiency of the larger worlds."""
    return {}


def test_data_parallel_scaling(benchmark, scaling_case: ScalingCase, world_one, rule: SamplingRule, request):
    case = scaling_case
    reason = case.skip_reason()
    if reason:
        pytest.skip(reason)
    benchmark.group = case.group
    group = Group(case)
    try:
        if benchmark.disabled:  # --benchmark-disable: one untimed step, and no figure that poses as a timing
            group()
            result = None
        else:
            warm_up(group)
            result = sample(group, rule)
            record_rounds(benchmark, result.times)
    finally:
        group.close()
    info = {**asdict(case), "implementation": "vggcore", "device_name": device_name(case.device),
            "backend": group.info[0]["backend"], "threads_per_rank": group.info[0]["threads"],
            "threads": group.info[0]["threads"], "torch_version": torch.__version__, "timed": result is not None}
    if result is not None:
        images_per_s = case.world_size * case.batch_size / result.median
        if case.world_size == 1:
            world_one[case.baseline_key] = images_per_s
        base = world_one.get(case.baseline_key)
        info.update({
            "images_per_s": round(images_per_s, 3), "per_rank_images_per_s": round(images_per_s / case.world_size, 3),
            "speedup": round(images_per_s / base, 4) if base else None,
            "scaling_efficiency": round(images_per_s / (case.world_size * base), 4) if base else None,
            "rounds": len(result.times), **result.extra_info()})
        if result.unstable:
            note_unstable(request.config, case.id, info["unstable_reason"])
    benchmark.extra_info.update(info)
