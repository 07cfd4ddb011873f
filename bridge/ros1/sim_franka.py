"""A simulated Franka on ROS 1, backed by the project's MuJoCo arm (envs), speaking franka_ros' interface.

Publishes franka_msgs/FrankaState (O_T_EE in panda_link0, q, robot_mode), the gripper's sensor_msgs/JointState and
one sensor_msgs/Image per camera; follows the Cartesian impedance controller's equilibrium pose (each control step
asks the simulator's OSC controller for the way to the pose, as the real controller pulls toward it); serves
franka_gripper's move/grasp/homing/stop actions and franka_control's error recovery. Faults for tests arrive on
`~fault` (std_msgs/String): `reflex`, `user_stop`, `camera_off NAME`, `camera_on NAME`.

    python -m bridge.ros1.sim_franka --task TurnOffMicrowave [--image-size 256] [--camera-rate 15]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

import numpy as np

import envs
from bridge.config import BridgeConfig, file_overrides
from bridge.embodiment import ArmMapping
from bridge.ros1 import convert
from contract.cli import ConfigError, apply_overrides
from contract.embodiments import IMAGE_SIZE

log = logging.getLogger("sim_franka")

MODE_MOVE, MODE_REFLEX, MODE_USER_STOPPED = 2, 4, 5  # franka_msgs/FrankaState.ROBOT_MODE_*
GRIPPER_MAX_WIDTH = 0.08  # the Franka Hand's stroke
WIDTH_TOLERANCE = 0.003  # a move has arrived within this (m)


class SimFranka:
    """The node's state and loop; rospy.init_node must have been called."""

    def __init__(self, task: str, config: BridgeConfig = BridgeConfig(), seed: int = 0, image_size: int = IMAGE_SIZE,
                 camera_rate_hz: float = 15.0, state_rate_hz: float = 50.0):
        # lazy, here and in main: ROS 1 is an optional extra
        import actionlib
        import rospy
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from bridge.ros1.messages import franka_gripper, franka_msgs

        self.rospy, self.franka_msgs, self.franka_gripper = rospy, franka_msgs, franka_gripper
        self.JointState = JointState
        self.config = config
        self.cameras = config.camera_topics()
        self.env = envs.make(task, image_size=image_size, cameras=tuple(self.cameras), seed=seed)
        self.env.reset(seed=seed)
        self.sim = self.env.unwrapped.sim
        self.arm_q = np.asarray(self.sim.robots[0]._ref_arm_joint_pos_indexes)
        self.mapping = ArmMapping("robocasa_panda_omron", config.mapping)
        self.control_dt = 1.0 / self.sim.control_freq
        self.camera_period, self.state_period = 1.0 / camera_rate_hz, 1.0 / state_rate_hz
        self.lock = threading.Lock()
        self.target = None  # equilibrium pose (panda_link0); None: hold where it is
        self.robot_mode = MODE_MOVE
        self.cameras_off: set[str] = set()
        self.gripper_goal: tuple[str, float] | None = None  # ('move', width) or ('grasp', width); None: hold
        self.gripper_busy = False  # the fingers still move toward the goal
        self.steps = 0
        ros = config.ros
        self.state_pub = rospy.Publisher(ros.franka_state, franka_msgs.FrankaState, queue_size=1, tcp_nodelay=True)
        self.joint_pub = rospy.Publisher(ros.gripper_joints, JointState, queue_size=1, tcp_nodelay=True)
        self.image_pubs = {name: rospy.Publisher(topic, Image, queue_size=1) for name, topic in self.cameras.items()}
        self.subscribers = [rospy.Subscriber(ros.equilibrium_pose, PoseStamped, self._on_pose, queue_size=1,
                                             tcp_nodelay=True),
                            rospy.Subscriber("~fault", String, self._on_fault, queue_size=10)]
        g = franka_gripper
        self.servers = [
            actionlib.SimpleActionServer(ros.gripper_move, g.MoveAction, self._move, auto_start=False),
            actionlib.SimpleActionServer(ros.gripper_grasp, g.GraspAction, self._grasp, auto_start=False),
            actionlib.SimpleActionServer(ros.gripper_move.rsplit("/", 1)[0] + "/homing", g.HomingAction,
                                         self._homing, auto_start=False),
            actionlib.SimpleActionServer(ros.gripper_move.rsplit("/", 1)[0] + "/stop", g.StopAction, self._stop,
                                         auto_start=False),
            actionlib.SimpleActionServer(ros.error_recovery, franka_msgs.ErrorRecoveryAction, self._recover,
                                         auto_start=False),
        ]
        for server in self.servers:
            server.start()

    # -- measurements --------------------------------------------------------------------------------------------------
    def ee_pose(self):
        """The end effector in panda_link0, as O_T_EE reports it."""
        return self.mapping.ee_in_link0(self.sim.robot_state())

    def finger_positions(self) -> np.ndarray:
        """Both finger joints as franka_gripper reports them (each half the opening, positive)."""
        return np.abs(self.sim.mj_data.qpos[self.sim.gripper_qpos_adr])

    # -- ROS inputs ------------------------------------------------------------------------------------------------------
    def _on_pose(self, msg) -> None:
        try:
            pose = convert.pose_from_message(msg)
        except ValueError as err:
            log.warning("equilibrium pose ignored: %s", err)
            return
        with self.lock:
            if self.robot_mode == MODE_MOVE:  # a stopped robot takes no command until error recovery
                self.target = pose

    def _on_fault(self, msg) -> None:
        words = msg.data.split()
        with self.lock:
            if words == ["reflex"] or words == ["user_stop"]:
                self.robot_mode = MODE_REFLEX if words[0] == "reflex" else MODE_USER_STOPPED
                self.target = None  # the arm stops where it is
            elif len(words) == 2 and words[0] in ("camera_off", "camera_on") and words[1] in self.cameras:
                (self.cameras_off.add if words[0] == "camera_off" else self.cameras_off.discard)(words[1])
            else:
                log.error("unknown fault %r", msg.data)
                return
        log.warning("fault injected: %s", msg.data)

    # -- actions (actionlib's threads) -----------------------------------------------------------------------------------
    def _follow(self, server, kind: str, width: float, timeout_s: float = 5.0) -> bool:
        """Drive the fingers toward `width` until they stop; False when preempted or timed out."""
        with self.lock:
            self.gripper_goal, self.gripper_busy = (kind, float(np.clip(width, 0.0, GRIPPER_MAX_WIDTH))), True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.rospy.is_shutdown():
            if server.is_preempt_requested():
                return False
            with self.lock:
                if not self.gripper_busy:
                    return True
            time.sleep(0.01)
        return False

    def _move(self, goal) -> None:
        done = self._follow(self.servers[0], "move", goal.width)
        width = float(self.finger_positions().sum())
        self._finish(self.servers[0], self.franka_gripper.MoveResult, done and abs(width - goal.width) < 0.005,
                     f"reached {width:.3f} m, asked {goal.width:.3f} m")

    def _grasp(self, goal) -> None:
        done = self._follow(self.servers[1], "grasp", goal.width)
        width = float(self.finger_positions().sum())
        ok = done and goal.width - goal.epsilon.inner <= width <= goal.width + goal.epsilon.outer
        self._finish(self.servers[1], self.franka_gripper.GraspResult, ok,
                     f"fingers at {width:.3f} m, outside {goal.width:.3f} -{goal.epsilon.inner} +{goal.epsilon.outer}")

    def _homing(self, goal) -> None:
        done = self._follow(self.servers[2], "move", GRIPPER_MAX_WIDTH)
        self._finish(self.servers[2], self.franka_gripper.HomingResult, done, "homing did not finish")

    def _stop(self, goal) -> None:
        with self.lock:
            self.gripper_goal, self.gripper_busy = None, False
        self._finish(self.servers[3], self.franka_gripper.StopResult, True, "")

    def _finish(self, server, result_type, ok: bool, why: str) -> None:
        if server.is_preempt_requested():
            server.set_preempted(result_type(success=False, error="preempted"))
        elif ok:
            server.set_succeeded(result_type(success=True, error=""))
        else:
            server.set_aborted(result_type(success=False, error=why))

    def _recover(self, goal) -> None:
        with self.lock:
            self.robot_mode, self.target = MODE_MOVE, None
        log.warning("error recovery: robot mode back to move")
        self.servers[4].set_succeeded(self.franka_msgs.ErrorRecoveryResult())

    # -- simulation ------------------------------------------------------------------------------------------------------
    def _gripper_command(self) -> float:
        """The simulator's gripper channel (+1 close, -1 open, 0 hold) toward the current goal."""
        if self.gripper_goal is None or not self.gripper_busy:
            return 0.0
        kind, width = self.gripper_goal
        now = float(self.finger_positions().sum())
        if kind == "move" and abs(now - width) < WIDTH_TOLERANCE:
            self.gripper_busy = False
            return 0.0
        return 1.0 if now > width else -1.0

    def control_step(self) -> None:
        """One simulator step toward the equilibrium pose, with the gripper toward its goal."""
        measured = self.ee_pose()
        before = self.finger_positions().sum()
        with self.lock:
            target = self.target if self.robot_mode == MODE_MOVE else None
            grip = self._gripper_command()
        action = self.mapping.action_toward(target or measured, measured, grip)
        self.sim.step_robot(action.astype(np.float32))
        self.steps += 1
        if grip != 0.0 and abs(self.finger_positions().sum() - before) < 1e-4 and self.steps > 1:
            with self.lock:  # the fingers stopped (closed on an object, or at the end of their stroke)
                self.gripper_busy = False

    def publish_state(self, stamp) -> None:
        msg = self.franka_msgs.FrankaState()
        msg.header.stamp = stamp
        msg.O_T_EE = convert.column_major(self.ee_pose())
        msg.q = self.sim.mj_data.qpos[self.arm_q].tolist()
        msg.time = self.steps * self.control_dt
        msg.robot_mode = self.robot_mode
        msg.current_errors.joint_reflex = self.robot_mode == MODE_REFLEX
        self.state_pub.publish(msg)
        joints = self.JointState(name=list(convert.FINGER_JOINTS), position=self.finger_positions().tolist(),
                                 velocity=[0.0, 0.0], effort=[0.0, 0.0])
        joints.header.stamp = stamp
        self.joint_pub.publish(joints)

    def publish_images(self, stamp) -> None:
        images = self.sim.render_images()
        for name, rgb in images.items():
            if name not in self.cameras_off:
                self.image_pubs[name].publish(convert.image_message(rgb, stamp, frame_id=f"{name}_camera"))

    def run(self, seconds: float | None = None) -> None:
        """Real-time loop: the simulator at its control rate, state and cameras at theirs, until ROS shuts down."""
        start = time.monotonic()
        next_state = next_camera = start
        while not self.rospy.is_shutdown() and (seconds is None or time.monotonic() - start < seconds):
            now = time.monotonic()
            if (now - start) >= self.steps * self.control_dt:
                self.control_step()
            if now >= next_state:
                self.publish_state(self.rospy.Time.now())
                next_state = max(next_state + self.state_period, now)
            if now >= next_camera:
                self.publish_images(self.rospy.Time.now())
                next_camera = max(next_camera + self.camera_period, now)
            wake = min(next_state, next_camera, start + self.steps * self.control_dt)
            time.sleep(max(0.0, wake - time.monotonic()))

    def close(self) -> None:
        self.env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A simulated Franka (MuJoCo) speaking franka_ros on ROS 1.")
    parser.add_argument("--task", default="TurnOffMicrowave")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--camera-rate", type=float, default=15.0)
    parser.add_argument("--state-rate", type=float, default=50.0)
    parser.add_argument("--config", default="", help="the bridge's config file (topics), TOML or JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import rospy

    try:
        config = apply_overrides(BridgeConfig(), file_overrides(args.config)) if args.config else BridgeConfig()
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless, as every script of the project renders
    rospy.init_node("sim_franka", disable_signals=False)
    handler = logging.StreamHandler(sys.stderr)  # rospy.init_node sends Python logging to its log file only
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    node = SimFranka(args.task, config, seed=args.seed, image_size=args.image_size,
                     camera_rate_hz=args.camera_rate, state_rate_hz=args.state_rate)
    log.info("simulated Franka up: task %s, cameras %s", args.task, ", ".join(node.cameras))
    try:
        node.run()
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
