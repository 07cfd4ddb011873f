"""Gymnasium front of the built-in kitchen tasks: the observation/action contract of contract/embodiments.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from contract.embodiments import CAMERA_NAMES, FPS, IMAGE_SIZE, STATE_KEY, TASK_KEY
from contract.spec import ObservationSpec
from envs.kitchen_env import ACTION_DIM, SimConfig
from envs.registry import get_task
from envs.spaces import action_space, observation_space
from envs.tasks import TASK_CLASSES
from envs.validation import check_action, check_render_mode


class KitchenGymEnv(gym.Env):
    """A built-in kitchen task: dict observations, 12-D float32 actions, success termination.

    The MuJoCo simulator (a KitchenEnv) is `env.unwrapped.sim`. With `horizon` set, the env truncates itself at
    that step; gymnasium.make leaves it None and truncates with its TimeLimit (max_episode_steps) instead.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}  # the control rate

    def __init__(self, task: str, image_size: int = IMAGE_SIZE, cameras=CAMERA_NAMES, render: bool = True,
                 seed: int | None = None, horizon: int | None = None, render_mode: str | None = None):
        spec = get_task(task)
        # Gymnasium passes image_size and cameras as kwargs (gymnasium.make(id, image_size=64)); the spec checks them.
        self.observation_spec = ObservationSpec(image_size=image_size, cameras=cameras)
        cameras, image_size = self.observation_spec.cameras, self.observation_spec.image_size
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        if render_mode is not None and not (render and cameras):
            raise ValueError(f"render_mode={render_mode!r} needs camera images: pass render=True and a camera")
        self.horizon = None if horizon is None else int(horizon)
        config = SimConfig(image_size=image_size, cameras=cameras, render=render, horizon=self.horizon or spec.horizon)
        self.sim = TASK_CLASSES[task](config, seed=seed)
        self._image_keys = {cam: f"observation.images.{cam}" for cam in (cameras if render else ())}
        self.observation_space = observation_space(tuple(self._image_keys), image_size)
        self.action_space = action_space()
        self._t = 0
        self._last_images: dict[str, np.ndarray] = {}

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
        truncated = self.horizon is not None and self._t >= self.horizon and not success
        return obs, float(success), success, truncated, {"success": success}

    def render(self) -> np.ndarray | None:
        """With render_mode='rgb_array': the cameras' latest images side by side (uint8 H x W*cams x 3)."""
        if self.render_mode is None:
            return None
        if not self._last_images:  # before the first reset
            self._last_images = self.sim.render_images()
        return np.concatenate(list(self._last_images.values()), axis=1)

    def close(self):
        self.sim.close()
