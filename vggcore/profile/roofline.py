"""The roofline model of one training (or inference) step: FLOPs and bytes per layer and pass, and the bound.

FLOPs come from `vggcore.model.summary`'s analytic multiply-accumulates (1 MAC = 2 FLOPs), matmul and convolution only,
as `torch.utils.flop_counter` counts them: elementwise layers (BatchNorm, ReLU, pooling, dropout), the loss, the
casts and the optimizer have 0 FLOPs and are placed on the roofline by their bytes alone.

    forward    conv, linear: 2 MACs
    backward   conv, linear: input gradient 2 MACs (none where the layer's input needs no gradient: the first
               conv, whose input is the image) + weight gradient 2 MACs. Bias gradients are not counted.

Traffic model ("compulsory traffic"): every tensor a pass must read or write crosses memory exactly once, at its
element size, and nothing stays in a cache from one layer to the next; kernels that re-read their input (BatchNorm
reads it for the batch statistics and again to normalise; torch's LRN is seven elementwise ops) or write
temporaries are charged only the compulsory part, so their excess shows as a low share of the bound. At sizes that
fit the last-level cache the real DRAM traffic is below this count and the share can pass 1.

    X, Y      the layer's input and output (activations at the dtype each actually has; in-place ReLU writes Y over X)
    dX, dY    their gradients (the same sizes and dtypes)
    W         weight and bias as the kernel reads them (the autocast copy's dtype, e.g. bf16; fp32 otherwise)
    S         BatchNorm's per-channel fp32 vectors (weight, bias, running mean, running var: 4 x C x 4 bytes)
    I         max-pool argmax indices, int64, one per output element (training only)
    K         dropout's keep-mask, one per element (the input's dtype on CPU, 1-byte bool on CUDA; training only)

    layer        forward                     backward
    conv/linear  X + W + Y                   dY + X + W + dW (+ dX unless the input needs no gradient)
    bn           X + Y + S                   dY + X + dX + S
    relu         X + Y                       dY + Y + dX      (threshold_backward reads the saved result)
    lrn          X + Y                       dY + X + dX
    maxpool      X + Y (+ I in training)     dY + I + dX
    avgpool      X + Y                       dY + dX
    dropout      X + Y + K in training;      dY + K + dX
                 0 in inference (identity)
    flatten, identity   0 (views)            0
    loss         Z + 2 x L                   L + dZ           (Z logits as the loss reads them, L the fp32 log-probs)
    cast         n x (source + target size) per tensor cast; backward the same for every cast tensor that needs a
                 gradient. Under autocast (bf16/fp16) each conv and linear casts its fp32 weight and bias every step
                 (backward: their gradients back to fp32), the first conv also its fp32 input (no gradient), and
                 the loss casts the logits to fp32 (and their gradient back).
    optimizer    2 x P + G + 2 x T           (read and write each fp32 parameter, read its gradient, read and write
                 each optimizer state tensor: SGD's momentum buffer, Adam's two moments)
    zero_grad    0                           (set_to_none frees the gradients; nothing is written)

The bound at a row's intensity F/B (FLOP per byte) is the attainable rate min(peak, F/B x bandwidth); as a time,
the least the two roofs allow, max(F / peak, B / bandwidth), which is defined for 0-FLOP rows too. The share of
the bound reached is that least time over the measured time (= achieved FLOP/s over attainable FLOP/s when F > 0).
"""

from __future__ import annotations

from dataclasses import dataclass

FP32, INT64 = 4, 8
PASSES = ("forward", "backward", "update")
WEIGHTED = ("conv", "linear")   # kinds (by prefix) whose FLOPs and weight traffic count


@dataclass(frozen=True)
class LayerShape:
    """What the traffic model needs to know about one layer (one row of `vggcore.model.summary`) in one step."""

    kind: str            # summary's kind: conv3x3, conv1x1, bn, relu, lrn, maxpool, avgpool, flatten, linear, ...
    macs: int            # forward multiply-accumulates (summary's `macs`)
    in_numel: int        # elements of the input tensor (whole batch)
    out_numel: int       # elements of the output tensor
    params: int          # trainable parameters (weight + bias elements)
    in_size: int         # bytes per element of the input as the layer received it (4 fp32, 2 bf16/fp16)
    out_size: int        # bytes per element of the output
    compute_size: int    # bytes per element of weights as the kernel reads them (the autocast dtype, else 4)
    input_grad: bool     # the layer's input needs a gradient (False for the first layer: its input is the image)
    channels: int = 0    # BatchNorm's channel count (its per-channel vectors)


def weighted(kind: str) -> bool:
    return kind.startswith(WEIGHTED)


def backward_flops_parts(shape: LayerShape) -> tuple[int, int]:
    """(input-gradient FLOPs, weight-gradient FLOPs) of the layer's backward pass."""
    if not weighted(shape.kind):
        return 0, 0
    return (2 * shape.macs if shape.input_grad else 0), 2 * shape.macs


def flops(shape: LayerShape, pass_: str) -> int:
    """Analytic FLOPs of one pass ("forward" or "backward") of the layer."""
    if pass_ == "forward":
        return 2 * shape.macs if weighted(shape.kind) else 0
    if pass_ == "backward":
        return sum(backward_flops_parts(shape))
    raise ValueError(f"flops: pass {pass_!r} is not forward or backward")


def layer_bytes(shape: LayerShape, pass_: str, training: bool, mask_size: int) -> int:
    """Bytes the layer's pass moves under the traffic model above; `mask_size` is dropout's keep-mask element size."""
    x, y = shape.in_numel * shape.in_size, shape.out_numel * shape.out_size
    dx = x if shape.input_grad else 0
    kind = shape.kind
    forward = pass_ == "forward"
    if pass_ not in ("forward", "backward"):
        raise ValueError(f"layer_bytes: pass {pass_!r} is not forward or backward")
    if weighted(kind):
        w = shape.params * shape.compute_size
        return x + w + y if forward else y + x + w + w + dx
    if kind == "bn":
        s = 4 * shape.channels * FP32
        return x + y + s if forward else y + x + dx + s
    if kind == "relu":
        return x + y if forward else y + y + dx
    if kind == "lrn":
        return x + y if forward else y + x + dx
    if kind == "maxpool":
        indices = shape.out_numel * INT64 if training else 0
        return x + y + indices if forward else y + indices + dx
    if kind == "avgpool":
        return x + y if forward else y + dx
    if kind == "dropout":
        if not training:
            return 0
        mask = shape.in_numel * mask_size
        return x + y + mask if forward else y + mask + dx
    if kind in ("flatten", "identity"):
        return 0
    raise ValueError(f"layer_bytes: unknown layer kind {kind!r}")


def loss_bytes(logits_numel: int, logits_size: int, pass_: str) -> int:
    """Cross-entropy: reads the logits, writes (then reads) fp32 log-probabilities, writes the logits' gradient."""
    log_probs = logits_numel * FP32
    if pass_ == "forward":
        return logits_numel * logits_size + 2 * log_probs
    if pass_ == "backward":
        return log_probs + logits_numel * logits_size
    raise ValueError(f"loss_bytes: pass {pass_!r} is not forward or backward")


def cast_bytes(shape: LayerShape, pass_: str) -> int:
    """Bytes of the autocast casts a conv or linear layer causes (0 outside autocast and for other layers)."""
    if not weighted(shape.kind) or shape.compute_size == FP32:
        return 0
    per_element = FP32 + shape.compute_size
    weights = shape.params * per_element
    if pass_ == "forward":
        inputs = shape.in_numel * (shape.in_size + shape.compute_size) if shape.in_size != shape.compute_size else 0
        return weights + inputs
    if pass_ == "backward":
        return weights            # the image's cast needs no gradient, so only the weights' casts run backward
    raise ValueError(f"cast_bytes: pass {pass_!r} is not forward or backward")


def loss_cast_bytes(logits_numel: int, logits_size: int) -> int:
    """Autocast runs the loss in fp32: the logits are cast up (and their gradient down), each way the same bytes."""
    return 0 if logits_size == FP32 else logits_numel * (logits_size + FP32)


def optimizer_bytes(param_bytes: int, grad_bytes: int, state_bytes: int) -> int:
    """One optimizer step: read and write every parameter, read its gradient, read and write every state tensor."""
    return 2 * param_bytes + grad_bytes + 2 * state_bytes


# ------------------------------------------------------------------------------------------------ the bound
@dataclass(frozen=True)
class Bound:
    """Where a row sits under the roofs."""

    intensity: float | None      # FLOP per byte (None when the row moves no bytes)
    attainable_flops: float      # min(peak, intensity x bandwidth), FLOP/s (0 for a 0-FLOP row)
    time_s: float                # the least time the roofs allow: max(FLOPs / peak, bytes / bandwidth), seconds
    limit: str                   # "compute", "memory", or "none" for a row with neither FLOPs nor bytes


def bound(flop_count: float, byte_count: float, peak_flops: float, bandwidth: float) -> Bound:
    if peak_flops <= 0 or bandwidth <= 0:
        raise ValueError(f"roofs must be positive: peak {peak_flops} FLOP/s, bandwidth {bandwidth} B/s")
    intensity = flop_count / byte_count if byte_count > 0 else None
    compute_time, memory_time = flop_count / peak_flops, byte_count / bandwidth
    if flop_count == 0 and byte_count == 0:
        limit = "none"
    else:
        limit = "compute" if compute_time >= memory_time else "memory"
    if intensity is None:
        attainable = peak_flops if flop_count > 0 else 0.0
    else:
        attainable = min(peak_flops, intensity * bandwidth)
    return Bound(intensity=intensity, attainable_flops=attainable, time_s=max(compute_time, memory_time),
                 limit=limit)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where the denominator is 0 (a rate of a row that took no time)."""
    return numerator / denominator if denominator > 0 else None
