"""Envs: the task registry, the built-in MuJoCo kitchen tasks and the RoboCasa adapter, behind one make()."""

from __future__ import annotations

import dataclasses
import logging
import os

# Headless EGL rendering (Mesa's software renderer without a GPU), as every entry point of the project sets it; it
# must be chosen before mujoco is first imported. Without it mujoco picks GLFW, which needs a display. A MUJOCO_GL
# of the user's own wins.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym

from envs.gym_registration import NAMESPACE, gym_id, register_tasks
from envs.registry import BACKENDS, TASKS, TaskSpec, check_backend, get_task, list_tasks
from envs.robocasa_backend import RoboCasaGymEnv
from contract.spec import ObservationSpec

__all__ = ["BACKENDS", "NAMESPACE", "TASKS", "TaskSpec", "list_tasks", "get_task", "gym_id", "make", "env_spec"]

register_tasks()

# robosuite announces optional parts we do not use (private macros, robosuite_models, mink IK) and every
# controller file it loads, in every process: noise that buries progress bars and tables. Its own warnings
# about real problems still show. A filter, because robosuite resets its logger's level when it builds it.
_ROBOSUITE_SETUP_NOTICES = (
    "No private macro file found", "It is recommended to use a private macro file", "To setup, run:",
    "Could not import robosuite_models", "Could not load the mink-based whole-body IK",
)


def _quiet_robosuite_setup(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return record.levelno > logging.INFO and not message.startswith(_ROBOSUITE_SETUP_NOTICES)


logging.getLogger("robosuite_logs").addFilter(_quiet_robosuite_setup)


def env_spec(spec: ObservationSpec | None = None, image_size: int | None = None, cameras=None) -> ObservationSpec:
    """The spec an env renders: `spec` (default: the contract's), with image_size / cameras replaced when given."""
    spec = spec or ObservationSpec()
    changes = {k: v for k, v in (("image_size", image_size), ("cameras", cameras)) if v is not None}
    return spec.replace(**changes) if changes else spec


def make(task: str, backend: str = "builtin", *, spec: ObservationSpec | None = None, image_size: int | None = None,
         cameras=None, render: bool = True, seed: int | None = None, horizon: int | None = None,
         render_mode: str | None = None):
    """Build a gymnasium env for a task: obs keys observation.images.{cam}, observation.state, task.

    `spec` sets the cameras and the image size (default: the contract's); `image_size` and `cameras` replace its
    fields. It truncates itself at `horizon` (default: the task's). gymnasium.make(gym_id(task)) builds the same
    env, truncated by Gymnasium's TimeLimit instead; with the same seeds both give the same episodes.
    """
    task_spec = get_task(task)
    check_backend(backend)
    spec = env_spec(spec, image_size, cameras)
    horizon = int(horizon or task_spec.horizon)
    if backend == "robocasa":
        return RoboCasaGymEnv(task, spec, render, seed, horizon)
    from envs.gym_env import KitchenGymEnv  # robosuite and mujoco: `import envs` (the task registry) stays light

    kwargs = dict(task=task, image_size=spec.image_size, cameras=spec.cameras, render=render, seed=seed)
    env = KitchenGymEnv(**kwargs, horizon=horizon, render_mode=render_mode)
    # The registered spec with this env's arguments, so env.spec.make(...) (as check_env does) rebuilds it.
    env.spec = dataclasses.replace(gym.spec(gym_id(task)), kwargs=kwargs, max_episode_steps=horizon)
    return env
