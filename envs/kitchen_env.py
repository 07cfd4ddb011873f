"""Shared base of the built-in kitchen tasks: robosuite's PandaOmron with its OSC controller in a MuJoCo kitchen.

The robot stands at the world origin facing +x; fixtures come from envs.fixtures. Resets are always soft (the
model is compiled once) and per-episode variation edits model fields, so a reset costs milliseconds and the
render context survives. Tasks subclass KitchenEnv and fill in the scene, the randomization and success.
"""

from __future__ import annotations

import copy
import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import ClassVar

import mujoco
import numpy as np
from robosuite.controllers import load_composite_controller_config
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import EmptyArena
from robosuite.models.tasks import ManipulationTask
from robosuite.utils import transform_utils as T

from contract.embodiments import CAMERA_NAMES, IMAGE_SIZE, ROBOCASA_PANDA_OMRON
from envs.action_layout import robosuite_permutation
from envs.meshes import decimate_visual_meshes
from envs.rendering import FastRenderer

ARM_INIT_QPOS = (-0.016, -1.034, -0.024, -2.276, 0.039, 1.516, 0.696)  # RoboCasa's PandaOmron start pose
CAMERA_MJCF_NAMES = {"left": "robot0_agentview_left", "right": "robot0_agentview_right", "wrist": "robot0_eye_in_hand"}
ACTION_DIM = ROBOCASA_PANDA_OMRON.action_dim
STATE_DIM = ROBOCASA_PANDA_OMRON.state_dim



@dataclass(frozen=True)
class Landmark:
    """A named point in the world and the geoms that belong to it (they do not occlude it)."""

    position: np.ndarray
    geoms: np.ndarray


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes one built-in env instance."""

    image_size: int = IMAGE_SIZE
    cameras: tuple[str, ...] = CAMERA_NAMES
    render: bool = True
    horizon: int = 500
    arm_init_noise: float = 0.02  # rad, per joint, N(0, sigma) as in RoboCasa
    decimate_meshes: bool = True


@functools.lru_cache(maxsize=1)
def _cached_controller_config() -> dict:
    return load_composite_controller_config(robot="PandaOmron")


def _controller_config() -> dict:
    """RoboCasa's PandaOmron controller (OSC_POSE arm, 0.05 m / 0.5 rad per unit); loaded once, copied per env."""
    return copy.deepcopy(_cached_controller_config())


def _look_at_xyaxes(pos, target) -> str:
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    x = np.cross(forward, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    return " ".join(f"{v:.5f}" for v in (*x, *y))


# Agent views ride on the mobile base, beside the arm, framing both the counter and the wall cabinet (60 deg fov).
_AGENTVIEW_POSES = {
    "robot0_agentview_left": ((-0.05, 0.55, 1.55), (0.75, -0.1, 1.28)),
    "robot0_agentview_right": ((-0.05, -0.55, 1.55), (0.75, 0.1, 1.28)),
}


class KitchenEnv(ManipulationEnv):
    """PandaOmron kitchen scene; subclasses add fixtures, reset randomization, state updates and success."""

    task_name: ClassVar[str] = ""

    def __init__(self, config: SimConfig = SimConfig(), seed: int | None = None):
        self.config = config
        self.task_rng = np.random.default_rng()
        self.instruction = ""
        super().__init__(
            robots="PandaOmron",
            controller_configs=_controller_config(),
            initialization_noise={"magnitude": config.arm_init_noise, "type": "gaussian"},
            use_camera_obs=False,
            has_renderer=False,
            has_offscreen_renderer=False,
            hard_reset=False,
            ignore_done=True,
            control_freq=20,
            horizon=config.horizon,
            lite_physics=True,
            seed=seed,
        )
        self.to_robosuite = robosuite_permutation(dict(self.robots[0].composite_controller._action_split_indexes))
        # Made on the first render: building an env (AsyncVectorEnv builds one in its parent process to read the
        # spaces) then starts no GL context that forked workers would inherit (see envs.rendering).
        self.image_renderer: FastRenderer | None = None
        self.seed_episode(seed)

    # ----- model -----
    def _load_model(self):
        super()._load_model()
        robot = self.robots[0]
        robot.init_qpos = np.array(ARM_INIT_QPOS)
        robot.robot_model.set_base_xpos([0.0, 0.0, 0.0])
        arena = EmptyArena()
        arena.set_origin([0, 0, 0])
        self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[robot.robot_model])
        world = self.model.worldbody
        base = world.find(".//body[@name='mobilebase0_base']")
        for name, (pos, target) in _AGENTVIEW_POSES.items():
            ET.SubElement(base, "camera", name=name, mode="fixed", fovy="60",
                          pos=" ".join(map(str, pos)), xyaxes=_look_at_xyaxes(pos, target))
        for body in self.build_fixtures():
            world.append(body)
        if self.config.decimate_meshes:
            decimate_visual_meshes(self.model.root)

    def build_fixtures(self) -> list[ET.Element]:
        """MJCF bodies of the task's fixtures and objects."""
        raise NotImplementedError

    def _setup_references(self):
        super()._setup_references()
        # robosuite calls this on every reset; the model never changes (soft resets), and default values captured
        # here must be the compiled ones, not the last episode's randomized ones.
        if getattr(self, "_references_ready", False):
            return
        self._references_ready = True
        m = self.sim.model._model
        self.mj_model, self.mj_data = m, self.sim.data._data
        in_gripper = [m.body(m.geom_bodyid[g]).name.startswith("gripper0_") for g in range(m.ngeom)]
        self.gripper_geoms = np.flatnonzero(in_gripper)
        self.eef_site = m.site("gripper0_right_grip_site").id
        self.base_site = m.site("mobilebase0_center").id
        self.eef_body = m.body(self.robots[0].robot_model.eef_name["right"]).id
        self.gripper_qpos_adr = np.array([m.jnt_qposadr[m.joint(j).id] for j in
                                          ("gripper0_right_finger_joint1", "gripper0_right_finger_joint2")])
        self._default_light = m.light_diffuse.copy()
        self.fixture_home: dict[str, np.ndarray] = {}  # compiled fixture positions, before any randomization
        self.setup_task_references()

    def setup_task_references(self) -> None:
        """Look up the task's geoms, sites and joints once, after the model is compiled."""

    # ----- episode -----
    def seed_episode(self, seed: int | None) -> None:
        """Reseed the robot-noise and task-randomization streams (None: fresh entropy)."""
        robot_seq, task_seq = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.default_rng(robot_seq)
        self.task_rng = np.random.default_rng(task_seq)

    def _reset_internal(self):
        super()._reset_internal()
        # The Panda gripper integrates its command; without this a new episode inherits the last grip.
        for gripper in self.robots[0].gripper.values():
            gripper.current_action = np.zeros_like(gripper.current_action)
        m = self.mj_model
        m.light_diffuse[:] = self._default_light * self.task_rng.uniform(0.75, 1.15)
        self.randomize_scene(self.task_rng)
        mujoco.mj_forward(m, self.mj_data)

    def randomize_scene(self, rng: np.random.Generator) -> None:
        """Place fixtures and objects for a new episode and set self.instruction."""
        raise NotImplementedError

    def _post_action(self, action):
        self.update_fixture_state()
        return super()._post_action(action)

    def update_fixture_state(self) -> None:
        """Advance latched fixture state (buttons) after each control step."""

    def reward(self, action=None) -> float:
        return float(self._check_success())

    # robosuite's observables are unused (the gym wrapper builds the contract), so skip their per-substep cost.
    def _update_observables(self, force=False):
        pass

    def _get_observations(self, force_update=False):
        return {}

    # ----- queries -----
    def step_robot(self, action12: np.ndarray) -> None:
        """Advance one control step with a validated 12-D RoboCasa-layout action."""
        self.step(np.asarray(action12, np.float64)[self.to_robosuite])

    def render_images(self) -> dict[str, np.ndarray]:
        """Camera images keyed by short name (left/right/wrist); empty when rendering is off."""
        if not self.config.render:
            return {}
        if self.image_renderer is None:
            cams = {key: CAMERA_MJCF_NAMES[key] for key in self.config.cameras}
            self.image_renderer = FastRenderer(self.mj_model, cams, self.config.image_size, self.config.image_size)
        return self.image_renderer.render(self.mj_data)

    def robot_state(self) -> np.ndarray:
        """16-D state: base pos, base quat, eef pos rel. base, eef quat rel. base (quats xyzw), gripper qpos."""
        d = self.mj_data
        base_pos = d.site_xpos[self.base_site]
        base_mat = d.site_xmat[self.base_site].reshape(3, 3)
        eef_rel = base_mat.T @ (d.site_xpos[self.eef_site] - base_pos)
        eef_mat = d.xmat[self.eef_body].reshape(3, 3)
        state = np.concatenate([
            base_pos, T.mat2quat(base_mat), eef_rel, T.mat2quat(base_mat.T @ eef_mat), d.qpos[self.gripper_qpos_adr],
        ])
        return state.astype(np.float32)

    def eef_pos(self) -> np.ndarray:
        return self.mj_data.site_xpos[self.eef_site].copy()

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Ground-truth poses for scripted experts: eef, base, gripper, plus the task's fixtures and objects."""
        d = self.mj_data
        state = {
            "eef_pos": self.eef_pos(),
            "eef_mat": d.site_xmat[self.eef_site].reshape(3, 3).copy(),
            "base_pos": d.site_xpos[self.base_site].copy(),
            "base_mat": d.site_xmat[self.base_site].reshape(3, 3).copy(),
            "gripper_qpos": d.qpos[self.gripper_qpos_adr].copy(),
        }
        state.update(self.task_state())
        return state

    def task_state(self) -> dict[str, np.ndarray]:
        """Task-specific privileged state."""
        return {}

    def landmarks(self) -> dict[str, Landmark]:
        """Named 3D points a person could point at in the cameras (ground truth for grounding questions)."""
        points = {"gripper": Landmark(self.eef_pos(), self.gripper_geoms)}
        points.update(self.task_landmarks())
        return points

    def task_landmarks(self) -> dict[str, Landmark]:
        """The task's own landmarks (buttons, objects), keyed by how an instruction names them."""
        return {}

    def touching(self, geoms_a: np.ndarray, geoms_b: np.ndarray) -> bool:
        """Whether any current contact pairs a geom of geoms_a with one of geoms_b."""
        d = self.mj_data
        if d.ncon == 0:
            return False
        pairs = d.contact.geom[: d.ncon]
        a0, a1 = np.isin(pairs[:, 0], geoms_a), np.isin(pairs[:, 1], geoms_a)
        b0, b1 = np.isin(pairs[:, 0], geoms_b), np.isin(pairs[:, 1], geoms_b)
        return bool(np.any((a0 & b1) | (a1 & b0)))

    def geom_ids(self, *names: str) -> np.ndarray:
        return np.array([self.mj_model.geom(n).id for n in names])

    def close(self):
        if self.image_renderer is not None:
            self.image_renderer.close()
            self.image_renderer = None
        super().close()
