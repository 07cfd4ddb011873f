"""The bridge's settings in one place: rate, execution, staleness, safety limits, embodiment mapping, ROS topics.

Loaded from one TOML or JSON file (`--config bridge/ros1/franka_ros.toml`, nested like the dataclasses) and then
command-line flags (`--safety.max-step-m 0.005`); see `python scripts/ros_bridge.py --help` for every field.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bridge.embodiment import MappingConfig
from bridge.safety import SafetyLimits


@dataclass(frozen=True)
class RosTopics:
    """franka_ros (ROS 1) names; REFERENCE.md section 6."""

    franka_state: str = "/franka_state_controller/franka_states"
    gripper_joints: str = "/franka_gripper/joint_states"
    equilibrium_pose: str = "/cartesian_impedance_example_controller/equilibrium_pose"
    pose_frame: str = "panda_link0"
    gripper_move: str = "/franka_gripper/move"
    gripper_grasp: str = "/franka_gripper/grasp"
    error_recovery: str = "/franka_control/error_recovery"
    # policy camera name=topic; a topic ending in /compressed is read as sensor_msgs/CompressedImage
    cameras: tuple[str, ...] = ("left=/cam_left/color/image_raw", "right=/cam_right/color/image_raw",
                                "wrist=/cam_wrist/color/image_raw")
    gripper_open_width: float = 0.08
    gripper_speed: float = 0.1
    grasp_force: float = 20.0
    # Grasp goal: close toward grasp_width and count any width within the epsilons as a grasp (the object's width
    # is unknown to the policy).
    grasp_width: float = 0.0
    grasp_epsilon: float = 0.08
    recovery_timeout_s: float = 10.0  # operator reset: wait this long for franka_control's error recovery
    status: str = "/xvr_bridge/status"  # std_msgs/String, one JSON line a tick
    command: str = "/xvr_bridge/command"  # std_msgs/String: arm, start, stop, abort, reset


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the bridge core and its adapters read."""

    rate_hz: float = 15.0
    execute_mode: str = "chunk"  # chunk: newest chunk, re-asked every execute_steps ticks; ensemble: ACT blending
    execute_steps: int = 8
    ensemble_coeff: float = 0.01
    max_image_age_s: float = 0.2  # older frames are stale: hold
    max_state_age_s: float = 0.1
    policy_timeout_s: float = 1.0  # a chunk request unanswered this long: hold
    gripper_min_interval_s: float = 0.5
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    ros: RosTopics = field(default_factory=RosTopics)

    def check(self) -> None:
        """One-line ValueError for settings that cannot work."""
        if not 1 <= self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in 1..1000; got {self.rate_hz}")
        if self.execute_mode not in ("chunk", "ensemble"):
            raise ValueError(f"execute_mode must be chunk or ensemble; got {self.execute_mode!r}")
        for name in ("max_image_age_s", "max_state_age_s", "policy_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        self.safety.check()

    def camera_topics(self) -> dict[str, str]:
        """{camera name: topic} from ros.cameras ('name=topic' entries)."""
        out = {}
        for entry in self.ros.cameras:
            name, sep, topic = entry.partition("=")
            if not sep or not name or not topic.startswith("/"):
                raise ValueError(f"ros.cameras entries are name=/topic; got {entry!r}")
            out[name] = topic
        return out


def file_overrides(path: str | Path) -> dict[str, str]:
    """A TOML (.toml) or JSON config file as dotted-name overrides (the form contract.cli.apply_overrides takes)."""
    path = Path(path)
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        text = path.read_text()
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"config file {path} is not valid {kind}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    out: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}".replace("-", "_")
            if isinstance(value, dict):
                walk(value, f"{name}.")
            elif isinstance(value, (list, tuple)):
                out[name] = json.dumps(value)
            else:
                out[name] = "true" if value is True else "false" if value is False else str(value)

    walk(data, "")
    return out
