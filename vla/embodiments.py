"""Observation/action contract and the embodiment registry, as data (no torch import).

Envs, datasets, the model, rollouts and the ROS bridge all read their keys, shapes and normalization modes from
here, so a layout is declared once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

FPS = 20
ACTION_HORIZON = 16
IMAGE_SIZE = 256  # data is written at this size; the model resizes

CAMERA_NAMES = ("left", "right", "wrist")
IMAGE_KEYS = tuple(f"observation.images.{name}" for name in CAMERA_NAMES)
STATE_KEY = "observation.state"
ACTION_KEY = "action"
TASK_KEY = "task"

MAX_STATE_DIM = 64
MAX_ACTION_DIM = 32
MAX_EMBODIMENTS = 32


@dataclass(frozen=True)
class Slice:
    """A named run of dimensions inside a state or action vector."""

    name: str
    start: int
    stop: int

    @property
    def width(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Embodiment:
    """One robot's state/action layout and how each part is normalized.

    Normalization modes: "identity", "mean_std", "min_max", "q01_q99" (both to [-1, 1]) and "binary" (gripper:
    thresholded at 0 to -1/+1 after normalization).
    """

    name: str
    id: int
    cameras: tuple[str, ...]
    state_layout: tuple[Slice, ...]
    action_layout: tuple[Slice, ...]
    state_normalization: dict[str, str] = field(default_factory=dict)
    action_normalization: dict[str, str] = field(default_factory=dict)

    @property
    def state_dim(self) -> int:
        return self.state_layout[-1].stop

    @property
    def action_dim(self) -> int:
        return self.action_layout[-1].stop

    def state_slice(self, name: str) -> Slice:
        return _find(self.state_layout, name, f"{self.name} state")

    def action_slice(self, name: str) -> Slice:
        return _find(self.action_layout, name, f"{self.name} action")


def _find(layout: tuple[Slice, ...], name: str, what: str) -> Slice:
    for part in layout:
        if part.name == name:
            return part
    raise KeyError(f"{what} has no part {name!r}; parts: {[p.name for p in layout]}")


def _layout(*parts: tuple[str, int]) -> tuple[Slice, ...]:
    out, start = [], 0
    for name, width in parts:
        out.append(Slice(name, start, start + width))
        start += width
    return tuple(out)


# RoboCasa PandaOmron (REFERENCE.md section 2): 16-D state as used by GR00T, 12-D action in RoboCasa's order.
ROBOCASA_PANDA_OMRON = Embodiment(
    name="robocasa_panda_omron",
    id=0,
    cameras=CAMERA_NAMES,
    state_layout=_layout(
        ("base_pos", 3), ("base_quat", 4), ("eef_pos_rel_base", 3), ("eef_quat_rel_base", 4), ("gripper_qpos", 2)
    ),
    action_layout=_layout(
        ("eef_delta_pos", 3), ("eef_delta_rot", 3), ("gripper", 1), ("base_vel", 3), ("torso", 1), ("base_mode", 1)
    ),
    state_normalization={
        "base_pos": "min_max",
        "base_quat": "identity",
        "eef_pos_rel_base": "min_max",
        "eef_quat_rel_base": "identity",
        "gripper_qpos": "min_max",
    },
    action_normalization={
        "eef_delta_pos": "min_max",
        "eef_delta_rot": "min_max",
        "gripper": "binary",
        "base_vel": "min_max",
        "torso": "min_max",
        "base_mode": "binary",
    },
)

# A real Franka Panda under a Cartesian impedance controller: the arm part of the same action (eef delta pose 6 +
# gripper 1); state is eef pose in the robot base frame plus the two finger positions.
FRANKA_PANDA = Embodiment(
    name="franka_panda",
    id=1,
    cameras=CAMERA_NAMES,
    state_layout=_layout(("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2)),
    action_layout=_layout(("eef_delta_pos", 3), ("eef_delta_rot", 3), ("gripper", 1)),
    state_normalization={"eef_pos": "min_max", "eef_quat": "identity", "gripper_qpos": "min_max"},
    action_normalization={"eef_delta_pos": "min_max", "eef_delta_rot": "min_max", "gripper": "binary"},
)

EMBODIMENTS: dict[str, Embodiment] = {e.name: e for e in (ROBOCASA_PANDA_OMRON, FRANKA_PANDA)}


def did_you_mean(name: str, choices) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_embodiment(name: str) -> Embodiment:
    """Look an embodiment up by name; unknown names fail with the valid ones listed."""
    if name not in EMBODIMENTS:
        raise ValueError(
            f"unknown embodiment {name!r}{did_you_mean(name, EMBODIMENTS)}; valid: {', '.join(EMBODIMENTS)}"
        )
    return EMBODIMENTS[name]
