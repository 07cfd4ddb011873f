"""The Policy interface every actor implements (VLA, scripted experts, remote clients)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from policies.action_queue import ChunkExecution


@runtime_checkable
class Policy(Protocol):
    """Turns observations into actions, one control step at a time."""

    def reset(self) -> None:
        """Forget everything about the previous episode (action queue, recurrent state)."""

    def select_action(self, obs: dict) -> np.ndarray:
        """The action (action_dim,) to execute now; may come from a queued chunk."""


@runtime_checkable
class ChunkPolicy(Policy, Protocol):
    """A Policy that predicts whole action chunks, so a runner can batch it across environments.

    The policy owns chunk execution (`chunks`: one action queue per slot). A runner gives each of its envs a slot:
    reset(seed=episode seed, slot=env) when an episode starts there, then select_actions every step. A policy that
    samples (flow matching) draws a row's noise from its slot's stream, restarted from the episode seed, so an
    episode's noise does not depend on its batch. Its arithmetic can, in the last bits (the batch's padding and size
    change how kernels block their sums), and a closed-loop episode can then diverge: an evaluation repeats itself
    for the same episodes in the same order, not when they run beside other episodes (docs/experiments.md, run XXXIX).
    """

    chunk_size: int
    action_dim: int
    chunks: ChunkExecution

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        """Start an episode in `slot` (0 for a single env); `seed`: the episode's, for its noise stream."""

    def predict_action_chunk(self, obs: dict, slots: list[int] | None = None) -> np.ndarray:
        """(chunk_size, action_dim) for one observation, or (B, chunk_size, action_dim) for a batched one."""

    def select_actions(self, observations: list[dict], slots: list[int]) -> np.ndarray:
        """(B, action_dim): the next action of each slot, given its env's current observation."""
