"""The policy's observation from the newest camera frames and robot state, refused when any part is stale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from contract.embodiments import STATE_KEY, TASK_KEY


@dataclass(frozen=True)
class Stamped:
    value: object
    stamp: float  # seconds, the bridge's clock, when the data was taken (or received)


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to size x size (uint8 HxWx3 in and out)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top: top + side, left: left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


class ObservationAssembler:
    """Keeps the newest frame per camera and the newest state; `assemble(now)` builds one observation or says why not.

    cameras: the policy's camera names; image_size: what the policy wants (0 = as received, must be square);
    max_image_age_s / max_state_age_s: older data is stale.
    """

    def __init__(self, cameras, task: str, image_size: int, max_image_age_s: float, max_state_age_s: float):
        if not task or not isinstance(task, str):
            raise ValueError("the bridge needs the task instruction (--task \"...\")")
        self.cameras = tuple(cameras)
        self.task = task
        self.image_size = image_size
        self.max_image_age_s, self.max_state_age_s = max_image_age_s, max_state_age_s
        self.images: dict[str, Stamped] = {}
        self.state: Stamped | None = None

    def add_image(self, camera: str, image, stamp: float) -> None:
        """Store a camera frame (uint8 HxWx3 RGB); a malformed frame raises ValueError and is not stored."""
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}; the policy uses {', '.join(self.cameras)}")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
            raise ValueError(f"camera {camera}: expected a uint8 HxWx3 RGB frame; got {image.dtype} {image.shape}")
        self.images[camera] = Stamped(image, stamp)

    def add_state(self, state, stamp: float) -> None:
        """Store the policy-layout state vector; a non-finite one raises ValueError and is not stored."""
        state = np.asarray(state, dtype=np.float32)
        if state.ndim != 1 or not np.isfinite(state).all():
            raise ValueError(f"robot state must be a finite vector; got {state.tolist()}")
        self.state = Stamped(state, stamp)

    def problems(self, now: float) -> list[str]:
        """What keeps an observation from being built now (empty: it can be)."""
        out = []
        for camera in self.cameras:
            frame = self.images.get(camera)
            if frame is None:
                out.append(f"no frame from camera {camera} yet")
            elif now - frame.stamp > self.max_image_age_s:
                out.append(f"camera {camera} stale ({now - frame.stamp:.2f} s > {self.max_image_age_s} s)")
        if self.state is None:
            out.append("no robot state yet")
        elif now - self.state.stamp > self.max_state_age_s:
            out.append(f"robot state stale ({now - self.state.stamp:.2f} s > {self.max_state_age_s} s)")
        return out

    def assemble(self, now: float) -> tuple[dict | None, list[str]]:
        """(observation, []) or (None, problems)."""
        problems = self.problems(now)
        if problems:
            return None, problems
        obs = {}
        for camera in self.cameras:
            image = self.images[camera].value
            obs[f"observation.images.{camera}"] = square_resize(image, self.image_size or min(image.shape[:2]))
        obs[STATE_KEY] = self.state.value
        obs[TASK_KEY] = self.task
        return obs, []
