"""Observation/action contract and the embodiment registry, as data (no torch import).

Envs, datasets, the model, rollouts and the ROS bridge all read their keys, shapes and normalization modes from
here, so a layout is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.lookup import lookup

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
class ForeignLayout:
    """Another tool's per-dimension feature names for an embodiment, each mapped to one of ours ('eef_delta_pos.0').

    A dataset whose `names` are these, in any order, is read by name; values are not rescaled (binary parts are
    thresholded at 0 by the normalizer, so GR00T's 0/1 gripper reads as our -1/+1).
    """

    name: str
    state: dict[str, str]
    action: dict[str, str]


@dataclass(frozen=True)
class Embodiment:
    """One robot's state/action layout and how each part is normalized.

    Normalization modes: "identity", "mean_std", "min_max", "q01_q99" (both to [-1, 1]), "binary" (gripper:
    thresholded at 0 to -1/+1 after normalization) and "quat_sign" (a quaternion given one of its two signs, so that
    the same rotation is one input: vla/data/normalize.py).
    """

    name: str
    id: int
    cameras: tuple[str, ...]
    state_layout: tuple[Slice, ...]
    action_layout: tuple[Slice, ...]
    state_normalization: dict[str, str] = field(default_factory=dict)
    action_normalization: dict[str, str] = field(default_factory=dict)
    foreign_layouts: tuple[ForeignLayout, ...] = ()

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

    def dim_names(self, which: str) -> list[str]:
        """Per-dimension names of "state" or "action" in this layout's order ('eef_delta_pos.0', ...)."""
        layout = self.state_layout if which == "state" else self.action_layout
        return [f"{part.name}.{i}" for part in layout for i in range(part.width)]


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


def _to_ours(part: str, *theirs: str) -> dict[str, str]:
    """{their name of each dimension of `part`: our name ('part.i')}."""
    return {name: f"{part}.{i}" for i, name in enumerate(theirs)}


# The names GR00T's (and RoboCasa's) LeRobot converters give the same 16 + 12 values, stored in their order
# (REFERENCE.md section 2): the action starts with the base (forward, side, yaw, torso) and the control mode.
GR00T_ROBOCASA = ForeignLayout(
    name="gr00t-robocasa",
    state={
        **_to_ours("base_pos", "base_position_x", "base_position_y", "base_position_z"),
        **_to_ours("base_quat", "base_rotation_qx", "base_rotation_qy", "base_rotation_qz", "base_rotation_qw"),
        **_to_ours("eef_pos_rel_base", "end_effector_position_relative_x", "end_effector_position_relative_y",
                   "end_effector_position_relative_z"),
        **_to_ours("eef_quat_rel_base", "end_effector_rotation_relative_qx", "end_effector_rotation_relative_qy",
                   "end_effector_rotation_relative_qz", "end_effector_rotation_relative_qw"),
        **_to_ours("gripper_qpos", "gripper_qpos_left", "gripper_qpos_right"),
    },
    action={
        **_to_ours("base_vel", "base_motion_forward", "base_motion_side", "base_motion_yaw"),
        **_to_ours("torso", "base_motion_torso"),
        **_to_ours("base_mode", "control_mode"),
        **_to_ours("eef_delta_pos", "end_effector_position_dx", "end_effector_position_dy",
                   "end_effector_position_dz"),
        **_to_ours("eef_delta_rot", "end_effector_rotation_drx", "end_effector_rotation_dry",
                   "end_effector_rotation_drz"),
        **_to_ours("gripper", "gripper_close"),
    },
)

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
        "eef_quat_rel_base": "quat_sign",
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
    foreign_layouts=(GR00T_ROBOCASA,),
)

# A real Franka Panda under a Cartesian impedance controller: the arm part of the same action (eef delta pose 6 +
# gripper 1); state is eef pose in the robot base frame plus the two finger positions.
FRANKA_PANDA = Embodiment(
    name="franka_panda",
    id=1,
    cameras=CAMERA_NAMES,
    state_layout=_layout(("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2)),
    action_layout=_layout(("eef_delta_pos", 3), ("eef_delta_rot", 3), ("gripper", 1)),
    state_normalization={"eef_pos": "min_max", "eef_quat": "quat_sign", "gripper_qpos": "min_max"},
    action_normalization={"eef_delta_pos": "min_max", "eef_delta_rot": "min_max", "gripper": "binary"},
)

EMBODIMENTS: dict[str, Embodiment] = {e.name: e for e in (ROBOCASA_PANDA_OMRON, FRANKA_PANDA)}


def get_embodiment(name: str) -> Embodiment:
    """Look an embodiment up by name; unknown names fail with the valid ones listed."""
    return lookup(EMBODIMENTS, name, "embodiment")
