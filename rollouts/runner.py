"""The episode runner. Two modes:

- lock-step (a policy in this process): workers step their envs, the main process asks the policy for one action
  per env each round (each env is a slot of the policy, which owns the action queues and batches its predictions);
- whole-episode (policy None: the experts act inside the workers): each worker runs an episode start to end and
  reports it in one message; the next pending episode goes to whichever worker finishes first. Demo collection
  runs here too (vla/data/collect.py): its workers record their episodes, its on_record writes the dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from policies.base import ChunkPolicy
from rollouts.pool import WorkerPool
from rollouts.results import EpisodeRecord, ResultsLog
from rollouts.worker import EpisodeSpec, Recording


class PolicyError(RuntimeError):
    """The policy raised or returned unusable actions; the run stops, finished episodes stay in the log."""


class EnvFailure(RuntimeError):
    """Episodes keep failing in the env even after reruns (a broken setup, not bad luck); the run stops."""

# Consecutive given-up episodes that mean the env itself is broken (missing assets, bad backend), not flaky.
GIVE_UP_AFTER = 2


@dataclass
class RunStats:
    """Where the wall time went: policy inference, env stepping (slowest worker per round) and the rest."""

    wall_s: float = 0.0
    policy_s: float = 0.0
    env_s: float = 0.0
    rounds: int = 0
    policy_calls: int = 0
    episodes: int = 0
    env_steps: int = 0
    restarts: int = 0
    startup_s: float = 0.0  # until every worker answered its first reset (process start, imports, scene build)
    first_round_env_s: float = 0.0  # env time inside startup_s (the first resets)

    @property
    def overhead_s(self) -> float:
        """Runner time outside policy and env, after startup (IPC, batching, bookkeeping)."""
        steady_wall = self.wall_s - self.startup_s
        return max(0.0, steady_wall - self.policy_s - (self.env_s - self.first_round_env_s))

    @property
    def steady_env_s(self) -> float:
        return self.env_s - self.first_round_env_s


@dataclass
class _Slot:
    spec: EpisodeSpec
    started: float
    obs: dict | None = None


@dataclass(frozen=True)
class RunnerSettings:
    """Per-run knobs of the runner (the rest lives in the pool's WorkerSpec; chunk execution, in the policy)."""

    step_timeout_s: float = 60.0
    reset_timeout_s: float = 300.0
    # Whole-episode mode: the time an episode may take after its reset (covered by reset_timeout_s) before the
    # worker counts as hung. A per-step timeout times the horizon would be hours; an episode takes seconds to minutes.
    episode_timeout_s: float = 900.0
    max_reruns: int = 2
    video_dir: str = ""
    whole_episodes: bool = True  # policy None: run episodes inside the workers; False: lock-step (tests compare)


# The episodes to run: a list, or a function asked whenever a worker is free (None: nothing to run for now), so a
# caller can decide the next episode from the records so far (collection: until each task has its demos).
Episodes = Iterable[EpisodeSpec] | Callable[[], EpisodeSpec | None]


class _Episodes:
    """Bookkeeping both modes share: pending episodes, which worker runs which, records, reruns, giving up."""

    def __init__(self, episodes: Episodes, log: ResultsLog | None, settings: RunnerSettings, stats: RunStats,
                 on_record=None):
        self.next_new = episodes if callable(episodes) else functools.partial(next, iter(episodes), None)
        self.reruns: deque[EpisodeSpec] = deque()
        self.active: dict[int, _Slot] = {}
        self.log, self.settings, self.stats, self.on_record = log, settings, stats, on_record
        self.errors_in_a_row = 0

    def take(self, worker: int) -> EpisodeSpec | None:
        """The next pending episode (reruns first), now running on `worker`; None when nothing is left."""
        spec = self.reruns.popleft() if self.reruns else self.next_new()
        if spec is None:
            return None
        self.active[worker] = _Slot(spec, time.perf_counter())
        return spec

    def finish(self, worker: int, success: bool, steps: int, error: str = "", recording: Recording | None = None
               ) -> None:
        slot = self.active.pop(worker)
        s = slot.spec
        if not error:
            self.errors_in_a_row = 0
        video_dir = self.settings.video_dir
        video = f"{video_dir}/{s.task}/seed{s.base_seed}_ep{s.index:04d}.mp4" if video_dir and not error else ""
        record = EpisodeRecord(task=s.task, base_seed=s.base_seed, index=s.index, seed=s.seed, success=success,
                               steps=steps, time_s=round(time.perf_counter() - slot.started, 3), worker=worker,
                               reruns=s.attempt, error=error, video=video)
        if self.log is not None:
            self.log.append(record)
        self.stats.episodes += 1
        if self.on_record is not None:
            self.on_record(record, recording)

    def failed(self, worker: int, reason: str) -> None:
        """The worker died, hung or raised: queue its episode again, or record an error after max_reruns."""
        slot = self.active[worker]
        if slot.spec.attempt >= self.settings.max_reruns:
            self.finish(worker, False, 0, error=reason)
            self.errors_in_a_row += 1
            if self.errors_in_a_row >= GIVE_UP_AFTER:
                raise EnvFailure(f"{self.errors_in_a_row} episodes in a row failed "
                                 f"{self.settings.max_reruns + 1} times each; last: {reason}")
        else:
            # Rerun from its initial state: a partial episode is not comparable to a whole one.
            self.active.pop(worker)
            self.reruns.appendleft(dataclasses.replace(slot.spec, attempt=slot.spec.attempt + 1))


def run_episodes(
    episodes: Episodes,
    pool: WorkerPool,
    log: ResultsLog | None,
    policy: ChunkPolicy | None,
    settings: RunnerSettings = RunnerSettings(),
    on_record=None,
) -> RunStats:
    """Run every episode through the pool (policy None: the workers' experts act); each record is logged as it ends.

    `episodes`: see Episodes. `on_record(record, recording)` follows each record; the recording is a successful
    episode's frames when the workers record (WorkerSpec.record), else None.
    """
    stats = RunStats()
    book = _Episodes(episodes, log, settings, stats, on_record)
    start_wall = time.perf_counter()
    restarts_before = pool.restarts
    try:
        if policy is None and settings.whole_episodes:
            _run_whole_episodes(book, pool, stats, start_wall)
        else:
            _run_lock_step(book, pool, policy, stats, start_wall)
    finally:
        stats.wall_s = time.perf_counter() - start_wall
        stats.restarts = pool.restarts - restarts_before
    return stats


def _run_lock_step(book: _Episodes, pool: WorkerPool, policy: ChunkPolicy | None, stats: RunStats,
                   start_wall: float) -> None:
    """Every round: gather one reply per worker, one policy call for all of them, one action to each.

    Worker i is the policy's slot i: reset there when an episode starts (its queue, and its noise from the seed).
    """
    settings, active = book.settings, book.active

    def assign(worker: int) -> None:
        spec = book.take(worker)
        if spec is not None:
            if policy is not None:
                policy.reset(seed=spec.seed, slot=worker)
            pool.request(worker, ("reset", spec), settings.reset_timeout_s)

    for worker in range(len(pool)):
        assign(worker)
    while active:
        replies = pool.gather()
        stats.rounds += 1
        if stats.rounds == 1:
            stats.startup_s = time.perf_counter() - start_wall
        env_times = []
        waiting: list[int] = []
        for worker, reply in sorted(replies.items()):
            slot = active[worker]
            if reply[0] == "failed":
                book.failed(worker, reply[1])
                assign(worker)
                continue
            env_times.append(reply[-1])
            if reply[0] == "step":
                stats.env_steps += 1
                _, obs, done, success, steps, _ = reply
                if done:
                    book.finish(worker, success, steps)
                    assign(worker)
                    continue
            else:
                obs = reply[1]
            slot.obs = obs
            waiting.append(worker)
        stats.env_s += max(env_times, default=0.0)
        if stats.rounds == 1:
            stats.first_round_env_s = stats.env_s
        actions = _act(policy, {w: active[w] for w in waiting}, stats) if waiting else []
        for worker, action in zip(waiting, actions):
            pool.request(worker, ("step", action), settings.step_timeout_s)


def _run_whole_episodes(book: _Episodes, pool: WorkerPool, stats: RunStats, start_wall: float) -> None:
    """Each worker runs whole episodes; whichever finishes first gets the next one (no lock-step, no per-step IPC).

    Timing: env time is measured in the workers (reset + every step, expert included). The env share is the
    busiest worker's env time, so the overhead is the time that worker spent waiting on the runner; its first
    reset (process start, scene build) counts as startup, like the lock-step mode's first round.
    """
    settings = book.settings
    busy = [0.0] * len(pool)  # env seconds per worker slot, first reset excluded
    first_reset: dict[int, float] = {}  # worker -> seconds of its first reset (or 0.0 if it failed before)

    def assign(worker: int) -> None:
        spec = book.take(worker)
        if spec is not None:
            pool.request(worker, ("episode", spec), settings.reset_timeout_s)

    def started(worker: int, reset_s: float) -> None:
        if worker in first_reset:
            busy[worker] += reset_s
            return
        first_reset[worker] = reset_s
        if len(first_reset) == len(pool):
            stats.startup_s = time.perf_counter() - start_wall
            stats.first_round_env_s = max(first_reset.values())

    for worker in range(len(pool)):
        assign(worker)
    try:
        while book.active:
            replies = pool.gather(first_only=True)
            stats.rounds += 1
            for worker, reply in sorted(replies.items()):
                if reply[0] == "failed":
                    started(worker, 0.0)  # a worker that never started must not hold the startup mark back
                    book.failed(worker, reply[1])
                    assign(worker)
                elif reply[0] == "started":  # the reset is done: from here the episode timeout applies
                    started(worker, reply[1])
                    pool.expect(worker, settings.episode_timeout_s)
                else:
                    _, success, steps, env_s, recording = reply
                    busy[worker] += env_s  # the steps only: the reset came with "started"
                    stats.env_steps += steps
                    book.finish(worker, success, steps, recording=recording)
                    assign(worker)
            for worker in range(len(pool)):  # a finished episode can mean more to run (see Episodes): idle ones too
                if worker not in book.active:
                    assign(worker)
    finally:
        stats.env_s = stats.first_round_env_s + max(busy)


def _act(policy: ChunkPolicy | None, slots: dict[int, _Slot], stats: RunStats) -> list[np.ndarray | None]:
    """One action per waiting env (worker -> its slot); the policy's queues decide which envs need a new chunk."""
    if policy is None:
        return [None] * len(slots)
    start, predictions = time.perf_counter(), policy.chunks.predictions
    try:
        actions = policy.select_actions([s.obs for s in slots.values()], list(slots))
    except Exception as exc:
        episodes = ", ".join(f"{s.spec.task}#{s.spec.index}" for s in slots.values())
        raise PolicyError(f"policy failed on episodes {episodes}: {type(exc).__name__}: {exc}") from exc
    stats.policy_s += time.perf_counter() - start
    stats.policy_calls += policy.chunks.predictions - predictions
    return list(actions)
