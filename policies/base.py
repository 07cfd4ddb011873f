"""The Policy interface every actor implements (VLA, scripted experts, remote clients)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Turns observations into actions, one control step at a time."""

    def reset(self) -> None:
        """Forget everything about the previous episode (action queue, recurrent state)."""

    def select_action(self, obs: dict) -> np.ndarray:
        """The action (action_dim,) to execute now; may come from a queued chunk."""


@runtime_checkable
class ChunkPolicy(Policy, Protocol):
    """A Policy that predicts whole action chunks, so a runner can batch it across environments."""

    chunk_size: int
    action_dim: int

    def predict_action_chunk(self, obs: dict) -> np.ndarray:
        """(chunk_size, action_dim) for one observation, or (B, chunk_size, action_dim) for a batched one."""
