"""The roofline's parts: analytic FLOPs against torch's counter, the traffic model, the bound, the bandwidth
measurement and the median interval the profile uses."""

import math
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from vggcore import build
from vggcore.intervals import median_interval, median_rank_interval
from vggcore.profile.profiler import install
from vggcore.profile.plan import Seen, optimizer_traffic, plan_rows
from vggcore.profile.roofline import LayerShape, bound, cast_bytes, flops, layer_bytes, optimizer_bytes
from vggcore.profile.roofs import default_numel, last_level_cache_bytes, stream_triad

FORWARD_OPS = {"aten.convolution", "aten.addmm"}
BACKWARD_OPS = {"aten.convolution_backward", "aten.mm"}


def step_flops(model, x, y, dtype):
    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
    return counter.get_flop_counts()


@pytest.mark.parametrize("arch,batch_norm,dtype", [("A", False, "fp32"), ("A-LRN", True, "fp32"), ("C", False, "bf16")])
def test_row_flops_equal_flop_counter_per_module(arch, batch_norm, dtype):
    model = build(arch, width=0.125, image_size=32, num_classes=10, batch_norm=batch_norm).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    counts = step_flops(model, x, y, dtype)
    plans = {p.key: p for p in plan_rows(model, "forward_backward", "cpu", dtype, 2, Seen(), None, set())}
    checked = 0
    for name, module in model.named_modules():
        if not name or any(True for _ in module.children()):
            continue
        ops = counts.get(f"VGG.{name}", {})
        forward = sum(n for op, n in ops.items() if str(op) in FORWARD_OPS)
        assert plans[(name, "forward", "op")].flops == forward, name
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            # torch's tracker attributes backward matmuls reliably only to the layer that owns them
            backward = sum(n for op, n in ops.items() if str(op) in BACKWARD_OPS)
            assert plans[(name, "backward", "op")].flops == backward > 0, name
            checked += 1
        else:
            assert plans[(name, "backward", "op")].flops == 0
    assert checked == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    total = counts["Global"]
    for pass_, ops in (("forward", FORWARD_OPS), ("backward", BACKWARD_OPS)):
        assert sum(p.flops for k, p in plans.items() if k[1] == pass_) == sum(
            n for op, n in total.items() if str(op) in ops)
    first = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert plans[(first, "backward", "op")].flops == plans[(first, "forward", "op")].flops  # no input gradient


class Casts(TorchDispatchMode):
    """Bytes of every aten._to_copy (read + written), by the module whose forward was running (None: backward)."""

    def __init__(self):
        super().__init__()
        self.current, self.bytes = [None], {}

    def mark(self, label):
        mode = self

        class Range:
            def __enter__(self):
                mode.current.append(label.removeprefix("layer/"))

            def __exit__(self, *exc):
                mode.current.pop()
        return Range()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and args[0].dim() > 0:   # 0-dim: a scalar, no autocast cast
            key = self.current[-1]
            self.bytes[key] = self.bytes.get(key, 0) + args[0].nbytes + out.nbytes
        return out


def test_cast_bytes_equal_the_casts_autocast_makes():
    model = build("A", width=0.125, image_size=32, num_classes=10, batch_norm=True).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    seen, casts = Seen(), Casts()
    handles = install(model, casts.mark, seen)
    with casts:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
            with casts.mark("loss"):
                loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
    for h in handles:
        h.remove()
    plans = plan_rows(model, "forward_backward", "cpu", "bf16", 2, seen, None, set())
    forward = {p.key[0]: p.bytes for p in plans if p.key[1:] == ("forward", "cast")}
    measured = {k: v for k, v in casts.bytes.items() if k is not None and k != "model"}
    assert forward == measured
    assert sum(p.bytes for p in plans if p.key[1:] == ("backward", "cast")) == casts.bytes[None]
    assert seen.outputs["features.0"][1] == torch.bfloat16 and seen.inputs["features.0"][1] == torch.float32


def shape(kind, **kw):
    base = dict(kind=kind, macs=0, in_numel=0, out_numel=0, params=0, in_size=4, out_size=4, compute_size=4,
                input_grad=True)
    return LayerShape(**{**base, **kw})


def test_traffic_model_by_hand():
    # conv 3 -> 8 channels, 3x3, on 2 x 3 x 32 x 32 fp32: X 24,576 B, W (8*3*9 + 8) * 4 = 896 B, Y 65,536 B
    conv = shape("conv3x3", macs=2 * 8 * 32 * 32 * 27, in_numel=2 * 3 * 32 * 32, out_numel=2 * 8 * 32 * 32,
                 params=8 * 27 + 8, input_grad=False)
    assert layer_bytes(conv, "forward", True, 4) == 24576 + 896 + 65536
    assert layer_bytes(conv, "backward", True, 4) == 65536 + 24576 + 896 + 896      # no dX for the first conv
    assert flops(conv, "forward") == flops(conv, "backward") == 2 * conv.macs
    deeper = shape("conv3x3", macs=10, params=1)
    assert flops(deeper, "backward") == 2 * flops(deeper, "forward")
    relu = shape("relu", in_numel=100, out_numel=100, in_size=2, out_size=2)
    assert layer_bytes(relu, "forward", True, 2) == 400 and layer_bytes(relu, "backward", True, 2) == 600
    pool = shape("maxpool", in_numel=400, out_numel=100)
    assert layer_bytes(pool, "forward", True, 4) == 1600 + 400 + 800
    assert layer_bytes(pool, "forward", False, 4) == 2000                             # no indices in inference
    drop = shape("dropout", in_numel=10, out_numel=10)
    assert layer_bytes(drop, "forward", False, 4) == 0 and layer_bytes(drop, "forward", True, 1) == 90
    bf16_linear = shape("linear", in_numel=6, out_numel=4, params=12, in_size=2, out_size=2, compute_size=2)
    assert cast_bytes(bf16_linear, "forward") == cast_bytes(bf16_linear, "backward") == 12 * 6
    assert cast_bytes(shape("linear", params=12), "forward") == 0                    # fp32: no autocast
    with pytest.raises(ValueError, match="unknown layer kind 'softmax'"):
        layer_bytes(shape("softmax"), "forward", True, 4)


def test_optimizer_traffic_counts_sgd_momentum_state():
    model = build("A", width=0.125, image_size=32, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2])).backward()
    optimizer.step()
    n = sum(p.numel() for p in model.parameters())
    assert optimizer_traffic(optimizer) == optimizer_bytes(4 * n, 4 * n, 4 * n) == 20 * n


def test_bound_compute_memory_and_empty():
    compute = bound(1e9, 1e3, peak_flops=1e12, bandwidth=1e9)          # 1e6 FLOP/B: compute-bound
    assert compute.limit == "compute" and compute.attainable_flops == 1e12 and compute.time_s == 1e-3
    memory = bound(1e6, 1e6, peak_flops=1e12, bandwidth=1e9)           # 1 FLOP/B: memory-bound
    assert memory.limit == "memory" and memory.attainable_flops == 1e9 and memory.time_s == 1e-3
    copy = bound(0, 1e6, peak_flops=1e12, bandwidth=1e9)               # no FLOPs: the bandwidth bound in time
    assert copy.intensity == 0 and copy.time_s == 1e-3 and copy.limit == "memory"
    empty = bound(0, 0, peak_flops=1e12, bandwidth=1e9)
    assert empty.limit == "none" and empty.time_s == 0 and empty.intensity is None
    with pytest.raises(ValueError, match="roofs must be positive"):
        bound(1, 1, peak_flops=0, bandwidth=1)


def test_stream_triad_counts_three_arrays(tick_clock):
    triad = stream_triad("cpu", "fp32", numel=1000, repeats=3, clock=tick_clock(0.5))
    assert triad.array_bytes == 4000 and triad.bytes_per_triad == 12000
    assert triad.best_s == 0.5 and triad.bytes_per_s == 24000
    half = stream_triad("cpu", "bf16", numel=1000, repeats=1, clock=tick_clock(0.5))
    assert half.bytes_per_triad == 6000


def direct_triad_bytes_per_s(n):
    a, b, c = torch.empty(n), torch.ones(n), torch.full((n,), 2.0)
    torch.add(b, c, alpha=3.0, out=a)
    assert a[0].item() == 7.0
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        best = min(best, time.perf_counter() - start)
    return 3 * n * 4 / best


def test_stream_triad_agrees_with_a_direct_timing():
    """Loose (a factor of 4) and up to three tries: the machine is shared, and this catches wrong units or an
    untimed kernel, not a few percent."""
    n = 4 * 2 ** 20                                   # 16 MiB per fp32 array
    pairs = []
    for _ in range(3):
        pairs.append((stream_triad("cpu", "fp32", numel=n, repeats=5).bytes_per_s, direct_triad_bytes_per_s(n)))
        if pairs[-1][1] / 4 < pairs[-1][0] < pairs[-1][1] * 4:
            break
    else:
        pytest.fail(f"triad vs direct bytes/s, three tries: {pairs}")


def test_default_arrays_are_beyond_the_last_level_cache():
    numel, cache = default_numel("cpu", "fp32")
    assert cache == last_level_cache_bytes("cpu")
    if cache:
        assert numel * 4 >= 4 * cache
    with pytest.raises(ValueError, match="repeats"):
        stream_triad("cpu", "fp32", numel=10, repeats=0)


def test_median_interval_ranks_and_coverage():
    assert median_rank_interval(6) == (0, 5, 1 - 2 / 64)
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]) == (1.0, 6.0)
    lo, hi, coverage = median_rank_interval(20)
    assert (lo, hi) == (5, 14) and coverage >= 0.95
    with pytest.raises(ValueError):
        median_rank_interval(0)


@pytest.mark.parametrize("n", [6, 9, 20])
def test_median_interval_covers_at_its_nominal_rate(n):
    """Seeded simulation over skewed (log-normal) rounds: the interval holds the true median (1.0) at least as
    often as its exact coverage says, within the simulation's own error."""
    rng = np.random.default_rng(17)
    samples = np.sort(np.exp(rng.normal(0, 0.3, size=(4000, n))), axis=1)
    lo, hi, coverage = median_rank_interval(n)
    hits = np.mean((samples[:, lo] <= 1.0) & (samples[:, hi] >= 1.0))
    assert hits >= coverage - 3 * math.sqrt(coverage * (1 - coverage) / 4000)
    assert coverage >= 0.95
