"""Gymnasium front of the built-in kitchen tasks: the observation/action contract of vla.embodiments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.kitchen_env import ACTION_DIM, STATE_DIM, KitchenEnv
from envs.validation import check_action
from vla.embodiments import STATE_KEY, TASK_KEY


class KitchenGymEnv(gym.Env):
    """Wraps a KitchenEnv: dict observations, 12-D float32 actions, success termination, horizon truncation."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, sim: KitchenEnv, horizon: int):
        self.sim = sim
        self.horizon = horizon
        size, cams = sim.config.image_size, sim.config.cameras if sim.config.render else ()
        self._image_keys = {cam: f"observation.images.{cam}" for cam in cams}
        spaces = {key: gym.spaces.Box(0, 255, (size, size, 3), np.uint8) for key in self._image_keys.values()}
        spaces[STATE_KEY] = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        spaces[TASK_KEY] = gym.spaces.Text(max_length=256)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.render_mode = "rgb_array"
        self._t = 0
        self._last_images: dict[str, np.ndarray] = {}

    @property
    def unwrapped(self) -> KitchenEnv:  # experts and tests reach the simulator through here
        return self.sim

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Ground-truth poses (see KitchenEnv.privileged_state)."""
        return self.sim.privileged_state()

    def _obs(self) -> dict:
        images = self.sim.render_images()
        self._last_images = images
        obs = {self._image_keys[cam]: img for cam, img in images.items()}
        obs[STATE_KEY] = self.sim.robot_state()
        obs[TASK_KEY] = self.sim.instruction
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.seed_episode(seed)
        self.sim.reset()
        self._t = 0
        return self._obs(), {"success": False, "task": self.sim.instruction}

    def step(self, action):
        action = check_action(action, ACTION_DIM)
        self.sim.step_robot(action)
        self._t += 1
        success = bool(self.sim._check_success())
        obs = self._obs()
        truncated = self._t >= self.horizon and not success
        return obs, float(success), success, truncated, {"success": success}

    def render(self):
        """The first camera's latest image (rgb_array)."""
        return next(iter(self._last_images.values()), None)

    def close(self):
        self.sim.close()
