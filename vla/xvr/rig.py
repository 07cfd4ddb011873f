"""Calibrated views of a scene: random camera rigs, RGB + depth rendering, surface points, visibility, SSIM.

A rig camera is an envs.cameras.CameraPose (world pose + pinhole focal length). It is rendered by lending it a
camera of the scene's model that no task uses ("frontview"): its field of view and its world pose in MjData are
set just before rendering, so MuJoCo's own renderer draws exactly the camera the pose describes (tests check a
sphere at a known point against the projection). Depth is MuJoCo's depth along the optical axis, the same
quantity as CameraPose.project's depth, so surface points come from depth like the paper's RGB-D captures.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.ndimage import uniform_filter

from envs.cameras import CameraPose
from envs.rendering import close_at_exit, forget_at_exit

SPARE_CAMERA = "frontview"  # robosuite's arena camera; the kitchen tasks never render it


def look_at(position, target, focal: float, size: int) -> CameraPose:
    """A camera at `position` looking at `target` with the world's z up (no roll)."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight down or up
        right = np.array([0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    # CameraPose columns: camera x right, y up, z backwards.
    return CameraPose(position=position, rotation=np.stack([right, up, -forward], axis=1), focal=float(focal),
                      width=size, height=size)


def focal_from_fovy(fovy_deg: float, size: int) -> float:
    return 0.5 * size / np.tan(np.deg2rad(fovy_deg) / 2)


def fovy_of(pose: CameraPose) -> float:
    return float(np.rad2deg(2 * np.arctan(0.5 * pose.height / pose.focal)))


def orbit(center, distance: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """A point `distance` from `center` at the given azimuth (about z) and elevation."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.asarray(center, float) + distance * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


@dataclass(frozen=True)
class RigConfig:
    """How random rig cameras are drawn around a look-at point near the task's fixtures."""

    distance: tuple[float, float] = (0.8, 1.5)  # m from the look-at point
    # deg about z from +x; the kitchen wall stands at x = 1.1 facing -x, so cameras stay on the room side of it
    azimuth: tuple[float, float] = (110.0, 250.0)
    elevation: tuple[float, float] = (12.0, 55.0)  # deg
    fovy: tuple[float, float] = (45.0, 75.0)  # deg: random intrinsics
    target_jitter: float = 0.08  # m, std of the look-at point around the fixtures' centre
    min_clear: float = 0.6  # the first surface along the view axis lies at least this fraction of the way


class ViewRenderer:
    """Renders rig cameras (RGB + depth) and the scene's own cameras of one model; call close() when done."""

    def __init__(self, model: mujoco.MjModel, size: int):
        # The env's FastRenderer (made first, by the caller) already set the offscreen buffer and multisampling.
        self.model, self.size = model, size
        self._renderer = mujoco.Renderer(model, height=size, width=size)
        flags = mujoco.mjtRndFlag
        for flag in (flags.mjRND_SHADOW, flags.mjRND_REFLECTION, flags.mjRND_SKYBOX):
            self._renderer.scene.flags[flag] = 0
        self._option = mujoco.MjvOption()
        self._spare = model.camera(SPARE_CAMERA).id
        self._closed = False
        close_at_exit(self)

    def render(self, data: mujoco.MjData, pose: CameraPose, depth: bool = True,
               spheres: tuple[tuple[np.ndarray, float, tuple], ...] = ()) -> tuple[np.ndarray, np.ndarray | None]:
        """(uint8 HxWx3 image, float32 HxW depth in m or None) from `pose`; `spheres` (pos, radius, rgba) are drawn
        into the scene (used to check the camera model)."""
        if pose.width != self.size or pose.height != self.size:
            raise ValueError(f"pose is {pose.width}x{pose.height}, renderer is {self.size}x{self.size}")
        cam = self._spare
        self.model.cam_fovy[cam] = fovy_of(pose)
        data.cam_xpos[cam] = pose.position
        data.cam_xmat[cam] = pose.rotation.reshape(-1)
        self._renderer.update_scene(data, camera=cam, scene_option=self._option)
        scene = self._renderer.scene
        for pos, radius, rgba in spheres:
            if scene.ngeom >= scene.maxgeom:
                raise ValueError("no room for another marker sphere in the scene")
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0, 0]),
                                np.asarray(pos, float), np.eye(3).reshape(-1), np.asarray(rgba, np.float32))
            scene.ngeom += 1
        rgb = self._renderer.render()
        out_depth = None
        if depth:
            self._renderer.enable_depth_rendering()
            out_depth = self._renderer.render().astype(np.float32)
            self._renderer.disable_depth_rendering()
        return rgb, out_depth

    def close(self) -> None:
        """Free the GL context now (otherwise it is freed at interpreter exit)."""
        if not self._closed:
            self._renderer.close()
            self._closed = True
            forget_at_exit(self)


def clear_view(model: mujoco.MjModel, data: mujoco.MjData, pose: CameraPose, target: np.ndarray,
               min_clear: float) -> bool:
    """Whether the camera is outside every geom and nothing sits close in front of it on the way to `target`."""
    direction = np.asarray(target, float) - pose.position
    distance = float(np.linalg.norm(direction))
    geom = np.zeros(1, np.int32)
    hit = mujoco.mj_ray(model, data, pose.position, direction / distance, None, 1, -1, geom)
    return hit < 0 or hit >= min_clear * distance


def random_rig(model, data, center: np.ndarray, count: int, size: int, rng: np.random.Generator,
               cfg: RigConfig = RigConfig(), max_tries: int = 200) -> list[tuple[CameraPose, np.ndarray]]:
    """`count` (camera, look-at target) pairs around the scene near `center`: clear views, random intrinsics."""
    rig = []
    for _ in range(max_tries):
        if len(rig) == count:
            break
        target = np.asarray(center, float) + rng.normal(0.0, cfg.target_jitter, 3)
        position = orbit(target, rng.uniform(*cfg.distance), rng.uniform(*cfg.azimuth),
                         rng.uniform(*cfg.elevation))
        pose = look_at(position, target, focal_from_fovy(rng.uniform(*cfg.fovy), size), size)
        if position[2] > 0.3 and clear_view(model, data, pose, target, cfg.min_clear):
            rig.append((pose, target))
    if len(rig) < count:
        raise RuntimeError(f"found only {len(rig)} of {count} clear rig cameras around {np.round(center, 2)}")
    return rig


def moved_around(pose: CameraPose, target: np.ndarray, axis: str, degrees: float) -> CameraPose:
    """The camera carried `degrees` around `target`: about world z ("horizontal") or up/down ("vertical")."""
    offset = pose.position - np.asarray(target, float)
    distance = float(np.linalg.norm(offset))
    azimuth = float(np.rad2deg(np.arctan2(offset[1], offset[0])))
    elevation = float(np.rad2deg(np.arcsin(offset[2] / distance)))
    if axis == "horizontal":
        azimuth += degrees
    elif axis == "vertical":
        elevation = float(np.clip(elevation + degrees, 3.0, 80.0))
    else:
        raise ValueError(f"axis must be 'horizontal' or 'vertical', got {axis!r}")
    return look_at(orbit(target, distance, azimuth, elevation), target, pose.focal, pose.width)


# ----- surface points from depth, visibility -----

def unproject(pose: CameraPose, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Pixel positions (N, 2) at optical-axis depths (N,) -> world points (N, 3)."""
    uv, depth = np.atleast_2d(uv).astype(float), np.atleast_1d(depth).astype(float)
    x = (uv[:, 0] - pose.width / 2) * depth / pose.focal
    y = -(uv[:, 1] - pose.height / 2) * depth / pose.focal
    cam = np.stack([x, y, -depth], axis=1)
    return pose.position + cam @ pose.rotation.T


def _smooth(depth: np.ndarray, u: int, v: int) -> bool:
    """No depth edge at pixel (u, v): the depth is locally planar (small second differences), so the point lies on
    one surface, not on a silhouette; slanted surfaces pass."""
    h, w = depth.shape
    if not (0 < u < w - 1 and 0 < v < h - 1):
        return False
    d = depth[v, u]
    curvature = max(abs(depth[v, u - 1] + depth[v, u + 1] - 2 * d), abs(depth[v - 1, u] + depth[v + 1, u] - 2 * d))
    return float(curvature) < 0.005 + 0.01 * float(d)


def visible(pose: CameraPose, depth: np.ndarray, points: np.ndarray, margin: float = 2.0) -> np.ndarray:
    """Which world points (N, 3) the view sees: in frame, in front, and not hidden behind another surface."""
    uv, z = pose.project(np.atleast_2d(points))
    ok = pose.in_frame(uv, z, margin)
    out = np.zeros(len(uv), bool)
    for i in np.flatnonzero(ok):
        u, v = int(uv[i, 0]), int(uv[i, 1])
        out[i] = abs(float(depth[v, u]) - z[i]) < 0.01 + 0.02 * z[i] and _smooth(depth, u, v)
    return out


def sample_surface(pose: CameraPose, depth: np.ndarray, rng: np.random.Generator, count: int,
                   center: np.ndarray | None = None, radius: float = 0.7, min_height: float = 0.3,
                   margin: float = 4.0, tries: int = 400) -> np.ndarray:
    """Up to `count` world points on surfaces this view sees (pixel centres on smooth depth), near `center`."""
    size = pose.width
    out = []
    for _ in range(tries):
        if len(out) == count:
            break
        u, v = rng.integers(int(margin), size - int(margin), 2)
        if not _smooth(depth, u, v):
            continue
        point = unproject(pose, np.array([[u + 0.5, v + 0.5]]), np.array([depth[v, u]]))[0]
        if point[2] < min_height or (center is not None and np.linalg.norm(point - center) > radius):
            continue
        out.append(point)
    return np.array(out).reshape(-1, 3)


# ----- image similarity -----

def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean structural similarity of two uint8 RGB images (grey levels, uniform window, the usual constants)."""
    def grey(img):
        return np.asarray(img, np.float64) @ np.array([0.299, 0.587, 0.114])

    x, y = grey(a), grey(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = uniform_filter(x, window), uniform_filter(y, window)
    vx = uniform_filter(x * x, window) - mx * mx
    vy = uniform_filter(y * y, window) - my * my
    cxy = uniform_filter(x * y, window) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
