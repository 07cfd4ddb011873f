"""Action chunks in time: which action runs at each control tick, when to ask for the next chunk, and latency.

A chunk predicted from the observation of tick t0 holds the actions for ticks t0, t0+1, ...; it arrives some
ticks later, and its actions for ticks already past are skipped (latency compensation). `chunk` mode runs the
newest chunk and asks for the next one early enough (by the measured latency) that it lands after
`execute_steps` ticks; `ensemble` mode blends every chunk covering the tick with ACT's weights exp(-coeff * i),
i = 0 the oldest. No action for a tick (every chunk used up, none arrived) is a gap: the caller holds.
"""

from __future__ import annotations

import math

import numpy as np


class ChunkScheduler:
    """Tick-indexed action chunks for a real-time loop (one request in flight at a time)."""

    def __init__(self, horizon: int, action_dim: int, execute_steps: int = 8, mode: str = "chunk",
                 ensemble_coeff: float = 0.01):
        if mode not in ("chunk", "ensemble"):
            raise ValueError(f"execution mode must be 'chunk' or 'ensemble'; got {mode!r}")
        if not 1 <= execute_steps <= horizon:
            raise ValueError(f"execute_steps must be in 1..{horizon}; got {execute_steps}")
        self.horizon, self.action_dim = horizon, action_dim
        self.execute_steps, self.mode, self.ensemble_coeff = execute_steps, mode, ensemble_coeff
        self.reset()

    def reset(self) -> None:
        """Forget every chunk (after a hold: old plans must not resume)."""
        self.chunks: list[tuple[int, np.ndarray]] = []  # (tick of its observation, chunk), oldest first
        self.in_flight: int | None = None  # tick of the observation behind the pending request
        self.latency_ticks = 0  # ticks from observation to arrival, last measured

    def should_request(self, tick: int) -> bool:
        """True when a new chunk should be asked for from this tick's observation."""
        if self.in_flight is not None:
            return False
        if not self.chunks:
            return True
        since = tick - self.chunks[-1][0]
        if self.mode == "ensemble":
            return since >= self.execute_steps
        return since >= max(1, self.execute_steps - self.latency_ticks)

    def requested(self, tick: int) -> None:
        self.in_flight = tick

    def failed(self) -> None:
        """The pending request will not be answered (error or timeout)."""
        self.in_flight = None

    def received(self, chunk, obs_tick: int, tick: int) -> None:
        """A chunk predicted from the observation of `obs_tick`, arriving at `tick`."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.shape != (self.horizon, self.action_dim):
            raise ValueError(f"chunk must be ({self.horizon}, {self.action_dim}); got {chunk.shape}")
        if self.in_flight == obs_tick:
            self.in_flight = None
        self.latency_ticks = max(0, tick - obs_tick)
        self.chunks.append((obs_tick, chunk))
        self.chunks.sort(key=lambda c: c[0])
        self.chunks = [(t0, c) for t0, c in self.chunks if tick - t0 < self.horizon]

    def action(self, tick: int) -> np.ndarray | None:
        """The action for this tick, or None (a gap)."""
        covering = [(t0, c) for t0, c in self.chunks if 0 <= tick - t0 < self.horizon]
        if not covering:
            return None
        if self.mode == "chunk":
            t0, chunk = covering[-1]
            return chunk[tick - t0]
        preds = np.stack([c[tick - t0] for t0, c in covering]).astype(np.float64)
        weights = np.array([math.exp(-self.ensemble_coeff * i) for i in range(len(preds))])
        return ((weights[:, None] * preds).sum(0) / weights.sum()).astype(np.float32)
