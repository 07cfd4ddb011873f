"""The tasks in Gymnasium's registry: gymnasium.make("xvr_vla/TurnOffMicrowave-v0") and make_vec."""

from __future__ import annotations

import gymnasium as gym

from contract.embodiments import CAMERA_NAMES, IMAGE_SIZE
from envs.registry import TASKS

NAMESPACE = "xvr_vla"
VERSION = 0
ENTRY_POINT = "envs.gym_env:KitchenGymEnv"


def gym_id(task: str) -> str:
    """The Gymnasium id of a task, e.g. xvr_vla/TurnOffMicrowave-v0."""
    return f"{NAMESPACE}/{task}-v{VERSION}"


def register_tasks() -> None:
    """Register every task (horizon as max_episode_steps; task, image size and cameras as kwargs); idempotent."""
    for name, spec in TASKS.items():
        if gym_id(name) in gym.registry:
            continue
        gym.register(
            id=gym_id(name),
            entry_point=ENTRY_POINT,
            max_episode_steps=spec.horizon,
            kwargs={"task": name, "image_size": IMAGE_SIZE, "cameras": CAMERA_NAMES},
        )
