"""Run a served policy on a Franka through franka_ros (ROS 1): `python scripts/ros_bridge.py --policy ws://HOST:PORT
--task "press the stop button on the microwave" [--rate 15] [--dry-run]`.

Topics, workspace and safety limits come from one config file (--config, TOML or JSON; default
bridge/ros1/franka_ros.toml), then any field as a flag (--safety.max-step-m 0.005). The bridge starts idle: publish
`arm` then `start` on the command topic (std_msgs/String; also `stop`, `abort`, `reset`), or pass --start to arm
and start once every input is fresh. --dry-run subscribes and computes every tick but publishes no command.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.config import BridgeConfig, file_overrides  # noqa: E402
from bridge.ros1.node import Ros1Bridge  # noqa: E402
from contract.cli import ConfigError, apply_overrides, describe, flag_names, parse_overrides  # noqa: E402
from contract.lookup import did_you_mean  # noqa: E402
from policies.remote import RemotePolicy  # noqa: E402

USAGE = """usage: python scripts/ros_bridge.py --policy ws://HOST:PORT --task "..." [--rate 15] [--dry-run] [--start]
       [--config bridge/ros1/franka_ros.toml] [--BRIDGE.FIELD VALUE ...]"""
DEFAULT_CONFIG = "bridge/ros1/franka_ros.toml"


@dataclass(frozen=True)
class RunConfig:
    """This command's own options; every other flag is a field of the bridge's config."""

    policy: str = ""  # the policy server, ws://HOST:PORT
    task: str = ""  # the instruction given to the policy
    config: str = DEFAULT_CONFIG  # topics, workspace and limits (TOML or JSON)
    rate: float = 0.0  # control rate (Hz); 0: the config's rate_hz
    dry_run: bool = False  # subscribe and compute, publish no command
    start: bool = False  # arm and start by itself once every input is fresh
    ticks: int = 0  # stop after this many ticks (0: until ROS shuts down)
    node_name: str = "xvr_bridge"


def parse(argv: list[str]):
    """(RunConfig, BridgeConfig) from argv; ConfigError/ValueError with one line when something does not fit."""
    overrides = parse_overrides(argv)
    own = flag_names(RunConfig)
    run = apply_overrides(RunConfig(), {k: v for k, v in overrides.items() if k in own})
    rest = {k: v for k, v in overrides.items() if k not in own}
    valid = flag_names(BridgeConfig)
    for name in rest:
        if name not in valid:
            raise ConfigError(f"unknown option --{name}{did_you_mean(name, {**valid, **own})}")
    path = Path(run.config) if Path(run.config).is_absolute() or Path(run.config).exists() else ROOT / run.config
    config = apply_overrides(apply_overrides(BridgeConfig(), file_overrides(path)), rest)
    if run.rate:
        config = apply_overrides(config, {"rate_hz": str(run.rate)})
    if not run.policy:
        raise ConfigError("--policy ws://HOST:PORT is required (start one with scripts/serve_policy.py)")
    if not run.task.strip():
        raise ConfigError('--task "..." is required: the instruction the policy follows')
    config.check()
    return run, config


def _log_to_console(name: str) -> None:
    """rospy.init_node sends Python logging to its log file only; holds and faults must also reach the operator."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "stream", None) is sys.stderr for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(f"{__doc__.strip()}\n\n{USAGE}\n\nthis command (default):\n{describe(RunConfig())}\n\n"
              f"the bridge (default; the config file overrides these):\n{describe(BridgeConfig())}")
        return 0
    try:
        run, config = parse(argv)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import rospy
    except ImportError:
        print("error: rospy is not importable; install ROS 1 (bash scripts/setup_ros.sh on Debian, or source "
              "/opt/ros/noetic/setup.bash)", file=sys.stderr)
        return 2
    try:
        policy = RemotePolicy(run.policy, timeout_s=config.policy_timeout_s)
    except (ConnectionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rospy.init_node(run.node_name, disable_signals=False)
    _log_to_console("bridge")
    try:
        node = Ros1Bridge(config, policy, run.task, dry_run=run.dry_run, autostart=run.start)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"bridge {'(dry run) ' if run.dry_run else ''}at {config.rate_hz:g} Hz: policy {policy.source}, "
          f"{policy.embodiment.name}, cameras {', '.join(policy.cameras)}; commands on {config.ros.command}, "
          f"status on {config.ros.status}", flush=True)
    stats = node.run(ticks=run.ticks or None)
    print(f"bridge stopped: {stats.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
