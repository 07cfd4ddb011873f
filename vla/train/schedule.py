"""Learning-rate schedule: linear warmup, then cosine decay to zero (or constant)."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_ratio: float, schedule: str = "cosine") -> float:
    """Multiplier of the base lr for the update at `step` (0-based)."""
    warmup = int(round(total_steps * warmup_ratio))
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float,
                   schedule: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over `lr_factor`; its state is just the step count, so resuming restores it exactly."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_ratio, schedule)
    )
