"""Calibrated cameras: intrinsics and extrinsics of the scene's MuJoCo cameras, point projection, visibility.

The simulator knows every camera exactly, so ground truth for "where is X in this view" questions (backbone
pretraining, cross-view data) comes from here. Pixel coordinates follow the rendered images: (u, v) with u to the
right, v down, (0, 0) the top-left corner of the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class CameraPose:
    """One camera at one instant: world position, rotation (columns: camera x right, y up, z backwards), intrinsics."""

    position: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3) camera-to-world
    focal: float  # pixels
    width: int
    height: int

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera frame (N, 3); visible points have z < 0."""
        return (np.asarray(points, float) - self.position) @ self.rotation

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> (pixel uv (N, 2), depth along the optical axis (N,); <= 0 means behind)."""
        cam = self.to_camera(np.atleast_2d(points))
        depth = -cam[:, 2]
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        u = self.width / 2 + self.focal * cam[:, 0] / safe
        v = self.height / 2 - self.focal * cam[:, 1] / safe
        return np.stack([u, v], axis=1), depth

    def in_frame(self, uv: np.ndarray, depth: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether projected points land inside the image (and in front of the camera)."""
        uv = np.atleast_2d(uv)
        return ((depth > 0) & (uv[:, 0] >= margin) & (uv[:, 0] < self.width - margin)
                & (uv[:, 1] >= margin) & (uv[:, 1] < self.height - margin))


def camera_pose(model: mujoco.MjModel, data: mujoco.MjData, camera: str | int, width: int, height: int) -> CameraPose:
    """The named camera's current pose and pinhole intrinsics for a width x height render."""
    cam_id = model.camera(camera).id if isinstance(camera, str) else int(camera)
    fovy = np.deg2rad(model.cam_fovy[cam_id])
    focal = 0.5 * height / np.tan(fovy / 2)
    return CameraPose(position=data.cam_xpos[cam_id].copy(), rotation=data.cam_xmat[cam_id].reshape(3, 3).copy(),
                      focal=float(focal), width=int(width), height=int(height))


def line_of_sight(model: mujoco.MjModel, data: mujoco.MjData, camera: CameraPose, point: np.ndarray,
                  target_geoms=(), tolerance: float = 0.01) -> bool:
    """True when nothing but the target's own geoms lies between the camera and the point."""
    direction = np.asarray(point, float) - camera.position
    distance = float(np.linalg.norm(direction))
    if distance < 1e-9:
        return True
    geom = np.zeros(1, np.int32)
    hit = mujoco.mj_ray(model, data, camera.position, direction / distance, None, 1, -1, geom)
    if hit < 0 or hit >= distance - tolerance:
        return True
    return int(geom[0]) in set(int(g) for g in target_geoms)
