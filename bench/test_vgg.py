"""Forward, backward and training-step throughput and memory of VGG, one benchmark per `BenchCase`."""

from __future__ import annotations

import time

import pytest

from vggcore.measure import is_out_of_memory

from .cases import BenchCase
from .conftest import free_memory
from .memory_guard import predict
from .memory_guard import skip_reason as memory_skip_reason
from .runner import Step, make_model, measure

MIN_ROUNDS, MAX_ROUNDS = 3, 50


def _model(case: BenchCase, cache: dict):
    key = (case.implementation, case.arch, case.width, case.image_size, case.device, case.channels_last)
    if key not in cache:
        cache.clear()  # one network in memory at a time
        cache[key] = make_model(case)
    return cache[key]


def calibrate(step: Step, max_time: float) -> tuple[int, float]:
    """Two untimed calls (the first compiles and allocates gradients and optimizer state); the second sizes
    the rounds so the case takes about `max_time` seconds."""
    step()
    start = time.perf_counter()
    step()
    estimate = time.perf_counter() - start
    return max(MIN_ROUNDS, min(MAX_ROUNDS, int(max_time / max(estimate, 1e-6)))), estimate


def skip_oom(err: Exception, case: BenchCase, cache: dict) -> None:
    if not is_out_of_memory(err):
        raise err
    free_memory(cache)
    pytest.skip(f"out of memory on {case.device} at batch {case.batch_size}: {str(err).splitlines()[0]}")


def test_vgg(benchmark, case: BenchCase, peak_flops, model_cache, max_time, memory_limit):
    prediction = predict(case)
    reason = case.skip_reason() or memory_skip_reason(case, memory_limit, prediction)
    if reason:
        pytest.skip(reason)
    benchmark.group = case.group
    try:
        step = Step(case, _model(case, model_cache))
        rounds, estimate = calibrate(step, max_time)

        def timed() -> float:
            benchmark.pedantic(step, rounds=rounds, warmup_rounds=1, iterations=1)
            if benchmark.stats is None:  # --benchmark-disable: the step ran once, untimed
                return estimate
            return benchmark.stats.stats.median

        info = measure(case, step, timed, peak_flops(case.device, case.dtype))
    except Exception as err:
        skip_oom(err, case, model_cache)
    info["rounds"] = rounds
    info["predicted_peak_bytes"] = prediction.step_bytes        # beside the measured peak_memory_bytes
    info["predicted_resident_bytes"] = prediction.resident_bytes
    benchmark.extra_info.update(info)
