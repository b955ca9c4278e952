"""The rows a profile will have, planned before any time is known: their order and their analytic FLOPs and bytes.

FLOPs and bytes follow `vggcore.profile.roofline` (its docstring states the traffic model), from `vggcore.model.summary`'s shapes
and the dtypes the collector's hooks saw each module's tensors in (`Seen`: bf16 after an autocast conv, fp32 for
the image); without a sighting a tensor counts as fp32, which is exact outside autocast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import torch

from vggcore.device import DTYPES
from vggcore.model.network import VGG
from vggcore.profile.rows import CAST, RowPlan
from vggcore.profile.roofline import (
    FP32,
    LayerShape,
    cast_bytes,
    flops,
    layer_bytes,
    loss_bytes,
    loss_cast_bytes,
    optimizer_bytes,
)
from vggcore.model.summary import summary

DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


@dataclass
class Seen:
    """What the hooks saw of each module's tensors in a profiled step: (numel, dtype) in and out."""

    inputs: dict[str, tuple[int, torch.dtype]] = field(default_factory=dict)
    outputs: dict[str, tuple[int, torch.dtype]] = field(default_factory=dict)


def _size(seen: dict, name: str, fallback: torch.dtype) -> tuple[int, str]:
    dtype = seen[name][1] if name in seen else fallback
    return dtype.itemsize, DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def plan_rows(model: VGG, mode: str, device: str, dtype: str, batch_size: int, seen: Seen,
              optimizer: torch.optim.Optimizer | None, cast_keys: set[tuple[str, str]]) -> list[RowPlan]:
    """The rows of this step in the order it runs, with their FLOPs and bytes. A layer gets a cast row where the
    traffic model predicts casts or the profile measured cast time (`cast_keys`: (layer, pass))."""
    table = summary(model, batch_size=batch_size)
    training = mode != "forward"
    compute = DTYPES[dtype].itemsize if dtype != "fp32" else FP32
    numel = batch_size * prod(model.input_shape)
    in_dtype = torch.float32
    shapes: list[tuple[int, str, LayerShape, str]] = []
    params_before = 0
    for index, row in enumerate(table.itertuples(index=False)):
        out_numel = prod(row.output_shape)
        in_size, _ = _size(seen.inputs, row.layer, in_dtype)
        out_size, out_name = _size(seen.outputs, row.layer, seen.inputs.get(row.layer, (0, in_dtype))[1])
        shape = LayerShape(kind=row.kind, macs=int(row.macs), in_numel=numel, out_numel=out_numel,
                           params=int(row.params), in_size=in_size, out_size=out_size, compute_size=compute,
                           input_grad=params_before > 0, channels=row.output_shape[1] if row.kind == "bn" else 0)
        shapes.append((index, row.layer, shape, out_name))
        params_before += int(row.params)
        numel = out_numel
        in_dtype = seen.outputs[row.layer][1] if row.layer in seen.outputs else in_dtype
    mask = 1 if device.startswith("cuda") else None   # CUDA's fused dropout keeps a bool mask

    def layer(index: int, name: str, shape: LayerShape, out: str, pass_: str) -> list[RowPlan]:
        rows = [RowPlan(key=(name, pass_, "op"), layer_index=index, kind=shape.kind, flops=flops(shape, pass_),
                        bytes=layer_bytes(shape, pass_, training, mask or shape.in_size), dtype=out)]
        casts = cast_bytes(shape, pass_)
        if casts or (name, pass_) in cast_keys:
            cast = RowPlan(key=(name, pass_, "cast"), layer_index=index, kind=CAST, flops=0, bytes=casts,
                           dtype=dtype)
            rows = [cast, *rows] if pass_ == "forward" else [*rows, cast]
        return rows

    plans: list[RowPlan] = []
    if training:
        plans.append(RowPlan(key=("zero_grad", "update", "op"), layer_index=-1, kind="zero_grad", flops=0, bytes=0,
                             dtype=""))
    for index, name, shape, out in shapes:
        plans += layer(index, name, shape, out, "forward")
    if not training:
        return plans
    logits_numel = batch_size * model.config.num_classes
    logits_size, _ = _size(seen.outputs, "", torch.float32)
    loss_cast = loss_cast_bytes(logits_numel, logits_size)
    n = len(shapes)
    for pass_ in ("forward", "backward"):
        op = RowPlan(key=("loss", pass_, "op"), layer_index=n, kind="loss", flops=0,
                     bytes=loss_bytes(logits_numel, FP32, pass_), dtype="fp32")
        cast = ([RowPlan(key=("loss", pass_, "cast"), layer_index=n, kind=CAST, flops=0, bytes=loss_cast,
                         dtype=dtype)] if loss_cast or ("loss", pass_) in cast_keys else [])
        plans += [*cast, op] if pass_ == "forward" else [op, *cast]
    for index, name, shape, out in reversed(shapes):
        plans += layer(index, name, shape, out, "backward")
    if optimizer is not None:
        plans.append(RowPlan(key=("optimizer", "update", "op"), layer_index=-1, kind="optimizer", flops=0,
                             bytes=optimizer_traffic(optimizer), dtype="fp32"))
    return plans


def optimizer_traffic(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of one step of `optimizer` (vggcore.profile.roofline.optimizer_bytes) from its parameters and its state."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    state = sum(v.numel() * v.element_size() for p in params for v in optimizer.state.get(p, {}).values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)
    return optimizer_bytes(sum(p.numel() * p.element_size() for p in params),
                           sum(p.grad.numel() * p.grad.element_size() for p in params), state)


