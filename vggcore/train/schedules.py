"""Learning-rate schedules by name, stepped once per epoch, with optional linear warm-up.

    plateau   the paper: divide by `gamma`^-1 (10) when validation accuracy has not improved for `patience`
              epochs, at most `max_drops` (3) times
    step      multiply by `gamma` every `step_epochs` epochs
    cosine    half a cosine from lr to 0 over the run
    constant  lr throughout

Warm-up: for the first `warmup_epochs` epochs the lr ramps linearly, epoch e (0-based) at lr * (e + 1) /
(warmup_epochs + 1); the schedule proper counts its epochs from the end of warm-up.
"""

from __future__ import annotations

import math

SCHEDULES = ("plateau", "step", "cosine", "constant")


class Schedule:
    def __init__(self, name: str, lr: float, epochs: int, *, warmup_epochs: int = 0, gamma: float = 0.1,
                 step_epochs: int = 10, patience: int = 2, max_drops: int = 3, min_delta: float = 1e-4) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
        self.name, self.base_lr, self.epochs = name, lr, epochs
        self.warmup_epochs, self.gamma, self.step_epochs = warmup_epochs, gamma, step_epochs
        self.patience, self.max_drops, self.min_delta = patience, max_drops, min_delta
        # plateau state
        self.drops, self.best, self.bad_epochs = 0, -math.inf, 0

    def lr(self, epoch: int) -> float:
        """Learning rate for 0-based `epoch` (plateau: given the validation results reported so far)."""
        if epoch < self.warmup_epochs:
            return self.base_lr * (epoch + 1) / (self.warmup_epochs + 1)
        e = epoch - self.warmup_epochs
        if self.name == "step":
            return self.base_lr * self.gamma ** (e // self.step_epochs)
        if self.name == "cosine":
            span = max(1, self.epochs - self.warmup_epochs)
            return self.base_lr * 0.5 * (1 + math.cos(math.pi * e / span))
        if self.name == "plateau":
            return self.base_lr * self.gamma ** self.drops
        return self.base_lr

    def report(self, epoch: int, val_accuracy: float) -> None:
        """Tell the schedule how epoch `epoch` ended; only plateau listens (not during warm-up)."""
        if self.name != "plateau" or epoch < self.warmup_epochs:
            return
        if val_accuracy > self.best + self.min_delta:
            self.best, self.bad_epochs = val_accuracy, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience and self.drops < self.max_drops:
            self.drops += 1
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"drops": self.drops, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.drops, self.best, self.bad_epochs = state["drops"], state["best"], state["bad_epochs"]
