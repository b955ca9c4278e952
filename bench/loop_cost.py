"""The training loop's own cost: where a time-to-accuracy run's seconds go besides the model's arithmetic.

    from bench.loop_cost import epoch_parts, step_parts
    epoch_parts(runs)        # the clock split: training passes (their data path), evaluations, the rest
    step_parts(case)         # per step: data, forward + backward, the SGD update, the loop with a stub model

`step_parts` times the parts of the training step on the case's own model and batches: drawing and augmenting a
batch (`Batches.train`), `train_step` without the update, the update alone, and the whole `train_step` on a stub
model with a single linear layer, whose arithmetic is nothing: what is left is the loop's fixed cost per step
(Python, dispatch, zeroing gradients, the per-step loss and accuracy read back for the divergence check).
Each part is the median of `steps` calls after one untimed call; the device is synchronised around each. The
batches are drawn as training draws them, epoch after epoch: a split of fewer than `steps + 1` batches (digits at
batch 256 has 5) goes on into the next epoch's order, as the training loop does; `step_epochs` says how many
epochs' orders were drawn from.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from torch import nn

from vggcore import build
from vggcore.world import World
from vggcore.device import synchronize
from vggcore.train.step import micro_batches, train_step
from vggcore.train.sgd import sgd
from vggcore.data.batches import Batches

STEPS = 8


class StepPartsUnavailable(RuntimeError):
    """The per-step parts cannot be measured for this case (a training split that yields no batch)."""


def _endless(batches: Batches, drawn: list[int]):
    """Training batches of epoch 0, 1, 2, ... in training's order; `drawn[0]` counts the epochs opened."""
    epoch = 0
    while True:
        drawn[0] = epoch + 1
        empty = True
        for batch in batches.train(epoch, 0):
            empty = False
            yield batch
        if empty:
            raise StepPartsUnavailable(f"an epoch of this case's training split yields no batch of "
                                       f"{batches.batch_size}")
        epoch += 1


class Stub(nn.Module):
    """A model whose arithmetic costs nothing: the mean colour of each image through one linear layer."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))                                   # (B, 3) -> (B, classes)


def _timed(fn: Callable[[], object], device: str, clock: Callable[[], float]) -> float:
    synchronize(device)
    start = clock()
    fn()
    synchronize(device)
    return clock() - start


def step_parts(case, steps: int = STEPS, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Median seconds per step of each part (see the module's docstring): step_data_s, step_forward_backward_s,
    step_optimizer_s, step_loop_overhead_s (the stub's whole step), and `step_s`, the first three's sum; with
    `steps_timed` and `step_epochs`. StepPartsUnavailable when the split yields no batch."""
    model_config, data_config, config = case.configs(seed=0)
    world = World(device=case.device)
    batches = Batches(data_config, model_config, config, world)
    torch.manual_seed(0)
    model = build(dataclasses.replace(model_config, num_classes=batches.num_classes)).to(case.device)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = sgd(model.parameters(), config)
    stub = Stub(batches.num_classes).to(case.device)
    stub_optimizer = sgd(stub.parameters(), config)
    dtype = "bf16" if config.bf16 else "fp32"
    drawn = [0]
    stream = _endless(batches, drawn)
    parts: dict[str, list[float]] = {"step_data_s": [], "step_forward_backward_s": [], "step_optimizer_s": [],
                                     "step_loop_overhead_s": []}
    for i in range(steps + 1):
        got = {}
        parts_now = {
            "step_data_s": lambda: got.update(batch=next(stream)),
            "step_forward_backward_s": lambda: train_step(model, None, micro_batches(got["batch"][0], got["batch"][1],
                                                                                 config.batch_size), dtype=dtype),
            "step_optimizer_s": optimizer.step,
            "step_loop_overhead_s": lambda: train_step(stub, stub_optimizer, micro_batches(
                got["batch"][0], got["batch"][1], config.batch_size), dtype=dtype),
        }
        for name, fn in parts_now.items():
            seconds = _timed(fn, case.device, clock)
            if i:  # the first call of each part is untimed: operator selection, first allocations
                parts[name].append(seconds)
    out = {name: statistics.median(values) for name, values in parts.items()}
    out["step_s"] = out["step_data_s"] + out["step_forward_backward_s"] + out["step_optimizer_s"]
    out["steps_timed"] = steps
    out["step_epochs"] = drawn[0]
    return out


def epoch_parts(runs: list[dict]) -> dict:
    """Where the clock's seconds went, summed over every timed run: `train_s` (the training passes, of which
    `data_s` drawing and augmenting batches), `eval_s` (the per-epoch validations) and `other_s`, the rest (the
    dataset's load, the model's build, the loop between epochs); each part's share of the clock beside it."""
    total = sum(r["elapsed"] for r in runs)
    train = sum(p.get("epoch_seconds", 0.0) for r in runs for p in r["curve"])
    data = sum(p.get("data_seconds", 0.0) for r in runs for p in r["curve"])
    evaluation = sum(p.get("eval_seconds", 0.0) for r in runs for p in r["curve"])
    other = max(0.0, total - train - evaluation)
    shares = {f"{k}_share": (v / total if total else 0.0) for k, v in
              (("train", train), ("data", data), ("eval", evaluation), ("other", other))}
    return {"clock_s": total, "train_s": train, "data_s": data, "eval_s": evaluation, "other_s": other, **shares}
