"""An exponential moving average of the trainable weights: the weights a checkpoint evaluates when EMA is on.

The decay warms up with the step, as in diffusion policy's EMA: decay(step) = 1 - (1 + step) ** -power, capped at
max_decay (power 0.75: 0.99 after ~460 steps, 0.999 after ~10,000), so early averages do not drag in the random
initialisation. The average keeps fp32 copies of the parameters the optimizer trains; the frozen backbone is not copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EmaConfig:
    """`--ema.enabled` keeps the average; checkpoints then hold it as their weights (the trained ones for resuming)."""

    enabled: bool = False
    power: float = 0.75
    max_decay: float = 0.9999

    def __post_init__(self):
        if self.power <= 0:
            raise ValueError(f"--ema.power must be > 0, got {self.power}")
        if not 0.0 <= self.max_decay < 1.0:
            raise ValueError(f"--ema.max-decay must be in [0, 1), got {self.max_decay}")


def ema_decay(step: int, config: EmaConfig) -> float:
    """The weight the average keeps at optimizer step `step` (1-based): 0 at step 0, rising towards max_decay."""
    return min(config.max_decay, 1.0 - (1.0 + step) ** -config.power)


class WeightAverage:
    """The moving average of a model's trainable parameters, keyed by their state-dict names."""

    def __init__(self, model: nn.Module, config: EmaConfig):
        self.config = config
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in trained]
        self._params = [p for _, p in trained]
        self.shadow = [p.detach().clone().float() for p in self._params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the current weights after optimizer step `step`."""
        weight = 1.0 - ema_decay(step, self.config)
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in self._params], weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: t.clone() for name, t in zip(self.names, self.shadow)}

    def load_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        missing = [name for name in self.names if name not in weights]
        if missing:
            raise RuntimeError(f"the saved average lacks {len(missing)} trained weights, e.g. {missing[0]}")
        for name, t in zip(self.names, self.shadow):
            t.copy_(weights[name])
