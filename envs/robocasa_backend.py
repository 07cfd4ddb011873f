"""Adapter from a user's RoboCasa v0.2 install to the project's observation/action contract.

RoboCasa is not on PyPI and needs ~5 GB of assets, so it is optional: without it, make(backend="robocasa")
fails with one line saying how to install it. Task names are mapped so both v0.2 and v1.x installs work.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from contract.embodiments import ROBOCASA_PANDA_OMRON, STATE_KEY, TASK_KEY
from contract.spec import ObservationSpec
from envs.action_layout import robosuite_permutation
from envs.registry import get_task
from envs.spaces import action_space, observation_space
from envs.validation import check_action

INSTALL_HINT = (
    "the robocasa backend needs RoboCasa v0.2 and its kitchen assets: git clone -b v0.2 "
    "https://github.com/robocasa/robocasa && pip install -e robocasa && python robocasa/robocasa/scripts/"
    "download_kitchen_assets.py (or use backend='builtin')"
)
# The project's camera names -> RoboCasa's.
CAMERAS = {"left": "robot0_agentview_left", "right": "robot0_agentview_right", "wrist": "robot0_eye_in_hand"}
# RoboCasa observables making up the 16-D state, in the contract's order (quats xyzw, as RoboCasa gives them).
STATE_PARTS = ("robot0_base_pos", "robot0_base_quat", "robot0_base_to_eef_pos", "robot0_base_to_eef_quat",
               "robot0_gripper_qpos")


def robocasa_env_name(task: str, robocasa_version: str) -> str:
    """RoboCasa's registered name for a project task (v1.x renamed two of them)."""
    spec = get_task(task)
    return spec.robocasa_v1_name if int(str(robocasa_version).split(".")[0]) >= 1 else spec.robocasa_v02_name


def import_robocasa():
    """Import robocasa, or raise a one-line RuntimeError with install instructions."""
    try:
        import robocasa  # noqa: F401
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return robocasa


class RoboCasaGymEnv(gym.Env):
    """A RoboCasa kitchen env presented with the project's keys (images, 16-D state, task) and 12-D actions."""

    def __init__(self, task: str, spec: ObservationSpec, render: bool, seed, horizon: int):
        robocasa = import_robocasa()
        import robosuite  # here, not at the top: `import envs` imports this module and must not load robosuite
        from robosuite.controllers import load_composite_controller_config

        self.observation_spec = spec
        image_size = spec.image_size
        self.cameras = spec.cameras if render else ()
        self.horizon = horizon
        camera_kwargs = {}
        if self.cameras:
            camera_kwargs = dict(camera_names=[CAMERAS[c] for c in self.cameras], camera_heights=image_size,
                                 camera_widths=image_size)
        self.env = robosuite.make(
            robocasa_env_name(task, getattr(robocasa, "__version__", "0.2")),
            robots="PandaOmron",
            controller_configs=load_composite_controller_config(robot="PandaOmron"),
            has_renderer=False, has_offscreen_renderer=bool(self.cameras), use_camera_obs=bool(self.cameras),
            ignore_done=True, control_freq=20, seed=seed, **camera_kwargs,
        )
        self.observation_space = observation_space(self.cameras, image_size)
        self.action_space = action_space()
        self.to_robosuite = robosuite_permutation(dict(self.env.robots[0].composite_controller._action_split_indexes))
        self._t = 0

    def _obs(self, raw: dict) -> dict:
        # robosuite renders images upside down (OpenGL origin); flip to the usual top-left origin.
        obs = {f"observation.images.{c}": raw[f"{CAMERAS[c]}_image"][::-1].copy() for c in self.cameras}
        obs[STATE_KEY] = np.concatenate([raw[k] for k in STATE_PARTS]).astype(np.float32)
        obs[TASK_KEY] = self.env.get_ep_meta().get("lang", "")
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        raw = self.env.reset()
        self._t = 0
        return self._obs(raw), {"success": False}

    def step(self, action):
        raw, _, _, _ = self.env.step(check_action(action, ROBOCASA_PANDA_OMRON.action_dim)[self.to_robosuite])
        self._t += 1
        success = bool(self.env._check_success())
        return self._obs(raw), float(success), success, self._t >= self.horizon and not success, {"success": success}

    def close(self):
        self.env.close()
