"""Forward, backward and training-step throughput and memory of VGG, one benchmark per `BenchCase`."""

from __future__ import annotations

import pytest

from . import profiling, session
from .cases import BenchCase
from .memory_guard import predict
from .memory_guard import skip_reason as memory_skip_reason
from .runner import Step, make_model, measure, skip_oom, warm_up
from .sampling import Sample, SamplingRule, record_rounds, sample
from .session import note_unstable


def _model(case: BenchCase, cache: dict):
    key = (case.implementation, case.arch, case.width, case.image_size, case.device, case.channels_last)
    if key not in cache:
        cache.clear()  # one network in memory at a time
        cache[key] = make_model(case)
    return cache[key]


def test_vgg(benchmark, case: BenchCase, peak_flops, model_cache, rule: SamplingRule, memory_limit, request):
    prediction = predict(case)
    reason = case.skip_reason() or memory_skip_reason(case, memory_limit, prediction)
    if reason:
        pytest.skip(reason)
    benchmark.group = case.group
    try:
        step = Step(case, _model(case, model_cache))

        def timed() -> Sample | None:
            if benchmark.disabled:  # --benchmark-disable: run the step once, untimed, and record no timing
                step()
                return None
            warm_up(step)
            result = sample(step, rule)
            record_rounds(benchmark, result.times)
            return result

        info = measure(case, step, timed, peak_flops(case.device, case.dtype))
        if request.config.stash[session.PROFILE].enabled:   # --vgg-profile: per-layer rows beside the timing
            info.update(profiling.profile_case(request.config, case, step, peak_flops(case.device, case.dtype),
                                               info))
    except Exception as err:
        skip_oom(err, case, model_cache)
    info["predicted_peak_bytes"] = prediction.step_bytes        # beside the measured peak_memory_bytes
    info["predicted_resident_bytes"] = prediction.resident_bytes
    benchmark.extra_info.update(info)
    if info.get("unstable"):
        note_unstable(request.config, case.id, info["unstable_reason"])
