"""DART-style disturbances for demo collection (Laskey et al., 2017, "DART: Noise Injection for Robust Imitation").

Behaviour cloning only sees the states the expert visits; a learned policy that drifts a few centimetres off that
path has no example of how to come back. So during collection the executed action is the expert's plus a slowly
varying push on the translation channels, while the dataset records the expert's own action: the demos then show
the expert correcting from the states near its path that the push drove it to.
"""

from __future__ import annotations

import numpy as np

TRANSLATION = slice(0, 3)  # the OSC action's position deltas (RoboCasa layout)


class Disturbance:
    """An Ornstein-Uhlenbeck push on the translation channels: stationary std `scale` (action units), each step
    keeping `persistence` of the last push, so it wanders for ~1 / (1 - persistence) steps before changing."""

    def __init__(self, scale: float, seed: int, persistence: float = 0.8):
        if scale < 0:
            raise ValueError(f"disturbance scale must be >= 0, got {scale}")
        if not 0.0 <= persistence < 1.0:
            raise ValueError(f"disturbance persistence must be in [0, 1), got {persistence}")
        self.scale, self.persistence = scale, persistence
        self.rng = np.random.default_rng([seed, 0xDA27])  # its own stream: the expert's draws stay those of seed
        self.push = np.zeros(3)

    def apply(self, action: np.ndarray) -> np.ndarray:
        """The action to execute: `action` with this step's push added to its translation (clipped to +-1)."""
        rho = self.persistence
        self.push = rho * self.push + self.scale * np.sqrt(1.0 - rho**2) * self.rng.normal(size=3)
        executed = np.array(action, dtype=np.float32, copy=True)
        executed[TRANSLATION] = np.clip(executed[TRANSLATION] + self.push, -1.0, 1.0)
        return executed
