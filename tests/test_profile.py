"""The per-layer profile: attribution rules on hand-made events, the totals on a stub source and clock, the rows of
real CPU profiles of a tiny VGG, and the errors a user gets."""

import json
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

from vggcore import build
from vggcore.model.summary import summary
from vggcore.errors import UserError
from vggcore.profile.profiler import MODES, Session, no_mark, op_events, profile_step, unprofilable_reason
from vggcore.profile.events import EVALUATE, OpEvent, attribute
from vggcore.profile.rows import ProfileError
from vggcore.profile.roofs import Roofs

ROOFS = Roofs(device="cpu", dtype="fp32", peak_flops=1e11, bandwidth=1e10)   # made up: no timing in these tests
MAIN = 1


def ev(name, start, end, seq=-1, thread=MAIN, fwd_thread=0, device=0.0):
    return OpEvent(name=name, thread=thread, start=start, end=end, seq=seq, fwd_thread=fwd_thread, device=device)


def node(name, start, end, seq, thread=MAIN, device=0.0):
    """A backward node as the engine records it: the evaluate_function range and the node itself inside."""
    inset = (end - start) / 10
    return [ev(EVALUATE + name, start, end, seq, thread, MAIN, device),
            ev(name, start + inset, end - inset, seq, thread)]


def hand_made_step(thread=MAIN, device=False):
    """One train step of a two-layer net, times in seconds; device times are a tenth of the host's."""
    d = (lambda t: t / 10) if device else (lambda t: 0.0)
    fwd = [
        ev("vggcore::round", 0, 100),
        ev("vggcore::zero_grad", 1, 2),
        ev("vggcore::layer/conv", 3, 20),
        ev("aten::conv2d", 4, 19, seq=10, device=d(12)),
        ev("aten::to", 5, 7, seq=10, device=d(2)),          # autocast's cast of the weight: creates node 10
        ev("aten::_to_copy", 5.5, 6.5),
        ev("aten::conv2d", 8, 18, seq=11),                   # the conv itself, node 11 (kernel on the outer op)
        ev("aten::empty", 19.1, 19.6, seq=12),               # peeks 12 but creates no node ...
        ev("vggcore::layer/relu", 21, 24),
        ev("aten::relu_", 22, 23, seq=12, device=d(1)),      # ... the relu does, and starts later
        ev("vggcore::loss", 25, 30),
        ev("aten::cross_entropy_loss", 26, 29, seq=13, device=d(3)),
        ev("vggcore::backward", 31, 80),
        ev("aten::ones_like", 32, 33, device=d(1)),          # the gradient seed: nobody's
        ev("vggcore::optimizer", 81, 95, device=d(1)),       # a kernel correlated to the range itself
        ev("Optimizer.step#SGD.step", 82, 94, device=d(14)),
        ev("aten::mul_", 83, 84),
        ev("aten::to", 83.2, 83.4),                          # a scalar's conversion deep in an op: no cast
    ]
    bwd = [*node("CrossEntropyBackward", 34, 38, 13, thread, d(4)), *node("ReluBackward0", 40, 42, 12, thread, d(2)),
           *node("ConvolutionBackward0", 43, 63, 11, thread, d(20)),
           *node("ToCopyBackward0", 64, 67, 10, thread, d(3)),
           *node("torch::autograd::AccumulateGrad", 68, 69, -1, thread, d(1)),
           *node("UnknownBackward0", 70, 71, 99, thread, d(1))]   # its forward op is not in this round
    return fwd + bwd


def test_attribution_rules_on_host_time():
    times = attribute(hand_made_step(), device_timing=False)
    assert times.duration == 100
    assert times.rows == pytest.approx({
        ("conv", "forward", "op"): 15 - 2 + 0.5, ("conv", "forward", "cast"): 2, ("relu", "forward", "op"): 1,
        ("loss", "forward", "op"): 3, ("loss", "backward", "op"): 4,
        ("relu", "backward", "op"): 2,              # node 12 is the relu's: the last forward op numbered 12
        ("conv", "backward", "op"): 20 + 1,         # AccumulateGrad follows the conv weight's ToCopyBackward0
        ("conv", "backward", "cast"): 3, ("optimizer", "update", "op"): 12})
    # zero_grad has no op (Python only); the gradient seed and the node without a forward op are nobody's
    assert times.attributed == pytest.approx(13.5 + 2 + 1 + 3 + 4 + 2 + 21 + 3 + 12)


def test_each_rows_ops_by_own_time_sum_to_the_row_and_name_the_kernel():
    times = attribute(hand_made_step(), device_timing=False)
    for key, seconds in times.rows.items():
        assert sum(times.ops[key].values()) == pytest.approx(seconds), key
    assert times.ops[("conv", "forward", "op")] == pytest.approx({"aten::conv2d": 3 + 10, "aten::empty": 0.5})
    assert times.ops[("conv", "forward", "cast")] == pytest.approx({"aten::to": 1, "aten::_to_copy": 1})
    backward = times.ops[("conv", "backward", "op")]
    assert max(backward, key=backward.get) == "ConvolutionBackward0" and backward["ConvolutionBackward0"] == 16
    assert times.ops[("optimizer", "update", "op")] == pytest.approx({"Optimizer.step#SGD.step": 12 - 1,
                                                                     "aten::mul_": 1 - 0.2, "aten::to": 0.2})
    device = attribute(hand_made_step(thread=2, device=True), device_timing=True)
    for key, seconds in device.rows.items():
        assert sum(device.ops[key].values()) == pytest.approx(seconds), key
    assert device.ops[("optimizer", "update", "op")] == pytest.approx({"vggcore::optimizer": 0.1,
                                                                      "Optimizer.step#SGD.step": 1.4})


def test_top_op_is_the_op_with_most_time_over_the_rounds():
    from vggcore.profile.rows import top_op

    assert top_op([{"a": 3.0, "b": 1.0}, {"b": 4.0}]) == ("b", pytest.approx(5 / 8))
    assert top_op([{}, {}]) == ("", None) and top_op([]) == ("", None)


def test_attribution_on_device_time_ignores_host_durations():
    """CUDA: kernels only; the backward nodes run on the engine's device thread, found by sequence number."""
    times = attribute(hand_made_step(thread=2, device=True), device_timing=True)
    assert times.rows == pytest.approx({
        ("conv", "forward", "op"): 1.2, ("conv", "forward", "cast"): 0.2, ("relu", "forward", "op"): 0.1,
        ("loss", "forward", "op"): 0.3, ("loss", "backward", "op"): 0.4, ("relu", "backward", "op"): 0.2,
        ("conv", "backward", "op"): 2.0 + 0.1, ("conv", "backward", "cast"): 0.3,
        ("optimizer", "update", "op"): 0.1 + 1.4})
    assert times.duration == 100


def test_attribution_needs_exactly_one_round():
    with pytest.raises(ValueError, match="expected one 'vggcore::round'"):
        attribute([ev("aten::relu", 0, 1)], device_timing=False)


def test_op_events_keep_kernels_and_drop_annotation_spans():
    kernel = SimpleNamespace(name="void at::native::conv_kernel", duration=30.0)
    span = SimpleNamespace(name="vggcore::layer/features.0", duration=500.0)      # a GPU user-annotation span
    torch_span = SimpleNamespace(name="Optimizer.step#SGD.step", duration=400.0)

    def fe(name, kernels, device_type=DeviceType.CPU, annotation=False):
        return SimpleNamespace(name=name, device_type=device_type, is_async=False, is_user_annotation=annotation,
                               thread=7, fwd_thread=None, sequence_nr=3, kernels=kernels,
                               time_range=SimpleNamespace(start=10.0, end=60.0))
    events = op_events([fe("vggcore::layer/features.0", [span], annotation=True),
                        fe("Optimizer.step#SGD.step", [torch_span, kernel], annotation=True),
                        fe("aten::conv2d", [kernel, kernel]), fe("void kernel", [], DeviceType.CUDA)])
    assert [e.name for e in events] == ["vggcore::layer/features.0", "Optimizer.step#SGD.step", "aten::conv2d"]
    assert [e.device for e in events] == pytest.approx([0.0, 30e-6, 60e-6])
    assert events[2].start == pytest.approx(10e-6) and events[2].end == pytest.approx(60e-6)
    assert events[2].fwd_thread == 0 and events[2].seq == 3


# ---------------------------------------------------------------------------------------- stub source and clock
class ReplaySource:
    """Hands out canned events, one list per profiled step, instead of profiling."""

    device_timing = False

    def __init__(self, rounds):
        self.rounds = list(rounds)

    @contextmanager
    def session(self):
        session = Session(mark=no_mark)
        yield session
        session.events = self.rounds.pop(0)


def canned_round(model, op_s, gap_s):
    """A train step in which every layer's forward op, backward node, the loss and the optimizer each take `op_s`
    and `gap_s` passes between them; returns (events, the round's duration, its attributed seconds)."""
    layers = list(summary(model, batch_size=2)["layer"])
    events, t, seq, attributed = [], 0.0, 100, 0.0

    def span(name):
        nonlocal t, attributed, seq
        t += gap_s
        out = [ev(f"vggcore::{name}", t, t + op_s + 2e-6), ev("aten::op", t + 1e-6, t + 1e-6 + op_s, seq=seq)]
        t += op_s + 2e-6
        attributed += op_s
        seq += 1
        return out
    for layer in layers:
        events += span(f"layer/{layer}") if layer != "flatten" else span("model")
    events += span("loss")
    for s in range(seq - 1, 99, -1):
        t += gap_s
        events += node("SomeBackward0", t, t + op_s, s)
        t += op_s
        attributed += op_s
    events += span("optimizer")
    t += gap_s
    return [ev("vggcore::round", 0, t), *events], t, attributed


@pytest.mark.parametrize("gap_s,tick_factor,reconciles,perturbs", [
    (1e-5, 1.0, True, False),      # rows are nearly all of the step, profiling costs nothing
    (1e-3, 1.0, False, False),     # much time between ops: the rows miss more than 10%
    (1e-5, 0.5, False, True),      # the plain step took half the profiled one: overhead 100%
])
def test_rows_sum_to_the_step_on_a_stub_source_and_clock(gap_s, tick_factor, reconciles, perturbs, tick_clock):
    model = build("A", width=0.125, image_size=32, num_classes=10)
    events, duration, attributed = canned_round(model, op_s=1e-3, gap_s=gap_s)
    prof = profile_step(model, "train_step", batch_size=2, rounds=2, warmup=0, roofs=ROOFS,
                        source=ReplaySource([events, events]), clock=tick_clock(duration * tick_factor))
    totals = prof.totals
    assert totals.step_s == pytest.approx(duration * tick_factor)
    assert totals.profiled_step_s == pytest.approx(duration)
    assert totals.attributed_s == pytest.approx(attributed)
    assert totals.unattributed_s == pytest.approx(duration - attributed)
    assert sum(r.time_s for r in prof.rows) == pytest.approx(duration)           # nothing hidden
    assert prof.rows[-1].layer == "unattributed"
    assert totals.reconciles is reconciles and totals.perturbs is perturbs
    # every op of the attributed rows, by own time: the canned aten::op of every row and the backward nodes
    assert sum(k.seconds for k in prof.kernels) == pytest.approx(attributed)
    assert {k.op for k in prof.kernels} == {"aten::op", "SomeBackward0", "autograd::engine::evaluate_function: "
                                                                         "SomeBackward0"}
    assert [r["op"] for r in prof.kernel_records(case="x")][0] == prof.kernels[0].op
    assert bool(totals.reasons) is not (reconciles and not perturbs)
    assert abs(totals.attributed_gap) <= 0.10 if reconciles else abs(totals.attributed_gap) > 0.10


# ---------------------------------------------------------------------------------------- real CPU profiles
@pytest.fixture(scope="module")
def train_profile():
    torch.manual_seed(0)
    model = build("A-LRN", width=0.125, image_size=32, num_classes=10, batch_norm=True)
    # batch 1 (BatchNorm still sees 2x2 positions per channel at the last block): bf16 convolutions are slow here
    return model, profile_step(model, "train_step", batch_size=1, dtype="bf16", rounds=2, warmup=1, roofs=ROOFS)


def test_rows_cover_every_module_in_order_forward_and_backward(train_profile):
    model, prof = train_profile
    layers = list(summary(model, batch_size=1)["layer"])
    ops = [(r.layer, r.pass_) for r in prof.rows if r.kind != "cast"]
    assert ops == ([("zero_grad", "update")] + [(n, "forward") for n in layers] + [("loss", "forward"),
                   ("loss", "backward")] + [(n, "backward") for n in reversed(layers)]
                   + [("optimizer", "update"), ("unattributed", "step")])
    kinds = {r.kind for r in prof.rows}
    assert {"conv3x3", "bn", "relu", "lrn", "maxpool", "linear", "dropout", "loss", "optimizer", "cast"} <= kinds
    weighted = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    casts = {(r.layer, r.pass_) for r in prof.rows if r.kind == "cast"}
    assert {(n, p) for n in weighted for p in ("forward", "backward")} | {("loss", "forward"), ("loss", "backward")} \
        <= casts
    by_key = {(r.layer, r.pass_, r.kind): r for r in prof.rows}
    for name in weighted:   # the backward is measured: every conv and linear backward node was found and timed
        backward = next(r for r in prof.rows if r.layer == name and r.pass_ == "backward" and r.kind != "cast")
        assert backward.time_s > 0 and len(backward.round_times_s) == 2 and backward.flops > 0
        assert by_key[(name, "backward", "cast")].time_s > 0
    assert all(r.time_s >= 0 and r.time_low_s <= r.time_s <= r.time_high_s for r in prof.rows[:-1])
    assert [r.order for r in prof.rows] == list(range(len(prof.rows)))


def test_rows_add_up_to_the_profiled_step(train_profile):
    _, prof = train_profile
    # with two rounds every median is a mean, so the row medians add up exactly
    assert sum(r.time_s for r in prof.rows) == pytest.approx(prof.totals.profiled_step_s)
    assert prof.totals.timing == "host" and prof.totals.rounds == 2
    assert prof.setting["optimizer"] == "SGD(foreach)" and prof.setting["dtype"] == "bf16"   # DEFAULT_SGD["cpu"]


def test_records_are_tidy_and_json_clean(train_profile):
    _, prof = train_profile
    records = prof.records(case="tiny")
    assert list(records[0])[:5] == ["case", "order", "layer_index", "layer", "kind"]
    assert "pass" in records[0] and "pass_" not in records[0]
    json.dumps(records, allow_nan=False)
    json.dumps(prof.record(case="tiny"), allow_nan=False, default=str)
    conv = next(r for r in records if r["kind"] == "conv3x3" and r["pass"] == "forward")
    assert conv["dtype"] == "bf16" and conv["intensity"] == conv["flops"] / conv["bytes"]
    assert conv["share_of_bound"] == pytest.approx(conv["bound_time_s"] / conv["time_s"])
    # the kernel that holds the row back has a name (oneDNN's or the slow fallback, whichever this CPU runs)
    assert "conv" in conv["top_op"] and conv["top_op"].startswith("aten::") and 0 < conv["top_op_share"] <= 1
    cast = next(r for r in records if r["kind"] == "cast" and r["pass"] == "forward")
    # one of the ops a cast is made of; which holds the most own time in so tiny a copy varies from run to run
    # (the allocation, empty_strided, did in one CI run)
    assert cast["top_op"] in ("aten::to", "aten::_to_copy", "aten::copy_", "aten::empty_strided")


def test_layer_filter_keeps_rows_and_totals(train_profile):
    _, prof = train_profile
    convs = prof.only(["conv3x3"])
    assert {r.kind for r in convs.rows} == {"conv3x3"} and convs.totals == prof.totals
    first = prof.only("features.0")
    assert {(r.kind, r.pass_) for r in first.rows} == {("conv3x3", "forward"), ("conv3x3", "backward"),
                                                       ("cast", "forward"), ("cast", "backward")}


def test_forward_only_profile():
    model = build("A", width=0.125, image_size=32, num_classes=10)
    prof = profile_step(model, "forward", batch_size=2, rounds=1, warmup=0, roofs=ROOFS, layers=["conv3x3", "relu"])
    assert {r.pass_ for r in prof.rows} == {"forward"}
    assert [r.layer for r in prof.rows if r.kind == "conv3x3"] == [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(r.kind in ("conv3x3", "relu") for r in prof.rows)


def test_forward_backward_profile_has_no_optimizer_row():
    model = build("A", width=0.125, image_size=32, num_classes=10)
    prof = profile_step(model, "forward_backward", batch_size=2, rounds=1, warmup=0, roofs=ROOFS)
    assert {r.layer for r in prof.rows} >= {"loss", "zero_grad", "unattributed"}
    assert "optimizer" not in {r.layer for r in prof.rows} and prof.setting["optimizer"] == ""
    assert not any(r.kind == "cast" for r in prof.rows)                     # fp32: autocast casts nothing
    assert {r.pass_ for r in prof.rows} == {"update", "forward", "backward", "step"}


# ---------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def tiny():
    return build("A", width=0.125, image_size=32, num_classes=10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers=["conv5x5"]), r"'conv5x5' is no layer or kind.*features\.0.*conv3x3"),
    (dict(layers=[]), "layer filter: empty"),
    (dict(mode="inference"), r"mode 'inference' cannot be profiled; modes: forward, forward_backward, train_step"),
    (dict(dtype="fp8"), r"dtype 'fp8' is unknown; dtypes: fp32, bf16, fp16"),
    (dict(dtype="fp16"), "fp16 autocast on CPU"),
    (dict(device="mps"), "no MPS device times"),
    (dict(rounds=0), "rounds must be at least 1"),
])
def test_bad_input_is_a_user_error(tiny, kwargs, match):
    kwargs = {"mode": "train_step", **kwargs}
    with pytest.raises(ProfileError, match=match) as err:
        profile_step(tiny, kwargs.pop("mode"), batch_size=2, roofs=ROOFS, source=ReplaySource([]), **kwargs)
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


def test_models_that_cannot_be_profiled(tiny):
    class Compiled(torch.nn.Module):   # what torch.compile returns keeps the eager model as _orig_mod (importing
        def __init__(self, model):       # dynamo for a real one costs ~2 s of CPU)
            super().__init__()
            self._orig_mod = model

    assert "torch.compile'd" in unprofilable_reason(Compiled(tiny), "train_step", "cpu")
    assert "need a vggcore VGG" in unprofilable_reason(torch.nn.Sequential(torch.nn.ReLU()), "forward", "cpu")
    assert unprofilable_reason(tiny, "forward", "cpu") is None
    assert set(MODES) == {"forward", "forward_backward", "train_step"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: layer times from kernel device time")
def test_cuda_profile_uses_device_time():
    model = build("A", width=0.125, image_size=32, num_classes=10)
    roofs = Roofs(device="cuda", dtype="bf16", peak_flops=1e14, bandwidth=1e12)
    prof = profile_step(model, "train_step", batch_size=2, device="cuda", dtype="bf16", rounds=2, roofs=roofs)
    assert prof.totals.timing == "device"
    rows = {(r.layer, r.pass_, r.kind): r for r in prof.rows}
    assert rows[("features.0", "forward", "conv3x3")].time_s > 0
    assert rows[("features.0", "backward", "conv3x3")].time_s > 0
    assert rows[("optimizer", "update", "optimizer")].time_s > 0
    # device rows never exceed the host's round: kernels inside a step take no longer than the step
    assert prof.totals.attributed_s <= prof.totals.profiled_step_s * 1.001
