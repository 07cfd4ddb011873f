"""Envs: the task registry, the built-in MuJoCo kitchen tasks and the RoboCasa adapter, behind one make()."""

from __future__ import annotations

import logging

from envs.registry import BACKENDS, TASKS, TaskSpec, check_backend, get_task, list_tasks

__all__ = ["BACKENDS", "TASKS", "TaskSpec", "list_tasks", "get_task", "make"]

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


def make(task: str, backend: str = "builtin", *, image_size: int = 256, cameras=("left", "right", "wrist"),
         render: bool = True, seed: int | None = None, horizon: int | None = None):
    """Build a gymnasium env for a task: obs keys observation.images.{cam}, observation.state, task."""
    spec = get_task(task)
    check_backend(backend)
    from vla.embodiments import CAMERA_NAMES, did_you_mean

    cameras = tuple(cameras)
    for cam in cameras:
        if cam not in CAMERA_NAMES:
            hint = did_you_mean(cam, CAMERA_NAMES)
            raise ValueError(f"unknown camera {cam!r}{hint}; valid: {', '.join(CAMERA_NAMES)}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    horizon = int(horizon or spec.horizon)
    if backend == "robocasa":
        from envs.robocasa_backend import RoboCasaGymEnv

        return RoboCasaGymEnv(task, int(image_size), cameras, render, seed, horizon)
    from envs.gym_env import KitchenGymEnv
    from envs.kitchen_env import SimConfig
    from envs.tasks import TASK_CLASSES

    config = SimConfig(image_size=int(image_size), cameras=cameras, render=render, horizon=horizon)
    return KitchenGymEnv(TASK_CLASSES[task](config, seed=seed), horizon)
