"""Boundary checks for actions entering an env (before anything reaches MuJoCo)."""

from __future__ import annotations

import numpy as np



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


def check_render_mode(render_mode, render_modes) -> str | None:
    """Return render_mode when it is None or one of render_modes, else raise a one-line ValueError."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, {', '.join(map(repr, render_modes))}")
    return render_mode
