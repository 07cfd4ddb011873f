"""Scripted experts for the built-in kitchen tasks: privileged-state controllers that produce demos.

Each expert walks a short list of phases (approach, press or grasp, carry, release, retreat), servoing the
gripper to per-phase targets through the env's own 12-D OSC action. Per-episode jitter of targets and speed
plus small action noise make demos vary the way human ones do, while staying well inside the success bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.embodiments import ROBOCASA_PANDA_OMRON
from contract.lookup import did_you_mean

POS_SCALE, ROT_SCALE = 0.05, 0.5  # metres / radians per step at action +-1 (RoboCasa OSC_POSE)
OPEN, CLOSE = -1.0, 1.0
# Grip-site axes (columns) with the fingers pointing straight down and closing along world y, as at the start.
_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class ExpertConfig:
    """Motion style: speed limit (action units), gains, and how much episodes vary."""

    max_speed: float = 0.8  # 0.8 -> 4 cm per 50 ms step commanded; the OSC covers about half of it
    slow_speed: float = 0.3  # final approach, press and insertion
    pos_gain: float = 1.0
    rot_gain: float = 1.0
    action_noise: float = 0.03  # std of noise on the translation channels (action units)
    target_jitter: float = 0.004  # m, per-episode offset of key targets
    speed_jitter: float = 0.15  # relative, per episode


def _rotvec(mat: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix."""
    cos = np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if np.sin(angle) < 1e-4:  # ~180 deg: take the axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(mat) + 1.0) / 2.0, 0.0, None))
        return axis / np.linalg.norm(axis) * angle
    return axis / (2.0 * np.sin(angle)) * angle


def _yaw_mat(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def gripper_mat(pitch: float, yaw: float = 0.0) -> np.ndarray:
    """Grip-site rotation: fingers tilted from straight down (pitch 0) towards +x (pitch pi/2), then yawed."""
    c, s = np.cos(pitch), np.sin(pitch)
    tilt = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # about world y, tipping the fingers forward
    return _yaw_mat(yaw) @ tilt @ _DOWN


# Level fingers put the Panda's wrist at joint 6 ~ pi (joints 5 and 7 aligned: singular) or at its limit from
# RoboCasa's start pose, so every pose here keeps the fingers tipped down: 55 deg from vertical for presses, 60 for
# grasps in the cabinet, 45 for placing on the counter.
PRESS_PITCH = np.deg2rad(55)
GRASP_MAT = gripper_mat(np.deg2rad(60))
PLACE_MAT = gripper_mat(np.deg2rad(45))
# After a press the hand rises this far above the button, this far in front of it, before it backs away (m).
RETREAT_RISE, RETREAT_BACK = 0.10, 0.05


class ScriptedExpert:
    """Base: a phase machine over privileged state; subclasses define the phases."""

    def __init__(self, env, seed: int | None = None, config: ExpertConfig = ExpertConfig()):
        self.env = env
        self.sim = env.unwrapped.sim
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: phase 0, fresh per-episode jitter; a seed makes the episode's noise a function of it."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.phase = 0
        self.phase_steps = 0
        self.speed_scale = 1.0 + self.rng.uniform(-self.config.speed_jitter, self.config.speed_jitter)
        self.jitter = self.rng.normal(0.0, self.config.target_jitter, size=(4, 3))
        self.memory: dict[str, np.ndarray] = {}

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        """Next 12-D action (float32) from the privileged state; obs is accepted for the Policy interface."""
        state = self.sim.privileged_state()
        while True:
            target = self.plan(state)
            if target is None:  # the phase finished; move on and plan again this step
                self.phase += 1
                self.phase_steps = 0
                continue
            break
        self.phase_steps += 1
        pos, mat, grip, speed = target
        return self.servo(state, pos, mat, grip, speed)

    def plan(self, state: dict) -> tuple | None:
        """(target pos, target rotation, gripper, speed) for the current phase, or None when it is done."""
        raise NotImplementedError

    def servo(self, state, pos, mat, grip, speed) -> np.ndarray:
        cfg = self.config
        move = (pos - state["eef_pos"]) * cfg.pos_gain / POS_SCALE
        limit = speed * self.speed_scale
        norm = np.linalg.norm(move)
        if norm > limit:
            move *= limit / norm
        move += self.rng.normal(0.0, cfg.action_noise, 3)
        turn = _rotvec(mat @ state["eef_mat"].T) * cfg.rot_gain / ROT_SCALE
        turn_norm = np.linalg.norm(turn)
        if turn_norm > 1.0:
            turn /= turn_norm
        base_t = state["base_mat"].T  # the controller takes deltas in the base frame
        action = np.zeros(ROBOCASA_PANDA_OMRON.action_dim, np.float32)
        action[0:3] = np.clip(base_t @ move, -1, 1)
        action[3:6] = np.clip(base_t @ turn, -1, 1)
        action[6] = grip
        action[11] = -1.0  # arm mode: the base never moves in the demos
        return action

    @staticmethod
    def reached(state, pos, tol: float) -> bool:
        return float(np.linalg.norm(state["eef_pos"] - pos)) < tol


class PressButtonExpert(ScriptedExpert):
    """Coffee start button / microwave stop button: line up in front, press with the fingertips, retreat."""

    pressed_key = "button_pressed"
    pitch = PRESS_PITCH

    def is_pressed(self, state) -> bool:
        return bool(state[self.pressed_key])

    def plan(self, state):
        button, normal = state["button_pos"], state["button_normal"]
        facing = gripper_mat(self.pitch, np.arctan2(-normal[1], -normal[0]))
        aim = button + self.jitter[0] * np.array([0.0, 1.0, 1.0])  # off-centre a little, not along the normal
        cfg = self.config
        if self.phase == 0:  # tip the fingers forward and line up 8 cm in front of the button, gripper closing
            target = aim + normal * 0.08
            if self.reached(state, target, 0.012) and self.phase_steps > 5 or self.phase_steps > 120:
                return None
            return target, facing, CLOSE, cfg.max_speed
        if self.phase == 1:  # push straight in, fingertips first, until the button registers
            if self.is_pressed(state):
                return None
            if self.phase_steps > 60:  # missed: back out and line up again, as a person would
                self.phase, self.phase_steps = -1, 0
                self.jitter = self.rng.normal(0.0, self.config.target_jitter, size=self.jitter.shape)
                return None
            return aim - normal * 0.03, facing, CLOSE, cfg.slow_speed
        # Retreat up first, then back: a path that retraced the approach would show a memoryless policy the same
        # gripper poses with opposite actions (push in / back off), told apart only by the small lit button.
        if self.phase == 2:  # rise clear of the approach line, easing back a little
            target = aim + normal * RETREAT_BACK + np.array([0.0, 0.0, RETREAT_RISE])
            if self.reached(state, target, 0.02) or self.phase_steps > 60:
                return None
            return target, facing, CLOSE, cfg.max_speed
        if self.phase == 3:  # then back off and away, staying high
            target = aim + normal * 0.25 + np.array([0.0, 0.0, RETREAT_RISE])
            if self.reached(state, target, 0.02) or self.phase_steps > 80:
                return None
            return target, facing, CLOSE, cfg.max_speed
        return state["eef_pos"], facing, CLOSE, cfg.max_speed  # hold


class CoffeeExpert(PressButtonExpert):
    """Press the coffee machine's start button (latches on contact), then retreat."""

    pressed_key = "button_pressed"


class MicrowaveExpert(PressButtonExpert):
    """Press the microwave's stop button until the power goes off, then retreat."""

    pitch = np.deg2rad(40)  # the stop button sits low; a steeper hand keeps the wrist inside its limits

    def is_pressed(self, state) -> bool:
        return not bool(state["turned_on"])


class PickPlaceExpert(ScriptedExpert):
    """Reach into the cabinet, side-grasp the object, lift, pull out, lower onto the counter, release, retreat."""

    def plan(self, state):
        cfg = self.config
        obj = state["object_pos"]
        front_x = state["cabinet_pos"][0] - state["cabinet_half"][0]
        if self.phase == 0:  # open, turn forward, line up in front of the object outside the cabinet
            target = np.array([front_x - 0.10, obj[1], obj[2]]) + self.jitter[0] * [0, 1, 0.5]
            if self.reached(state, target, 0.015) and self.phase_steps > 5 or self.phase_steps > 120:
                return None
            return target, GRASP_MAT, OPEN, cfg.max_speed
        if self.phase == 1:  # slide in until the object sits between the finger pads
            # Fixed once: chasing a nudged object would push it to the back of the shelf.
            target = self.memory.setdefault("reach", obj + np.array([0.005, 0.0, 0.0]) + self.jitter[1] * [1, 0.5, 0.5])
            if self.reached(state, target, 0.01) or self.phase_steps > 80:
                return None
            return target, GRASP_MAT, OPEN, cfg.slow_speed
        if self.phase == 2:  # close and let the fingers settle
            self.memory.setdefault("grasp", state["eef_pos"].copy())
            if self.phase_steps > 10:
                return None
            return self.memory["grasp"], GRASP_MAT, CLOSE, cfg.slow_speed
        if self.phase == 3:  # lift clear of the cabinet floor
            target = self.memory["grasp"] + np.array([0.0, 0.0, 0.03])
            if self.reached(state, target, 0.012) or self.phase_steps > 40:
                return None
            return target, GRASP_MAT, CLOSE, cfg.slow_speed
        if self.phase == 4:  # pull straight out of the cabinet
            target = np.array([front_x - 0.15, obj[1], self.memory["grasp"][2] + 0.04])
            if self.reached(state, target, 0.02) or self.phase_steps > 80:
                return None
            return target, GRASP_MAT, CLOSE, cfg.max_speed
        if self.phase == 5:  # over the counter front, tipping the fingers down on the way (wrist limits)
            place = self.memory.setdefault("place", np.array([
                state["counter_front_x"] + 0.14 + self.rng.uniform(-0.02, 0.03),
                obj[1] + self.rng.uniform(-0.05, 0.05), state["counter_top_z"] + 0.22]))
            if self.reached(state, place, 0.02) or self.phase_steps > 100:
                return None
            return place, PLACE_MAT, CLOSE, cfg.max_speed
        if self.phase == 6:  # lower until the object touches the counter
            if bool(state["object_on_counter"]) or self.phase_steps > 80:
                return None
            target = self.memory["place"] - np.array([0.0, 0.0, 0.3])
            return target, PLACE_MAT, CLOSE, cfg.slow_speed
        if self.phase == 7:  # release and let the object settle
            self.memory.setdefault("release", state["eef_pos"].copy())
            if self.phase_steps > 8:
                return None
            return self.memory["release"], PLACE_MAT, OPEN, cfg.slow_speed
        if self.phase == 8:  # back out and up, clear of the object
            target = self.memory["release"] + np.array([-0.25, 0.0, 0.20])
            if self.reached(state, target, 0.02) or self.phase_steps > 80:
                return None
            return target, PLACE_MAT, OPEN, cfg.max_speed
        return state["eef_pos"], PLACE_MAT, OPEN, cfg.max_speed


EXPERTS: dict[str, type[ScriptedExpert]] = {
    "CoffeePressButton": CoffeeExpert,
    "TurnOffMicrowave": MicrowaveExpert,
    "PnPCabToCounter": PickPlaceExpert,
}


def make_expert(task: str, env, seed: int | None = None, config: ExpertConfig = ExpertConfig()) -> ScriptedExpert:
    """Scripted expert for a task, driving env (env.unwrapped.sim must expose privileged_state())."""
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for {task!r}{did_you_mean(task, EXPERTS)}; valid: {', '.join(EXPERTS)}")
    return EXPERTS[task](env, seed=seed, config=config)
