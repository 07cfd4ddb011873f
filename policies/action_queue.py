"""Action-chunk execution: run the first n actions of each chunk, or blend overlapping chunks (ACT ensembling)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

ExecuteMode = Literal["chunk", "ensemble"]


@dataclass(frozen=True)
class ExecutionConfig:
    """How a stream of action chunks becomes one action per control step."""

    mode: ExecuteMode = "chunk"
    # chunk: actions executed from each chunk before asking for the next. ensemble: steps between new chunks (1 = ACT).
    execute_steps: int = 8
    # ACT temporal ensembling: the i-th oldest prediction for a step is weighted exp(-coeff * i).
    ensemble_coeff: float = 0.01


class ActionQueue:
    """Per-episode action buffer; ask `needs_chunk()`, `push()` a chunk when it does, `pop()` once per step."""

    def __init__(self, config: ExecutionConfig = ExecutionConfig(), chunk_size: int | None = None):
        if config.mode not in ("chunk", "ensemble"):
            raise ValueError(f"execution mode must be 'chunk' or 'ensemble'; got {config.mode!r}")
        if config.execute_steps < 1 or (chunk_size is not None and config.execute_steps > chunk_size):
            raise ValueError(f"execute_steps must be in 1..{chunk_size or 'chunk size'} (the chunk length); "
                             f"got {config.execute_steps}")
        self.config = config
        self.chunk_size = chunk_size
        self.reset()

    def reset(self) -> None:
        self._queue: deque[np.ndarray] = deque()
        self._chunks: list[tuple[int, np.ndarray]] = []  # (step it starts at, chunk), ensemble mode
        self._step = 0
        self._last_chunk_step: int | None = None

    def needs_chunk(self) -> bool:
        """True when the next pop() needs a new chunk pushed first."""
        if self.config.mode == "chunk":
            return not self._queue
        return self._last_chunk_step is None or self._step - self._last_chunk_step >= self.config.execute_steps

    def push(self, chunk: np.ndarray) -> None:
        """Add a chunk (H, action_dim) predicted from the current observation."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise ValueError(f"an action chunk is (horizon, action_dim); got shape {chunk.shape}")
        if len(chunk) < self.config.execute_steps:
            raise ValueError(f"chunk of {len(chunk)} actions is shorter than execute_steps {self.config.execute_steps}")
        if self.config.mode == "chunk":
            self._queue.clear()
            self._queue.extend(chunk[: self.config.execute_steps])
        else:
            self._chunks.append((self._step, chunk))
        self._last_chunk_step = self._step

    def pop(self) -> np.ndarray:
        """The action for the current step; advances the step counter."""
        if self.config.mode == "chunk":
            if not self._queue:
                raise RuntimeError("action queue is empty: push a chunk first (needs_chunk() was True)")
            action = self._queue.popleft()
        else:
            action = self._blend()
        self._step += 1
        return action

    def _blend(self) -> np.ndarray:
        # Keep only chunks that still cover this step; list order is oldest first, matching ACT's weight order.
        self._chunks = [(start, c) for start, c in self._chunks if self._step - start < len(c)]
        if not self._chunks:
            raise RuntimeError("no action chunk covers this step: push a chunk first (needs_chunk() was True)")
        preds = np.stack([c[self._step - start] for start, c in self._chunks])
        weights = np.array([math.exp(-self.config.ensemble_coeff * i) for i in range(len(preds))])
        blended = (weights[:, None] * preds.astype(np.float64)).sum(0) / weights.sum()
        return blended.astype(preds.dtype)


class ChunkExecution:
    """A policy's chunk execution across episode slots: one ActionQueue per slot, fed by the policy's predictions.

    The policy owns one and is the only owner of its queues: a single env runs in slot 0 (select_one); a runner
    with several envs gives each env a slot (select), and the slots whose queue ran dry share one batched call.
    """

    def __init__(self, config: ExecutionConfig, chunk_size: int | None = None):
        self.config, self.chunk_size = config, chunk_size
        self._queues: dict[int, ActionQueue] = {}
        self.predictions = 0  # batched predict calls made (the runner's statistics)
        self.queue(0)  # a bad config is an error when the policy is built, not at its first step

    def queue(self, slot: int) -> ActionQueue:
        """The slot's queue (made on first use)."""
        if slot not in self._queues:
            self._queues[slot] = ActionQueue(self.config, chunk_size=self.chunk_size)
        return self._queues[slot]

    def reset(self, slot: int = 0) -> None:
        """A new episode in `slot`: its queued actions are dropped."""
        self.queue(slot).reset()

    def select_one(self, obs: dict, predict) -> np.ndarray:
        """Slot 0's next action for an unbatched observation; `predict(obs, slots)` when its queue needs a chunk."""
        queue = self.queue(0)
        if queue.needs_chunk():
            queue.push(_checked(np.asarray(predict(obs, slots=[0]))[None], 1)[0])
            self.predictions += 1
        return queue.pop()

    def select(self, observations: list[dict], slots: list[int], predict) -> np.ndarray:
        """(B, action_dim): the next action of each slot, observations[i] being slot i's current observation."""
        queues = [self.queue(slot) for slot in slots]
        hungry = [i for i, queue in enumerate(queues) if queue.needs_chunk()]
        if hungry:
            obs = stack_observations([observations[i] for i in hungry])
            chunks = _checked(predict(obs, slots=[slots[i] for i in hungry]), len(hungry))
            self.predictions += 1
            for i, chunk in zip(hungry, chunks):
                queues[i].push(chunk)
        return np.stack([queue.pop() for queue in queues])


def stack_observations(observations: list[dict]) -> dict:
    """Per-env observation dicts -> one batched dict (arrays gain a leading dim, strings become a list)."""
    out = {}
    for key, value in observations[0].items():
        values = [o[key] for o in observations]
        out[key] = list(values) if isinstance(value, str) else np.stack(values)
    return out


def _checked(chunks, batch: int) -> np.ndarray:
    """Predicted chunks as float32 (batch, horizon, action_dim); a wrong shape or a NaN is an error here, not a
    bad action several steps later."""
    chunks = np.asarray(chunks)
    if chunks.ndim != 3 or len(chunks) != batch:
        raise ValueError(f"the policy returned chunks of shape {chunks.shape} for a batch of {batch}; "
                         f"expected (B, horizon, action_dim)")
    if not np.isfinite(chunks).all():
        raise ValueError("the policy returned non-finite (NaN/inf) actions")
    return chunks.astype(np.float32)
