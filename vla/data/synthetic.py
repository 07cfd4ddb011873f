"""Synthetic episodes in the contract's shapes, for tests and for trying the pipeline without a simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.embodiments import IMAGE_KEYS, get_embodiment
from contract.spec import ObservationSpec
from vla.data.schema import TASK_INSTRUCTIONS
from vla.data.writer import DatasetWriter, Episode


def synthetic_episode(length: int, seed: int, image_size: int = 64, task_name: str = "TurnOffMicrowave",
                      embodiment: str = "robocasa_panda_omron") -> Episode:
    """A smooth random trajectory with images whose brightness tracks time (so frames are distinguishable)."""
    robot = get_embodiment(embodiment)
    rng = np.random.default_rng(seed)
    state = np.cumsum(rng.normal(0, 0.01, (length, robot.state_dim)), 0).astype(np.float32)
    action = rng.uniform(-1, 1, (length, robot.action_dim)).astype(np.float32)
    if embodiment == "robocasa_panda_omron":
        action[:, 6] = np.where(np.arange(length) > length // 2, 1.0, -1.0)  # gripper closes half-way
        action[:, 7:11] = 0.0  # the base never moves in demos
        action[:, 11] = -1.0
    ramp = (np.arange(length) * 255 // max(1, length - 1)).astype(np.uint8)
    images = {}
    for c, key in enumerate(IMAGE_KEYS):
        img = rng.integers(0, 40, (length, image_size, image_size, 3), dtype=np.uint8)
        img[..., c] = ramp[:, None, None]
        images[key] = img
    instruction = TASK_INSTRUCTIONS.get(task_name, task_name).format(obj="apple")
    return Episode(images=images, state=state, action=action, instruction=instruction, task_name=task_name,
                   seed=seed)


def write_synthetic_dataset(root: str | Path, num_episodes: int = 3, length: int = 20, image_size: int = 64,
                            tasks: tuple[str, ...] = ("TurnOffMicrowave",)) -> Path:
    """Write a small dataset of synthetic episodes (tasks assigned round-robin); returns its root."""
    spec = ObservationSpec(image_size=image_size)
    with DatasetWriter(root, spec, source="synthetic") as writer:
        for i in range(writer.num_episodes, num_episodes):
            writer.add_episode(synthetic_episode(length + i, seed=i, image_size=image_size,
                                                 task_name=tasks[i % len(tasks)]))
    return Path(root)
