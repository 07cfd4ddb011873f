"""The bridge on ROS 1 (franka_ros): subscribes cameras, FrankaState and the gripper's joint states, ticks the
BridgeCore at a fixed rate, and commands the Cartesian impedance controller's equilibrium pose and the gripper
actions. One JSON status line a tick on `ros.status`; operator commands (arm, start, stop, abort, reset) on
`ros.command`. In dry-run it subscribes and computes but publishes no command and sends no goal.
"""

from __future__ import annotations

import json
import logging
import queue
import time

from bridge.config import BridgeConfig
from bridge.core import BridgeCore, TickResult
from bridge.loop import LoopStats, run_at_rate
from bridge.ros1 import convert
from bridge.supervisor import Mode, TransitionError

log = logging.getLogger("bridge")

COMMANDS = ("arm", "start", "stop", "abort", "reset")


class Ros1Bridge:
    """One bridge node; rospy.init_node must have been called."""

    def __init__(self, config: BridgeConfig, policy, task: str, dry_run: bool = False, autostart: bool = False):
        # lazy, here and below: ROS 1 (and the messages generated with it) is an optional extra
        import actionlib
        import rospy
        from sensor_msgs.msg import CompressedImage, Image, JointState
        from std_msgs.msg import String

        from bridge.ros1.messages import franka_gripper, franka_msgs

        self.rospy, self.config, self.dry_run, self.autostart = rospy, config, dry_run, autostart
        self.franka_gripper, self.franka_msgs = franka_gripper, franka_msgs
        self.core = BridgeCore(config, policy, task)
        self.commands: queue.Queue = queue.Queue()
        self.dropped = 0
        ros = config.ros
        cameras = config.camera_topics()
        missing = [c for c in self.core.assembler.cameras if c not in cameras]
        if missing:
            raise ValueError(f"the policy uses camera(s) {', '.join(missing)}; map them in ros.cameras (name=/topic)")
        self.subscribers = []
        for name, topic in cameras.items():
            if name not in self.core.assembler.cameras:
                continue
            compressed = topic.endswith("/compressed")
            self.subscribers.append(rospy.Subscriber(
                topic, CompressedImage if compressed else Image, self._on_image,
                callback_args=(name, compressed), queue_size=1, buff_size=2**24, tcp_nodelay=True))
        self.subscribers.append(rospy.Subscriber(ros.franka_state, franka_msgs.FrankaState, self._on_state,
                                                 queue_size=1, tcp_nodelay=True))
        self.subscribers.append(rospy.Subscriber(ros.gripper_joints, JointState, self._on_fingers, queue_size=1,
                                                 tcp_nodelay=True))
        self.subscribers.append(rospy.Subscriber(ros.command, String, self._on_command, queue_size=10))
        self.status = rospy.Publisher(ros.status, String, queue_size=10)
        self.pose_pub = None
        if not dry_run:
            from geometry_msgs.msg import PoseStamped

            self.pose_pub = rospy.Publisher(ros.equilibrium_pose, PoseStamped, queue_size=1, tcp_nodelay=True)
            self.move = actionlib.SimpleActionClient(ros.gripper_move, franka_gripper.MoveAction)
            self.grasp = actionlib.SimpleActionClient(ros.gripper_grasp, franka_gripper.GraspAction)
            self.recovery = actionlib.SimpleActionClient(ros.error_recovery, franka_msgs.ErrorRecoveryAction)

    # -- callbacks (rospy's threads) -----------------------------------------------------------------------------------
    def _on_image(self, msg, args) -> None:
        name, compressed = args
        try:
            rgb = convert.rgb_from_compressed(msg) if compressed else convert.rgb_from_image(msg)
        except ValueError as err:
            self._drop(f"camera {name}: {err}")
            return
        self.core.on_image(name, rgb, time.monotonic())

    def _on_state(self, msg) -> None:
        try:
            pose = convert.pose_from_column_major(msg.O_T_EE)
        except ValueError as err:
            self._drop(f"FrankaState: {err}")
            return
        self.core.on_arm_state(pose, list(msg.q), int(msg.robot_mode), time.monotonic())

    def _on_fingers(self, msg) -> None:
        try:
            fingers = convert.fingers_from_joint_state(msg)
        except ValueError as err:
            self._drop(str(err))
            return
        self.core.on_fingers(fingers, time.monotonic())

    def _on_command(self, msg) -> None:
        self.commands.put(msg.data.strip())

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            log.warning("dropped a message (%d so far): %s", self.dropped, why)

    # -- operator --------------------------------------------------------------------------------------------------------
    def _operate(self, now: float) -> None:
        if self.autostart and self.core.mode is Mode.IDLE and not self.core.assembler.problems(now):
            self.autostart = False
            self.commands.put("arm")
            self.commands.put("start")
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                if command == "arm":
                    self.core.arm(now)
                elif command == "start":
                    self.core.start(now)
                elif command == "stop":
                    self.core.stop(now)
                elif command == "abort":
                    self.core.abort("operator abort", now)
                elif command == "reset":
                    self.core.reset(self._recover, now)
                else:
                    log.error("unknown command %r; one of %s", command, ", ".join(COMMANDS))
            except (TransitionError, ValueError) as err:
                log.error("command %s refused: %s", command, err)

    def _recover(self) -> bool:
        """franka_control's error recovery action (a dry run has nothing to recover)."""
        if self.dry_run:
            return True
        timeout = self.rospy.Duration(self.config.ros.recovery_timeout_s)
        if not self.recovery.wait_for_server(timeout):
            raise TimeoutError(f"no error recovery action server at {self.config.ros.error_recovery}")
        self.recovery.send_goal(self.franka_msgs.ErrorRecoveryGoal())
        if not self.recovery.wait_for_result(timeout):
            raise TimeoutError(f"error recovery gave no result within {self.config.ros.recovery_timeout_s:g} s")
        return self.recovery.get_state() == 3  # actionlib_msgs/GoalStatus.SUCCEEDED

    # -- the tick --------------------------------------------------------------------------------------------------------
    def step(self, now: float) -> TickResult:
        """Operator commands, one core tick, then publish its command (unless dry-run) and the status line."""
        self._operate(now)
        sent_before = self.core.requests_sent
        out = self.core.tick(now)
        stamp = self.rospy.Time.now()
        published = False
        if out.pose is not None and self.pose_pub is not None:
            self.pose_pub.publish(convert.pose_message(out.pose, self.config.ros.pose_frame, stamp))
            published = True
        if out.gripper is not None and not self.dry_run:
            self._send_gripper(out.gripper)
        self.status.publish(json.dumps({
            "tick": out.tick, "time": time.time(), "mode": out.mode.value, "reasons": list(out.reasons),
            "published": published, "gripper": out.gripper, "requested": self.core.requests_sent > sent_before,
            "answers": self.core.answers_received, "dropped": self.dropped,
            "pose": None if out.pose is None else [round(float(v), 5) for v in out.pose.pos],
        }))
        return out

    def _send_gripper(self, command: str) -> None:
        g, ros = self.franka_gripper, self.config.ros
        if command == "open":
            self.move.send_goal(g.MoveGoal(width=ros.gripper_open_width, speed=ros.gripper_speed))
        else:
            eps = g.GraspEpsilon(inner=ros.grasp_epsilon, outer=ros.grasp_epsilon)
            self.grasp.send_goal(g.GraspGoal(width=ros.grasp_width, epsilon=eps, speed=ros.gripper_speed,
                                             force=ros.grasp_force))

    def run(self, ticks: int | None = None) -> LoopStats:
        """Tick at config.rate_hz until ROS shuts down (or `ticks` ran)."""
        try:
            return run_at_rate(self.step, self.config.rate_hz, ticks=ticks, should_stop=self.rospy.is_shutdown)
        finally:
            self.core.close()
