"""The explicit mapping between a policy's embodiment and a real Franka Panda under Cartesian impedance control.

State. `robocasa_panda_omron` (16-D): the mobile base is fixed (`base_pos`, `base_quat`); the end effector is
expressed in that base frame through `mount` (where panda_link0 sits on the simulated base) and `ee_offset`
(the sim's end-effector frame in Franka's EE frame); the two gripper joints follow robosuite's PandaGripper sign
convention (+w/2, -w/2), while franka_gripper reports both fingers positive. `franka_panda` (9-D): the EE pose in
panda_link0 and both finger positions as the robot reports them.

Action. The arm part (eef delta position 3, delta rotation 3 as axis-angle, gripper 1) becomes an absolute target
pose the way robosuite's OSC_POSE controller (input_ref_frame "base") reads it: the delta is clipped to [-1, 1],
scaled by 0.05 m / 0.5 rad, added to the measured position and applied on the left of the measured orientation,
both in the base frame. In the 12-D layout the base channels (velocity 3, torso 1) are ignored and the mode
channel must say "arm" (<= 0); an action asking for base motion is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.geometry import Pose, axis_angle_to_mat, mat_to_axis_angle, mat_to_quat, quat_to_mat
from contract.embodiments import get_embodiment

SUPPORTED = ("robocasa_panda_omron", "franka_panda")


class ActionRejected(ValueError):
    """An action that must not be turned into a command (malformed, non-finite, or asking for base motion)."""


@dataclass(frozen=True)
class MappingConfig:
    """Fixed frames and scales of the mapping (see the module doc)."""

    # Measured in the project's simulator (envs, PandaOmron at reset): the base's state reads (0, 0, 0.9) with no
    # rotation, panda_link0 coincides with the base frame, and the grip site has Franka's EE orientation (FK with
    # Franka's DH parameters and default 0.1034 m EE offset) but sits 6.9 mm closer to the flange.
    base_pos: tuple[float, float, float] = (0.0, 0.0, 0.9)  # the simulated mobile base, world frame
    base_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # xyzw
    mount_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)  # panda_link0 in the simulated base frame
    mount_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    ee_offset_pos: tuple[float, float, float] = (0.0, 0.0, -0.0069)  # sim EE frame in Franka's EE frame
    ee_offset_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    pos_scale: float = 0.05  # m per unit of the delta position (robosuite OSC_POSE output_max)
    rot_scale: float = 0.5  # rad per unit of the delta rotation


class ArmMapping:
    """State in, target out, for one policy embodiment."""

    def __init__(self, embodiment: str, config: MappingConfig = MappingConfig()):
        if embodiment not in SUPPORTED:
            raise ValueError(f"the Franka bridge maps embodiments {', '.join(SUPPORTED)}; got {embodiment!r}")
        self.embodiment = get_embodiment(embodiment)
        self.config = config
        self.base = Pose.from_pos_quat(config.base_pos, config.base_quat)
        # link0 in the frame the policy's state and deltas are expressed in: the simulated base, or link0 itself.
        self.frame = Pose.from_pos_quat(config.mount_pos, config.mount_quat) if embodiment != "franka_panda" \
            else Pose(np.zeros(3), np.eye(3))
        self.ee_offset = Pose.from_pos_quat(config.ee_offset_pos, config.ee_offset_quat) \
            if embodiment != "franka_panda" else Pose(np.zeros(3), np.eye(3))

    def state(self, ee_in_link0: Pose, fingers) -> np.ndarray:
        """The policy's state vector from Franka's O_T_EE pose and the two finger joint positions (m, both >= 0)."""
        fingers = np.asarray(fingers, dtype=float)
        if fingers.shape != (2,) or not np.isfinite(fingers).all():
            raise ValueError(f"finger positions must be 2 finite values; got {fingers.tolist()}")
        ee = self.frame @ ee_in_link0 @ self.ee_offset
        if self.embodiment.name == "franka_panda":
            state = np.concatenate([ee.pos, mat_to_quat(ee.rot), fingers])
        else:
            state = np.concatenate([self.base.pos, mat_to_quat(self.base.rot), ee.pos, mat_to_quat(ee.rot),
                                    [fingers[0], -fingers[1]]])
        return state.astype(np.float32)

    def target(self, action, measured_in_link0: Pose) -> tuple[Pose, float]:
        """(absolute EE target in panda_link0, gripper value > 0 close) from one policy action; ActionRejected if bad."""
        try:
            action = np.asarray(action, dtype=float)
        except (TypeError, ValueError):
            raise ActionRejected("action is not numeric") from None
        emb = self.embodiment
        if action.shape != (emb.action_dim,):
            raise ActionRejected(f"action must have shape ({emb.action_dim},) for {emb.name}; got {action.shape}")
        if not np.isfinite(action).all():
            raise ActionRejected("action contains NaN or inf")
        if emb.name == "robocasa_panda_omron":
            mode = action[emb.action_slice("base_mode").start]
            if mode > 0:
                raise ActionRejected(f"action asks for base motion (mode channel {mode:+.2f} > 0); this arm has no base")
        dpos = np.clip(action[emb.action_slice("eef_delta_pos").start:][:3], -1, 1) * self.config.pos_scale
        drot = np.clip(action[emb.action_slice("eef_delta_rot").start:][:3], -1, 1) * self.config.rot_scale
        gripper = float(action[emb.action_slice("gripper").start])
        ee = self.frame @ measured_in_link0 @ self.ee_offset
        goal = Pose(ee.pos + dpos, axis_angle_to_mat(drot) @ ee.rot)
        return self.frame.inverse() @ goal @ self.ee_offset.inverse(), gripper

    def ee_in_link0(self, state) -> Pose:
        """The inverse of state(): Franka's O_T_EE (panda_link0) from a policy state vector (a simulator's)."""
        state = np.asarray(state, dtype=float)
        emb = self.embodiment
        if state.shape != (emb.state_dim,):
            raise ValueError(f"state must have shape ({emb.state_dim},) for {emb.name}; got {state.shape}")
        offset = 0 if emb.name == "franka_panda" else 7  # after the base's position and quaternion
        ee = Pose(state[offset:offset + 3], quat_to_mat(state[offset + 3:offset + 7]))
        return self.frame.inverse() @ ee @ self.ee_offset.inverse()

    def action_toward(self, target_in_link0: Pose, measured_in_link0: Pose, gripper: float) -> np.ndarray:
        """The inverse of target(): the action whose arm part moves from the measured pose toward the target (the
        delta clipped to what one action can ask), in arm mode; how a simulated impedance controller is driven."""
        goal = self.frame @ target_in_link0 @ self.ee_offset
        ee = self.frame @ measured_in_link0 @ self.ee_offset
        emb = self.embodiment
        action = np.zeros(emb.action_dim)
        pos, rot = emb.action_slice("eef_delta_pos").start, emb.action_slice("eef_delta_rot").start
        action[pos:pos + 3] = np.clip((goal.pos - ee.pos) / self.config.pos_scale, -1, 1)
        action[rot:rot + 3] = np.clip(mat_to_axis_angle(goal.rot @ ee.rot.T) / self.config.rot_scale, -1, 1)
        action[emb.action_slice("gripper").start] = gripper
        if emb.name == "robocasa_panda_omron":
            action[emb.action_slice("base_mode").start] = -1.0
        return action
