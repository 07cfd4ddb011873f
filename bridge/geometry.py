"""Rigid-body helpers in the project's conventions: quaternions xyzw, rotations as 3x3 matrices, poses as (pos, rot)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def quat_to_mat(q) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> rotation matrix."""
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat(m) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    m = np.asarray(m, float)
    trace = np.trace(m)
    if trace > 0:
        s = 2 * np.sqrt(trace + 1)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2 * np.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2 * np.sqrt(1 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2 * np.sqrt(1 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q) / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def axis_angle_to_mat(v) -> np.ndarray:
    """Rotation vector (axis * angle, radians) -> rotation matrix (Rodrigues)."""
    v = np.asarray(v, float)
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def mat_to_axis_angle(m) -> np.ndarray:
    """Rotation matrix -> rotation vector (axis * angle), angle in [0, pi]."""
    q = mat_to_quat(m)
    sin_half = np.linalg.norm(q[:3])
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2 * np.arctan2(sin_half, q[3])
    return q[:3] / sin_half * angle


def rotation_angle(a, b) -> float:
    """Angle (radians, 0..pi) of the rotation taking a to b."""
    cos = (np.trace(np.asarray(a).T @ np.asarray(b)) - 1) / 2
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def rotate_toward(a, b, max_angle: float) -> np.ndarray:
    """b, or the rotation at most max_angle from a along the shortest path from a to b."""
    angle = rotation_angle(a, b)
    if angle <= max_angle:
        return np.asarray(b, float)
    step = mat_to_axis_angle(np.asarray(a).T @ np.asarray(b))
    return np.asarray(a) @ axis_angle_to_mat(step * (max_angle / angle))


def is_rotation(m, tol: float = 1e-6) -> bool:
    """A finite 3x3 orthonormal matrix with determinant +1."""
    try:
        m = np.asarray(m, dtype=float)
    except (TypeError, ValueError):
        return False
    if m.shape != (3, 3) or not np.isfinite(m).all() or np.abs(m).max() > 1 + tol:
        return False
    return bool(np.allclose(m.T @ m, np.eye(3), atol=tol) and abs(np.linalg.det(m) - 1) < tol)


@dataclass(frozen=True)
class Pose:
    """A position (m) and a rotation matrix; `a @ b` composes (b expressed in a's frame)."""

    pos: np.ndarray
    rot: np.ndarray

    @classmethod
    def from_matrix(cls, t) -> Pose:
        t = np.asarray(t, float)
        return cls(t[:3, 3].copy(), t[:3, :3].copy())

    @classmethod
    def from_pos_quat(cls, pos, quat) -> Pose:
        return cls(np.asarray(pos, float), quat_to_mat(quat))

    def matrix(self) -> np.ndarray:
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = self.rot, self.pos
        return t

    def quat(self) -> np.ndarray:
        return mat_to_quat(self.rot)

    def inverse(self) -> Pose:
        return Pose(-self.rot.T @ self.pos, self.rot.T)

    def __matmul__(self, other: Pose) -> Pose:
        return Pose(self.pos + self.rot @ other.pos, self.rot @ other.rot)

    def is_valid(self) -> bool:
        """Finite position (3,) and a proper rotation; never raises, whatever the fields hold."""
        try:
            pos = np.asarray(self.pos, dtype=float)
            return pos.shape == (3,) and bool(np.isfinite(pos).all()) and is_rotation(self.rot, tol=1e-4)
        except (TypeError, ValueError):
            return False


IDENTITY = Pose(np.zeros(3), np.eye(3))
