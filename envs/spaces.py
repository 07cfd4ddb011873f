"""Gymnasium spaces of the observation/action contract, with the bounds the robot and the kitchen give."""

from __future__ import annotations

import string
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import read_from_shared_memory

from contract.embodiments import ROBOCASA_PANDA_OMRON, STATE_KEY, TASK_KEY

# Instructions are plain English: letters, digits, spaces and sentence punctuation (RoboCasa's included).
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " .,;:'\"-_()/!?"
MAX_INSTRUCTION_LENGTH = 256

# Per part of the 16-D state, (low, high). Positions are in metres; the quaternions are unit length.
STATE_BOUNDS: dict[str, tuple[list[float], list[float]]] = {
    # The kitchen floor is a 6 m square around the start; the base covers about 1 m in a 500-step episode at full
    # speed. The base site rides on the torso lift, about 0.9-1.25 m up.
    "base_pos": ([-3.0, -3.0, 0.0], [3.0, 3.0, 2.0]),
    "base_quat": ([-1.0] * 4, [1.0] * 4),
    # Torso lift (0.34 m) plus the Panda's reach with its gripper (about 1.3 m), with margin.
    "eef_pos_rel_base": ([-2.0] * 3, [2.0] * 3),
    "eef_quat_rel_base": ([-1.0] * 4, [1.0] * 4),
    # Finger joint ranges [0, 0.04] and [-0.04, 0], padded for contact penetration.
    "gripper_qpos": ([-0.01, -0.05], [0.05, 0.01]),
}


class InstructionText(gym.spaces.Text):
    """The Text space of instructions, read live from AsyncVectorEnv's shared memory.

    Gymnasium 1.4's AsyncVectorEnv decodes a Text entry of its shared memory once, when it starts, and hands that
    same tuple out on every reset and step (arrays are views, strings are not): every instruction would read as
    the empty buffer, "aaa...". Here the batch decodes the buffer whenever it is read.
    """


class _LiveInstructions(Sequence):
    """The instructions of a vector env's sub-envs, decoded from its shared buffer on access."""

    def __init__(self, space: InstructionText, shared_memory, n: int):
        self._space, self._rows = space, np.frombuffer(shared_memory.get_obj(), np.int32).reshape(n, space.max_length)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self)[index]
        return gym.spaces.utils.unflatten(self._space, self._rows[index])

    def __deepcopy__(self, memo) -> tuple[str, ...]:  # AsyncVectorEnv(copy=True) returns deepcopies: plain tuples
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(InstructionText)
def _read_instructions(space: InstructionText, shared_memory, n: int = 1) -> _LiveInstructions:
    return _LiveInstructions(space, shared_memory, n)


def instruction_space() -> InstructionText:
    """The `task` entry: a non-empty instruction over INSTRUCTION_CHARSET."""
    return InstructionText(min_length=1, max_length=MAX_INSTRUCTION_LENGTH, charset=INSTRUCTION_CHARSET)


def state_space() -> gym.spaces.Box:
    """The 16-D float32 state, bounded part by part in the order of the embodiment's state layout."""
    low, high = [], []
    for part in ROBOCASA_PANDA_OMRON.state_layout:
        part_low, part_high = STATE_BOUNDS[part.name]
        if len(part_low) != part.width:
            raise RuntimeError(f"STATE_BOUNDS[{part.name!r}] has {len(part_low)} entries, the layout {part.width}")
        low += part_low
        high += part_high
    return gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)


def observation_space(cameras: tuple[str, ...], image_size: int) -> gym.spaces.Dict:
    """observation.images.{cam} (uint8 HxWx3) for each camera, observation.state and task."""
    spaces: dict[str, gym.spaces.Space] = {
        f"observation.images.{cam}": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8) for cam in cameras
    }
    spaces[STATE_KEY] = state_space()
    spaces[TASK_KEY] = instruction_space()
    return gym.spaces.Dict(spaces)


def action_space() -> gym.spaces.Box:
    """The 12-D float32 action in RoboCasa's layout, each channel in [-1, 1]."""
    return gym.spaces.Box(-1.0, 1.0, (ROBOCASA_PANDA_OMRON.action_dim,), np.float32)
