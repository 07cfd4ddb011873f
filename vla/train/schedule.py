"""Learning rates: linear warmup, then cosine decay to zero (or constant); the AdamW parameter groups."""

from __future__ import annotations

import math

import torch

from vla.train.config import OptimConfig


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


def param_groups(params: list[torch.nn.Parameter], backbone: torch.nn.Module | None,
                 optim: OptimConfig) -> list[dict]:
    """The trainable `params` as AdamW groups: those inside `backbone` at lr x `optim.backbone_lr_scale`.

    A pretrained part trained with a fresh head usually wants a smaller step than the head (GR00T and openpi fine-tune
    pretrained weights at 1e-4 or less); with the backbone frozen there is one group.
    """
    in_backbone = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    head = [p for p in params if id(p) not in in_backbone]
    tuned = [p for p in params if id(p) in in_backbone]
    groups = [{"params": head}]
    if tuned:
        groups.append({"params": tuned, "lr": optim.lr * optim.backbone_lr_scale})
    return groups
