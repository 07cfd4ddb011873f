"""An env worker: owns one env (per task) and, for expert rollouts, the expert beside it (a process or a Ray actor).

Protocol over a Pipe, one reply per request:
  ("reset", EpisodeSpec)  -> ("obs", obs | None, env_seconds)
  ("step", action | None) -> ("step", obs | None, done, success, steps, env_seconds)   (None: the expert acts)
  ("episode", EpisodeSpec) -> ("started", reset_seconds), then ("episode", success, steps, step_seconds, recording)
                             (expert only: the whole episode runs here, no message per step; step_seconds
                             covers every step after the reset, expert included; recording: the frames of a
                             successful episode when WorkerSpec.record, else None)
  ("close",)              -> process exits
The Ray backend sends the two halves of "episode" as separate calls: ("begin_episode", EpisodeSpec) -> "started",
then ("run_episode",) -> "episode".
Any exception inside the env is replied as ("error", one-line message) so the parent can restart and rerun.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.embodiments import STATE_KEY, TASK_KEY
from contract.spec import ObservationSpec
from envs import TASKS
from policies.dart import Disturbance
from rollouts.video import EpisodeVideo


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to build its envs; picklable, the same for all workers of a run."""

    backend: str = "builtin"
    observation: ObservationSpec = ObservationSpec()  # the cameras and image size the envs render
    horizon: int = 0  # 0: the task's own
    render: bool = True  # expert runs without video need no pixels
    expert: bool = False
    send_obs: bool = True  # the policy process needs observations; expert runs do not
    record: bool = False  # demo collection: a successful whole episode comes back with its frames (see Recording)
    disturbance: float = 0.0  # expert runs: std of a DART push added to the executed, not the recorded, action
    video_dir: str = ""
    env_factory: str = "envs:make"
    expert_factory: str = "policies.experts:make_expert"
    fault: str = ""  # test-only, see RolloutConfig.fault


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: its identity, its seed and which attempt this is."""

    task: str
    base_seed: int
    index: int
    seed: int
    attempt: int = 0


def load_callable(path: str):
    """'package.module:function' -> the function."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _parse_fault(fault: str) -> tuple[str, int, int] | None:
    if not fault:
        return None
    kind, episode, step = fault.split(":")
    if kind not in ("crash", "hang"):
        raise ValueError(f"fault must be crash:<episode>:<step> or hang:<episode>:<step>; got {fault!r}")
    return kind, int(episode), int(step)


@dataclass
class Recording:
    """An episode's frames as a demonstration: the observation before each step and the action taken there."""

    instruction: str
    images: dict  # image key -> T uint8 (H, W, 3) frames: a list while recording, one array once stacked
    state: list | np.ndarray  # T float32 states
    action: list | np.ndarray  # T float32 actions

    def add(self, obs: dict, action: np.ndarray) -> None:
        for key, frames in self.images.items():
            frames.append(obs[key])
        self.state.append(np.asarray(obs[STATE_KEY], dtype=np.float32))
        self.action.append(action)

    def stacked(self) -> Recording:
        """The same frames as arrays (T, ...), which travel between processes in one piece."""
        return Recording(self.instruction, {k: np.stack(v) for k, v in self.images.items()}, np.stack(self.state),
                         np.stack(self.action))


class _Episode:
    """The worker-side state of the running episode."""

    def __init__(self, spec: EpisodeSpec, env, expert, max_steps: int, video, recording: Recording | None = None,
                 disturbance: Disturbance | None = None):
        self.spec, self.env, self.expert, self.max_steps, self.video = spec, env, expert, max_steps, video
        self.recording, self.disturbance = recording, disturbance
        self.steps = 0
        self.obs: dict | None = None


def _task_horizon(env, task: str, override: int) -> int:
    if override > 0:
        return override
    for source in (getattr(env, "horizon", None), getattr(getattr(env, "unwrapped", None), "horizon", None),
                   getattr(getattr(env, "spec", None), "max_episode_steps", None)):
        if source:
            return int(source)
    return int(TASKS[task].horizon)


class EnvHost:
    """One worker's envs (one per task, kept across episodes), its expert and the running episode.

    Transport-free: the pipe worker below and the Ray actor (rollouts/ray_pool.py) both serve requests through it.
    Every method returns exactly one reply tuple of the protocol above; env exceptions come back as ("error", ...).
    """

    def __init__(self, worker_id: int, spec: WorkerSpec):
        self.worker_id, self.spec = worker_id, spec
        self.make_env = load_callable(spec.env_factory)
        if spec.env_factory == "envs:make":
            _quiet_robosuite()
        self.make_expert = load_callable(spec.expert_factory) if spec.expert else None
        self.fault = _parse_fault(spec.fault)
        self.envs: dict[str, object] = {}
        self.episode: _Episode | None = None

    def handle(self, message: tuple) -> tuple:
        """One request (not "episode", which is two replies: begin_episode then run_episode) -> its reply."""
        start = time.perf_counter()
        try:
            if message[0] == "reset":
                self._new_episode(message[1])
                return ("obs", _outgoing(self.episode.obs, self.spec), time.perf_counter() - start)
            if message[0] == "step":
                if self.episode is None:
                    raise RuntimeError("step before reset")
                episode = self.episode
                _maybe_fault(self.fault, episode)
                done, success = _step(episode, message[1])
                if done:
                    self.episode = None
                return ("step", _outgoing(episode.obs, self.spec), done, success, episode.steps,
                        time.perf_counter() - start)
            if message[0] == "begin_episode":
                return self.begin_episode(message[1])
            if message[0] == "run_episode":
                return self.run_episode()
            raise ValueError(f"unknown request {message[0]!r}")
        except Exception as exc:  # reported, not raised: the parent decides to restart and rerun
            return _error_reply(exc)

    def begin_episode(self, spec: EpisodeSpec) -> tuple:
        """Whole-episode mode, first half: the (possibly slow, scene-building) reset -> ("started", reset_seconds).

        The parent switches from the reset timeout to the episode timeout when this reply arrives.
        """
        start = time.perf_counter()
        try:
            self._new_episode(spec)
            return ("started", time.perf_counter() - start)
        except Exception as exc:
            return _error_reply(exc)

    def run_episode(self) -> tuple:
        """Whole-episode mode, second half: the expert acts until the episode ends -> ("episode", ...)."""
        start = time.perf_counter()
        episode, self.episode = self.episode, None
        try:
            if episode is None:
                raise RuntimeError("run_episode before begin_episode")
            done = success = False
            while not done:
                _maybe_fault(self.fault, episode)
                done, success = _step(episode, None)
        except Exception as exc:
            if episode is not None and episode.video is not None:
                episode.video.discard()  # a half-written video of an episode that will be rerun
            return _error_reply(exc)
        # Only a success is worth its frames' trip to the parent: collection keeps nothing of a failure.
        recording = episode.recording.stacked() if success and episode.recording is not None else None
        return ("episode", success, episode.steps, time.perf_counter() - start, recording)

    def _new_episode(self, spec: EpisodeSpec) -> None:
        """Reset into a new episode (the env for its task built on first use), dropping any unfinished one."""
        self._drop_episode()
        self.episode = _reset(spec, self.spec, self.envs, self.make_env, self.make_expert, self.worker_id)

    def _drop_episode(self) -> None:
        if self.episode is not None and self.episode.video is not None:
            self.episode.video.discard()
        self.episode = None

    def close(self) -> None:
        for env in self.envs.values():
            try:
                env.close()
            except Exception:
                pass


def _error_reply(exc: Exception) -> tuple:
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return ("error", f"{type(exc).__name__}: {exc} (at {Path(last.filename).name}:{last.lineno})")


def worker_main(worker_id: int, spec: WorkerSpec, conn) -> None:
    """Serve reset/step/episode requests over the pipe until told to close or the pipe breaks."""
    host = EnvHost(worker_id, spec)
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if message[0] == "close":
            break
        if message[0] == "episode":  # two replies, so no per-step messages but a fresh timeout after the reset
            reply = host.begin_episode(message[1])
            conn.send(reply)
            if reply[0] == "started":
                conn.send(host.run_episode())
        else:
            conn.send(host.handle(message))
    host.close()


def _maybe_fault(fault: tuple[str, int, int] | None, episode: _Episode) -> None:
    """Test-only: crash or hang before the configured step of the configured episode's first attempt."""
    if fault and episode.spec.attempt == 0 and episode.spec.index == fault[1] and episode.steps == fault[2]:
        if fault[0] == "crash":
            os._exit(17)
        time.sleep(10**6)


def _quiet_robosuite() -> None:
    # robosuite logs each controller load at INFO: a line per scene per worker, interleaved with the progress bar.
    import robosuite  # noqa: F401  (its import installs the handler whose level is lowered here)

    logging.getLogger("robosuite_logs").setLevel(logging.WARNING)


def _reset(spec: EpisodeSpec, wspec: WorkerSpec, envs: dict, make_env, make_expert, worker_id: int) -> _Episode:
    if spec.task not in envs:
        # One env per task, kept across episodes: building a scene costs far more than resetting it.
        kwargs = dict(backend=wspec.backend, spec=wspec.observation, render=wspec.render)
        if wspec.horizon:
            kwargs["horizon"] = wspec.horizon
        envs[spec.task] = make_env(spec.task, **kwargs)
    env = envs[spec.task]
    obs, _ = env.reset(seed=spec.seed)
    expert = None
    if make_expert is not None:
        # Built per episode: its constructor starts the episode from the seed, as one expert reset(seed=...) per
        # episode does, so an expert rollout of seed S is the demo that collection records for seed S.
        expert = make_expert(spec.task, env, seed=spec.seed)
    video = None
    if wspec.video_dir:
        path = Path(wspec.video_dir) / spec.task / f"seed{spec.base_seed}_ep{spec.index:04d}.mp4"
        video = EpisodeVideo(path, str(obs.get("task", spec.task)))
        video.add(obs, 0)
    recording = None
    if wspec.record:
        recording = Recording(str(obs[TASK_KEY]), {key: [] for key in wspec.observation.image_keys}, [], [])
    disturbance = Disturbance(wspec.disturbance, spec.seed) if expert is not None and wspec.disturbance else None
    episode = _Episode(spec, env, expert, _task_horizon(env, spec.task, wspec.horizon), video, recording, disturbance)
    episode.obs = obs
    return episode


def _step(episode: _Episode, action) -> tuple[bool, bool]:
    if action is None:
        if episode.expert is None:
            raise RuntimeError("no action sent and this worker runs no expert")
        action = episode.expert.select_action(episode.obs)
    action = np.asarray(action, dtype=np.float32)
    if episode.recording is not None:
        episode.recording.add(episode.obs, action)
    if episode.disturbance is not None:  # DART (expert workers only): the demo records the expert's action,
        action = episode.disturbance.apply(action)  # the env executes it pushed
    obs, _, terminated, truncated, info = episode.env.step(action)
    episode.steps += 1
    episode.obs = obs
    success = bool(info.get("success", False))
    # Stop at first success, as RoboCasa's evaluation does; later steps cannot change the outcome.
    done = success or bool(terminated) or bool(truncated) or episode.steps >= episode.max_steps
    if episode.video is not None:
        episode.video.add(obs, episode.steps)
        if done:
            episode.video.finish(success, episode.steps)
    return done, success


def _outgoing(obs: dict | None, spec: WorkerSpec) -> dict | None:
    return obs if spec.send_obs else None
