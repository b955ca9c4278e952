"""With --vgg-ab: a case and its twin timed step by step in alternation, a ratio free of machine drift.

    pytest bench --benchmark-only --vgg-ab --vgg-archs A --vgg-batch-sizes 8 --vgg-modes forward,train_step
    pytest bench --benchmark-only --vgg-ab-against dtype=bf16,channels_last=on --vgg-archs A --vgg-modes forward

The twin is torchvision's VGG by default, or the same case with the `--vgg-ab-against` settings. Sampling stops
when the median of the per-round ratios is known to --vgg-precision or --vgg-max-time runs out.
"""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from .ab import describe, twin
from .cases import BenchCase
from .memory_guard import Prediction, predict
from .memory_guard import skip_reason as memory_skip_reason
from .runner import Step, make_model, skip_oom, warm_up
from .sampling import SamplingRule, ratio_sample, record_rounds, sample_pairs, summarize
from .session import note_ab, note_unstable


def test_ab_interleaved(benchmark, ab_case: BenchCase, model_cache, rule: SamplingRule, memory_limit, ab_against,
                        request):
    """One round = one A step and one B step, the order alternating every round; each step is timed on its own.
    Both sides see the same machine state, so the ratio of their times is drift-free."""
    against = ab_against
    other = twin(ab_case, against)
    one = predict(ab_case)   # both networks and both inputs are held at once; steps run one at a time
    both = Prediction(2 * one.resident_bytes, one.step_bytes)
    reason = other.skip_reason() or ab_case.skip_reason() or memory_skip_reason(ab_case, memory_limit, both)
    if reason:
        pytest.skip(reason)
    benchmark.group = ab_case.group + f" A/B against {describe(against)}"
    model_cache.clear()
    try:
        steps = (Step(ab_case, make_model(ab_case)), Step(other, make_model(other)))
        if benchmark.disabled:
            steps[0](), steps[1]()
            return
        warm_up(steps[0])
        warm_up(steps[1])
        times_a, times_b, stop = sample_pairs(*steps, rule)
        record_rounds(benchmark, [a + b for a, b in zip(times_a, times_b)])
    except Exception as err:
        skip_oom(err, ab_case, model_cache)
    ratio = ratio_sample(times_a, times_b, rule.precision)
    info = {**dataclasses.asdict(ab_case), "against": describe(against), "rounds": len(times_a),
            "stop_reason": stop, "a_median_s": statistics.median(times_a), "b_median_s": statistics.median(times_b),
            "a_round_times": times_a, "b_round_times": times_b,
            # the speed of A over B: B's time over A's, the median of per-round ratios and its 95% interval
            "a_over_b_speed": ratio["ratio"], "a_over_b_speed_low": ratio["ratio_low"],
            "a_over_b_speed_high": ratio["ratio_high"], "ratio_rel_half_width": ratio["ratio_rel_half_width"]}
    reasons = [f"A: {r}" for r in summarize(times_a, rule.precision).reasons if "interval" not in r]
    reasons += [f"B: {r}" for r in summarize(times_b, rule.precision).reasons if "interval" not in r]
    if ratio["ratio_unstable"]:
        reasons.append(f"the ratio's 95% interval is +-{ratio['ratio_rel_half_width']:.1%}, wider than the "
                       f"+-{rule.precision:.1%} target")
    info.update(unstable=bool(reasons), unstable_reason="; ".join(reasons))
    if against == {"implementation": "torchvision"}:  # the names this comparison had before --vgg-ab-against
        info.update(implementation="vggcore/torchvision", vggcore_median_s=info["a_median_s"],
                    torchvision_median_s=info["b_median_s"], vggcore_over_torchvision_speed=ratio["ratio"])
    benchmark.extra_info.update(info)
    note_ab(request.config, request.node.callspec.id, info)   # the terminal summary shows the ratio
    if reasons:
        note_unstable(request.config, request.node.callspec.id, info["unstable_reason"])
