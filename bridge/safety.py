"""The safety filter between the policy and the arm: pure functions, no state, no I/O.

Every pose command that leaves the bridge while running went through `filter_target`: it is finite, inside the
workspace box, at most one step (position and rotation) from the previous command, and within a bounded offset
of the measured pose; a target that cannot be brought inside all of these is rejected (the supervisor holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.geometry import Pose, rotate_toward, rotation_angle

# Franka Panda joint limits (rad), from Franka's datasheet.
PANDA_Q_MIN = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_Q_MAX = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)


@dataclass(frozen=True)
class SafetyLimits:
    """Bounds on what the bridge may command (positions in the arm's base frame, panda_link0)."""

    # Site-specific: set it to the free space above the table. The default holds the simulator's reset pose of the
    # end effector (0.24, 0.01, 0.60) and stays short of the Panda's 0.855 m reach.
    workspace_min: tuple[float, float, float] = (0.15, -0.50, 0.03)
    workspace_max: tuple[float, float, float] = (0.80, 0.50, 0.90)
    max_step_m: float = 0.01  # per tick, between consecutive commands
    max_step_rad: float = 0.05
    max_offset_m: float = 0.03  # command vs measured pose
    max_offset_rad: float = 0.15
    joint_margin_rad: float = 0.05  # hold when a measured joint is closer than this to its limit

    def check(self) -> None:
        """One-line ValueError for limits that make no sense."""
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
            raise ValueError(f"workspace_min must be below workspace_max on every axis; got {lo.tolist()} and {hi.tolist()}")
        values = (self.max_step_m, self.max_step_rad, self.max_offset_m, self.max_offset_rad)
        if not all(np.isfinite(v) and v > 0 for v in values) or self.joint_margin_rad < 0:
            raise ValueError(f"step and offset limits must be positive and the joint margin >= 0; got {values} "
                             f"and {self.joint_margin_rad}")


@dataclass(frozen=True)
class Verdict:
    """The filter's answer: a command to send, or None with the reason to hold."""

    command: Pose | None
    clipped: tuple[str, ...] = ()  # which limits changed the target (empty: sent as asked)
    reason: str = ""  # why it was rejected

    @property
    def ok(self) -> bool:
        return self.command is not None


def joint_limit_problem(q, limits: SafetyLimits) -> str:
    """'' when the 7 joint positions are finite and clear of the limits by the margin, else what is wrong."""
    try:
        q = np.asarray(q, dtype=float)
    except (TypeError, ValueError):
        return "joint positions are not numbers"
    if q.shape != (7,) or not np.isfinite(q).all():
        return f"joint positions must be 7 finite values; got shape {q.shape}"
    low = q - np.asarray(PANDA_Q_MIN) < limits.joint_margin_rad
    high = np.asarray(PANDA_Q_MAX) - q < limits.joint_margin_rad
    for i in np.flatnonzero(low | high):
        return f"joint {i + 1} at {q[i]:.3f} rad is within {limits.joint_margin_rad} rad of its limit"
    return ""


def _clip_ball(p: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    d = p - centre
    n = np.linalg.norm(d)
    return p if n <= radius else centre + d * (radius / n)


def filter_target(target: Pose, measured: Pose, last_command: Pose, limits: SafetyLimits, q=None) -> Verdict:
    """The safe command closest to `target` (see module doc), or a rejection.

    target: what the policy asks for; measured: the arm's pose now; last_command: the previous command sent
    (the hold pose right after a hold); q: measured joint positions, checked against the joint-limit margin.
    """
    for name, pose in (("target", target), ("measured pose", measured), ("last command", last_command)):
        if not isinstance(pose, Pose) or not pose.is_valid():
            return Verdict(None, reason=f"{name} is malformed or not finite")
    if q is not None and (problem := joint_limit_problem(q, limits)):
        return Verdict(None, reason=problem)
    lo, hi = np.asarray(limits.workspace_min, float), np.asarray(limits.workspace_max, float)
    # Slightly inside each bound, so floating-point rounding never lands a command a hair outside.
    eps = 1e-9
    clipped = []
    goal = np.asarray(target.pos, float)
    pos = goal.copy()
    for _ in range(50):  # alternating projections onto three convex sets: converges when they intersect
        pos = np.clip(pos, lo + eps, hi - eps)
        pos = _clip_ball(pos, last_command.pos, limits.max_step_m * (1 - eps))
        pos = _clip_ball(pos, measured.pos, limits.max_offset_m * (1 - eps))
        if _position_ok(pos, measured, last_command, limits):
            break
    if not _position_ok(pos, measured, last_command, limits):
        return Verdict(None, reason=_position_reason(measured, last_command, limits))
    for name, inside in (("workspace", (lo <= goal).all() and (goal <= hi).all()),
                         ("step", np.linalg.norm(goal - last_command.pos) <= limits.max_step_m),
                         ("offset", np.linalg.norm(goal - measured.pos) <= limits.max_offset_m)):
        if not inside:
            clipped.append(f"{name}_position")
    if rotation_angle(last_command.rot, target.rot) > limits.max_step_rad:
        clipped.append("step_rotation")
    rot = rotate_toward(last_command.rot, target.rot, limits.max_step_rad * (1 - eps))
    if rotation_angle(rot, measured.rot) > limits.max_offset_rad:
        # Too far from the measured orientation: turn from the last command toward the measured one instead.
        rot = rotate_toward(last_command.rot, measured.rot, limits.max_step_rad * (1 - eps))
        clipped.append("offset_rotation")
        if rotation_angle(rot, measured.rot) > limits.max_offset_rad:
            return Verdict(None, reason=f"last command is {rotation_angle(last_command.rot, measured.rot):.3f} rad "
                                        f"from the measured orientation; more than one step beyond the "
                                        f"{limits.max_offset_rad} rad offset limit")
    return Verdict(Pose(pos, rot), clipped=tuple(clipped))


def _position_ok(pos, measured: Pose, last: Pose, limits: SafetyLimits) -> bool:
    lo, hi = np.asarray(limits.workspace_min, float), np.asarray(limits.workspace_max, float)
    return bool((lo <= pos).all() and (pos <= hi).all()
                and np.linalg.norm(pos - last.pos) <= limits.max_step_m
                and np.linalg.norm(pos - measured.pos) <= limits.max_offset_m)


def _position_reason(measured: Pose, last: Pose, limits: SafetyLimits) -> str:
    lo, hi = np.asarray(limits.workspace_min, float), np.asarray(limits.workspace_max, float)
    if not ((lo <= measured.pos + limits.max_offset_m).all() and (measured.pos - limits.max_offset_m <= hi).all()):
        return f"measured position {np.round(measured.pos, 3).tolist()} is outside the workspace box"
    return (f"no position within {limits.max_step_m} m of the last command and {limits.max_offset_m} m of the "
            f"measured pose inside the workspace (they are {np.linalg.norm(last.pos - measured.pos):.3f} m apart)")


class GripperGate:
    """Turns the policy's gripper channel (> 0 close, else open) into commands sent only when the decision changes,
    at most once per `min_interval_s` (a chattering policy must not flood the gripper action server)."""

    def __init__(self, min_interval_s: float = 0.5):
        self.min_interval_s = min_interval_s
        self.reset()

    def reset(self) -> None:
        self.last: str | None = None
        self.last_time = -np.inf

    def decide(self, value: float, now: float) -> str | None:
        """'close', 'open' or None (no command this tick)."""
        if not np.isfinite(value):
            return None
        wanted = "close" if value > 0 else "open"
        if wanted == self.last or now - self.last_time < self.min_interval_s:
            return None
        self.last, self.last_time = wanted, now
        return wanted
