"""Boundary checks for actions entering an env (before anything reaches MuJoCo)."""

from __future__ import annotations

import numpy as np

from contract.embodiments import CAMERA_NAMES
from contract.lookup import check_name


def check_action(action, dim: int) -> np.ndarray:
    """Return action as float64 (dim,), or raise a one-line ValueError naming the problem."""
    arr = np.asarray(action)
    if arr.dtype.kind != "f":
        raise ValueError(f"action must be a float array (float32 expected), got dtype {arr.dtype}")
    if arr.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()
        raise ValueError(f"action has NaN/inf at indices {bad}; every entry must be finite (range [-1, 1])")
    return arr.astype(np.float64)


def check_cameras(cameras) -> tuple[str, ...]:
    """Return cameras as a tuple of known camera names, or raise a one-line ValueError."""
    cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
    for cam in cameras:
        check_name(cam, CAMERA_NAMES, "camera")
    return cameras


def check_image_size(image_size) -> int:
    """Return image_size as an int of at least 8 pixels, or raise a one-line ValueError."""
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    return int(image_size)


def check_render_mode(render_mode, render_modes) -> str | None:
    """Return render_mode when it is None or one of render_modes, else raise a one-line ValueError."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, {', '.join(map(repr, render_modes))}")
    return render_mode
