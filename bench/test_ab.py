"""With --vgg-ab: vggcore and torchvision timed step by step in alternation, a ratio free of machine drift.

    pytest bench --benchmark-only --vgg-ab --vgg-archs A --vgg-batch-sizes 8 --vgg-modes forward,train_step
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest

from .cases import BenchCase
from .runner import Step, make_model
from .memory_guard import Prediction, predict
from .memory_guard import skip_reason as memory_skip_reason
from .test_vgg import calibrate, skip_oom


def test_vggcore_vs_torchvision_interleaved(benchmark, ab_case: BenchCase, model_cache, max_time, memory_limit):
    """One round = one vggcore step and one torchvision step, the order alternating every round; each step is
    timed on its own. Both implementations see the same machine state, so their ratio is drift-free."""
    twin = dataclasses.replace(ab_case, implementation="torchvision")
    one = predict(ab_case)   # both networks and both inputs are held at once; steps run one at a time
    both = Prediction(2 * one.resident_bytes, one.step_bytes)
    reason = twin.skip_reason() or ab_case.skip_reason() or memory_skip_reason(ab_case, memory_limit, both)
    if reason:
        pytest.skip(reason)
    benchmark.group = ab_case.group + " interleaved"
    model_cache.clear()
    try:
        steps = {"vggcore": Step(ab_case, make_model(ab_case)), "torchvision": Step(twin, make_model(twin))}
        rounds = min(calibrate(steps["vggcore"], max_time / 2)[0], calibrate(steps["torchvision"], max_time / 2)[0])
        times: dict[str, list[float]] = {"vggcore": [], "torchvision": []}
        flip = [False]

        def pair() -> None:
            order = ["torchvision", "vggcore"] if flip[0] else ["vggcore", "torchvision"]
            flip[0] = not flip[0]
            for name in order:
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)

        benchmark.pedantic(pair, rounds=rounds, warmup_rounds=1, iterations=1)
    except Exception as err:
        skip_oom(err, ab_case, model_cache)
    # the warm-up round is the first entry of each list
    medians = {name: statistics.median(t[1:] or t) for name, t in times.items()}
    benchmark.extra_info.update({
        **dataclasses.asdict(ab_case), "implementation": "vggcore/torchvision", "rounds": rounds,
        "vggcore_median_s": medians["vggcore"], "torchvision_median_s": medians["torchvision"],
        "vggcore_over_torchvision_speed": medians["torchvision"] / medians["vggcore"]})
