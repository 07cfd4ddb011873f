"""The ROS 1 side of the bridge: franka_msgs generated with upstream checksums, message conversions, the config
file, the mapping's inverse, and the whole chain on a real ROS master (simulated Franka -> ROS -> bridge -> policy
server -> bridge -> ROS -> simulated Franka) with faults injected.

ROS 1 comes from Debian's packages (bash scripts/setup_ros.sh, run by scripts/setup.sh); without it these tests
skip, except under CI (CI set), where a missing ROS is a failure."""

import importlib.util
import io
import json
import os
import sys
import sysconfig
import threading
import time
import xmlrpc.client
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from bridge.config import BridgeConfig, file_overrides
from bridge.embodiment import ArmMapping
from bridge.geometry import Pose, axis_angle_to_mat
from bridge.ros1.convert import (column_major, fingers_from_joint_state, image_message, pose_from_column_major,
                                 pose_from_message, pose_message, rgb_from_compressed, rgb_from_image)
from bridge.ros1.launch import ROOT, RosGraph, ros_missing
from contract.cli import apply_overrides
from policies.server import PolicyServer, ServerThread
from policies.vla_policy import VLAPolicy
from vla.data.synthetic import write_synthetic_dataset
from vla.train.cli import parse_args
from vla.train.preflight import plan_run
from vla.train.workspace import Workspace

MISSING = ros_missing()
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI needs ROS 1 for the bridge tests: {MISSING}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)

DOWN = np.diag([1.0, -1.0, -1.0])

# Checksums of the messages a real franka_ros (0.10.x) speaks, as its catkin build generated them (rosserial
# headers generated from franka_ros' own franka_msgs/franka_gripper packages): ours must equal them for a real
# robot's topics and action servers to accept our connections.
UPSTREAM_MD5 = {
    ("franka_msgs", "FrankaState"): "431567d5df6caf4e4dd7385f25cb71ee",
    ("franka_msgs", "Errors"): "082e9a670c96d8bc64b53e32777458e7",
    ("franka_gripper", "GraspGoal"): "627a0f0b10ad0c919fbd62b0b3427e63",
    ("franka_gripper", "MoveActionGoal"): "f8907a1e7bb902f2e4c7db8e1cf3d24f",
    ("franka_gripper", "GraspActionGoal"): "7bd1a6e7f94ef15bb6dd05cb170e7909",
}


def test_debian_ros_modules_never_shadow_the_venvs_own_packages():
    site = Path(sysconfig.get_paths()["purelib"])
    pth = site / "ros1_system.pth"
    if not pth.exists():
        pytest.skip("ROS 1 does not come from scripts/setup_ros.sh here")
    links = Path(pth.read_text().strip())
    assert sys.path.index(str(links)) > sys.path.index(str(site))  # after site-packages: the venv wins a tie
    names = {p.name.removesuffix(".py") for p in links.iterdir()}
    assert "rospy" in names and "pkg_resources" not in names
    assert not names & {p.name.removesuffix(".py") for p in site.iterdir()}  # and there is no tie
    for name in ("numpy", "yaml", "six", "dateutil"):
        assert Path(importlib.util.find_spec(name).origin).is_relative_to(site), name


# -- messages ----------------------------------------------------------------------------------------------------------

def test_generated_franka_messages_have_the_real_robots_checksums():
    # bridge.ros1.messages and the ROS message packages stay in the tests: they need ROS 1 to import (this module
    # must import without it, so that its tests skip)
    from bridge.ros1.messages import expected_md5, franka_gripper, franka_msgs

    packages = {"franka_msgs": franka_msgs, "franka_gripper": franka_gripper}
    for (package, name), md5 in UPSTREAM_MD5.items():
        cls = getattr(packages[package], name)
        assert cls._md5sum == md5 == expected_md5(package)[name], f"{package}/{name}"
        assert cls._type == f"{package}/{name}"
    # every action's eight messages exist, and the ones rospy sends carry a header
    for action in ("Move", "Grasp", "Homing", "Stop"):
        for suffix in ("Action", "ActionGoal", "ActionResult", "ActionFeedback", "Goal", "Result", "Feedback"):
            assert hasattr(franka_gripper, action + suffix)
    assert franka_gripper.MoveActionGoal._has_header and franka_msgs.ErrorRecoveryAction


def test_franka_state_round_trips_through_its_wire_format():
    from bridge.ros1.messages import franka_msgs

    pose = Pose(np.array([0.4, -0.1, 0.3]), axis_angle_to_mat([0.1, -0.2, 0.3]) @ DOWN)
    msg = franka_msgs.FrankaState(O_T_EE=column_major(pose), q=[0.1] * 7,
                                  robot_mode=franka_msgs.FrankaState.ROBOT_MODE_REFLEX)
    msg.current_errors.joint_reflex = True
    buffer = io.BytesIO()
    msg.serialize(buffer)
    back = franka_msgs.FrankaState().deserialize(buffer.getvalue())
    assert back.robot_mode == 4 and back.current_errors.joint_reflex and not back.last_motion_errors.joint_reflex
    got = pose_from_column_major(back.O_T_EE)
    np.testing.assert_allclose(got.matrix(), pose.matrix(), atol=1e-12)
    assert np.asarray(back.O_T_EE)[12:15].tolist() == pytest.approx([0.4, -0.1, 0.3])  # translation: last column


def test_action_definitions_expand_as_genaction_does():
    from bridge.ros1.messages import action_messages

    out = action_messages("Grasp", "float64 width\nGraspEpsilon epsilon\n---\nbool success\n---\n")
    assert out["GraspGoal"] == "float64 width\nGraspEpsilon epsilon\n" and out["GraspFeedback"] == ""
    assert out["GraspActionGoal"].splitlines() == ["Header header", "actionlib_msgs/GoalID goal_id", "GraspGoal goal"]
    with pytest.raises(ValueError, match="Broken.action must have goal, result and feedback"):
        action_messages("Broken", "float64 width\n")


# -- conversions -------------------------------------------------------------------------------------------------------

def test_camera_frames_decode_to_rgb_whatever_the_encoding():
    from sensor_msgs.msg import CompressedImage, Image

    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    assert (rgb_from_image(image_message(rgb, stamp=None)) == rgb).all()
    padded = np.zeros((24, 32 * 3 + 4), np.uint8)  # rows padded to a 100-byte step, channels BGR
    padded[:, :96] = rgb[:, :, ::-1].reshape(24, 96)
    bgr = Image(height=24, width=32, encoding="bgr8", step=100, data=padded.tobytes())
    assert (rgb_from_image(bgr) == rgb).all()
    png = io.BytesIO()
    PILImage.fromarray(rgb).save(png, format="PNG")
    assert (rgb_from_compressed(CompressedImage(format="png", data=png.getvalue())) == rgb).all()
    with pytest.raises(ValueError, match="image encoding '16UC1' is not one of"):
        rgb_from_image(Image(height=24, width=32, encoding="16UC1", step=64, data=bytes(24 * 64)))
    with pytest.raises(ValueError, match="cannot hold"):
        rgb_from_image(Image(height=24, width=32, encoding="rgb8", step=96, data=bytes(100)))
    with pytest.raises(ValueError, match="does not decode"):
        rgb_from_compressed(CompressedImage(format="jpeg", data=b"not a jpeg"))


def test_poses_and_finger_joints_from_messages():
    from sensor_msgs.msg import JointState

    pose = Pose(np.array([0.5, 0.0, 0.2]), axis_angle_to_mat([0.0, 0.3, 0.0]) @ DOWN)
    msg = pose_message(pose, "panda_link0", stamp=None)
    assert msg.header.frame_id == "panda_link0"
    np.testing.assert_allclose(pose_from_message(msg).matrix(), pose.matrix(), atol=1e-12)
    msg.pose.orientation.w = float("nan")
    with pytest.raises(ValueError, match="not finite with a unit quaternion"):
        pose_from_message(msg)
    named = JointState(name=["panda_finger_joint2", "panda_finger_joint1"], position=[0.02, 0.03])
    assert fingers_from_joint_state(named).tolist() == [0.03, 0.02]
    with pytest.raises(ValueError, match="must carry panda_finger_joint1 and panda_finger_joint2"):
        fingers_from_joint_state(JointState(name=["a"], position=[0.1]))


# -- config and mapping ------------------------------------------------------------------------------------------------

def test_the_shipped_config_file_is_the_defaults_and_flags_override_it(tmp_path):
    sys.path.insert(0, "scripts")
    from ros_bridge import parse

    assert apply_overrides(BridgeConfig(), file_overrides(ROOT / "bridge/ros1/franka_ros.toml")) == BridgeConfig()
    site = tmp_path / "cell.toml"
    site.write_text('[safety]\nworkspace_min = [0.3, -0.2, 0.1]\n[ros]\ncameras = ["wrist=/rs/color/compressed"]\n')
    run, config = parse(["--policy", "ws://10.0.0.2:8000", "--task", "open the drawer", "--config", str(site),
                         "--rate", "20", "--dry-run", "--safety.max-step-m", "0.005"])
    assert run.dry_run and run.policy == "ws://10.0.0.2:8000" and config.rate_hz == 20
    assert config.safety.workspace_min == (0.3, -0.2, 0.1) and config.safety.max_step_m == 0.005
    assert config.camera_topics() == {"wrist": "/rs/color/compressed"}
    with pytest.raises(ValueError, match=r"unknown option --safety.max_stp_m \(did you mean 'safety.max_step_m'"):
        parse(["--policy", "ws://h:1", "--task", "t", "--safety.max-stp-m", "1"])
    with pytest.raises(ValueError, match="--task"):
        parse(["--policy", "ws://h:1"])
    with pytest.raises(ValueError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("rate_hz = = 3")
        parse(["--policy", "ws://h:1", "--task", "t", "--config", str(tmp_path / "bad.toml")])


@pytest.mark.parametrize("embodiment", ["robocasa_panda_omron", "franka_panda"])
def test_mapping_inverses_undo_the_forward_maps(embodiment):
    mapping = ArmMapping(embodiment)
    measured = Pose(np.array([0.3, 0.05, 0.5]), axis_angle_to_mat([0.05, 0.1, -0.2]) @ DOWN)
    state = mapping.state(measured, [0.03, 0.03])
    np.testing.assert_allclose(mapping.ee_in_link0(state).matrix(), measured.matrix(), atol=1e-6)  # float32 state
    near = Pose(measured.pos + [0.02, -0.01, 0.03], axis_angle_to_mat([0.0, 0.2, 0.1]) @ measured.rot)
    action = mapping.action_toward(near, measured, gripper=1.0)
    target, grip = mapping.target(action, measured)
    assert grip == 1.0
    np.testing.assert_allclose(target.matrix(), near.matrix(), atol=1e-9)
    far = Pose(measured.pos + [0.5, 0.0, 0.0], measured.rot)  # beyond one action: clipped to 0.05 m
    target, _ = mapping.target(mapping.action_toward(far, measured, -1.0), measured)
    assert np.linalg.norm(target.pos - measured.pos) == pytest.approx(0.05)


# -- the whole chain on a real ROS master ------------------------------------------------------------------------------

class ServedPolicy:
    """A tiny trained checkpoint behind the policy server, with switchable faults (nan: every action NaN).

    A model trained for one step emits random base-mode channels, which the bridge rightly refuses ("asks for
    base motion"); the mode channel is pinned to arm so the episode runs (the refusal has its own core test).
    """

    def __init__(self, policy):
        self.policy, self.fault = policy, ""
        self.embodiment, self.cameras = policy.embodiment, policy.cameras
        self.chunk_size, self.action_dim, self.image_size = policy.chunk_size, policy.action_dim, policy.image_size
        self.source = policy.source

    def predict_action_chunk(self, obs):
        chunk = np.array(self.policy.predict_action_chunk(obs), np.float32)
        chunk[..., self.embodiment.action_slice("base_mode").start] = -1.0
        if self.fault == "nan":
            chunk[...] = np.nan
        return chunk


class Observer:
    """The test's own node: the bridge's status lines, its commands, the arm's state and the wrist camera."""

    def __init__(self, config: BridgeConfig):
        import rospy
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from bridge.ros1.messages import franka_msgs

        self.lock = threading.RLock()  # wait()'s predicates may call since()
        self.status: list[dict] = []
        self.commands: list[tuple[float, Pose]] = []
        self.wrist_times: list[float] = []
        self.state_modes: list[tuple[float, int]] = []
        self.ee: Pose | None = None

        def on_status(msg):
            with self.lock:
                self.status.append(json.loads(msg.data))

        def on_command(msg):
            with self.lock:
                self.commands.append((time.time(), pose_from_message(msg)))

        def on_state(msg):
            with self.lock:
                self.ee = pose_from_column_major(msg.O_T_EE)
                if not self.state_modes or self.state_modes[-1][1] != msg.robot_mode:
                    self.state_modes.append((time.time(), msg.robot_mode))

        def on_wrist(msg):
            with self.lock:
                self.wrist_times.append(time.time())

        ros = config.ros
        self.subs = [rospy.Subscriber(ros.status, String, on_status, queue_size=100),
                     rospy.Subscriber(ros.equilibrium_pose, PoseStamped, on_command, queue_size=100),
                     rospy.Subscriber(ros.franka_state, franka_msgs.FrankaState, on_state, queue_size=10),
                     rospy.Subscriber(config.camera_topics()["wrist"], Image, on_wrist, queue_size=10)]
        self.command_pub = rospy.Publisher(ros.command, String, queue_size=10, latch=False)
        self.fault_pub = rospy.Publisher("/sim_franka/fault", String, queue_size=10)

    def send(self, command: str) -> None:
        self.command_pub.publish(command)

    def fault(self, what: str) -> float:
        t = time.time()
        self.fault_pub.publish(what)
        return t

    def wait(self, predicate, timeout: float, what: str) -> dict:
        """The first status line (from now on) that satisfies predicate."""
        with self.lock:
            start = len(self.status)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for line in self.status[start:]:
                    if predicate(line):
                        return line
            time.sleep(0.02)
        with self.lock:
            last = self.status[-1] if self.status else None
        raise AssertionError(f"no status line with {what} within {timeout} s; last: {last}")

    def since(self, t: float) -> list[dict]:
        with self.lock:
            return [s for s in self.status if s["time"] >= t]


def _ticks_until_hold(lines: list[dict], after: float) -> int:
    """Ticks from the first tick starting after `after` to the first one not running (0: that very tick)."""
    ticks = [s for s in lines if s["time"] > after]
    first_bad = next(s for s in ticks if s["mode"] != "running")
    return first_bad["tick"] - ticks[0]["tick"]


def _tiny_checkpoint(tmp_path):
    dataset = write_synthetic_dataset(tmp_path / "demos", num_episodes=1, length=12, image_size=64,
                                      tasks=("TurnOffMicrowave",))
    train_cfg, model_cfg = parse_args(["--preset", "tiny", "--dataset", str(dataset), "--output", str(tmp_path / "runs"),
                                       "--batch-size", "2", "--steps", "1", "--save-every", "1", "--wandb", "false"])
    return Workspace(plan_run(train_cfg, model_cfg)).run().run_dir / "checkpoint-000001"


@pytest.mark.timeout(600)
def test_simulated_franka_through_ros_runs_the_policy_and_holds_on_every_fault(tmp_path):
    """Master, simulated arm and bridge as processes on loopback; policy server and observer in this process."""
    import rospy
    from std_msgs.msg import String

    policy = ServedPolicy(VLAPolicy.from_checkpoint(_tiny_checkpoint(tmp_path), device="cpu"))
    server_thread = ServerThread(PolicyServer(policy, port=0))
    server = server_thread.__enter__()
    # A busy 2-core test machine: the state arrives every 20 ms but the simulator's renders can delay it, and the
    # model's CPU answer can take a while; limits that the faults below exceed by far.
    config_file = tmp_path / "bridge.toml"
    config_file.write_text("max_state_age_s = 0.5\nmax_image_age_s = 0.5\npolicy_timeout_s = 5.0\n"
                           "gripper_min_interval_s = 0.5\n")
    config = apply_overrides(BridgeConfig(), file_overrides(config_file))
    rate, period = config.rate_hz, 1 / config.rate_hz
    python = [sys.executable]
    try:
        with RosGraph(tmp_path / "ros") as graph:
            graph.spawn("sim", python + ["-m", "bridge.ros1.sim_franka", "--task", "TurnOffMicrowave",
                                         "--image-size", "96", "--camera-rate", "15", "--config", str(config_file)])
            graph.spawn("bridge", python + ["scripts/ros_bridge.py", "--policy", f"ws://127.0.0.1:{server.port}",
                                            "--task", "turn off the microwave", "--config", str(config_file),
                                            "--start"])
            rospy.init_node("test_observer", anonymous=True, disable_signals=True)
            obs = Observer(config)

            def running_again(what):
                obs.wait(lambda s: s["mode"] == "running" and s["published"], 120, f"running after {what}")

            # 1. A short episode: the policy runs, every command is safe, and the arm follows it.
            obs.wait(lambda s: s["mode"] == "running", 240, "mode running (sim, bridge and policy up)")
            t0 = time.time()
            obs.wait(lambda s: sum(x["mode"] == "running" for x in obs.since(t0)) >= 30, 120, "30 running ticks")
            running = [s for s in obs.since(t0) if s["mode"] == "running"]
            assert len(running) >= 25, [s["mode"] for s in obs.since(t0)]
            with obs.lock:
                commands = [p for t, p in obs.commands if t >= t0]
                ee = obs.ee
            lo, hi = np.array(config.safety.workspace_min), np.array(config.safety.workspace_max)
            assert len(commands) >= 25 and all(p.is_valid() and (lo <= p.pos).all() and (p.pos <= hi).all()
                                               for p in commands)
            steps = [np.linalg.norm(b.pos - a.pos) for a, b in zip(commands, commands[1:])]
            assert max(steps) <= config.safety.max_step_m + 1e-6 and sum(steps) > 0.02  # it moved, one step at a time
            assert np.linalg.norm(ee.pos - commands[-1].pos) <= config.safety.max_offset_m + 0.01  # arm followed

            # A dry run beside it: it subscribes, computes and reports, and never publishes a command or a goal.
            dry_status = []
            rospy.Subscriber("/dry/status", String, lambda m: dry_status.append(json.loads(m.data)))
            graph.spawn("dry", python + ["scripts/ros_bridge.py", "--policy", f"ws://127.0.0.1:{server.port}",
                                         "--task", "turn off the microwave", "--config", str(config_file), "--start",
                                         "--dry-run", "--node-name", "dry_bridge", "--ros.status", "/dry/status",
                                         "--ros.command", "/dry/command"])
            deadline = time.monotonic() + 120
            while sum(s["mode"] == "running" for s in dry_status) < 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sum(s["mode"] == "running" for s in dry_status) >= 10 and not any(s["published"] for s in dry_status)
            publishers, subscribers, _ = xmlrpc.client.ServerProxy(graph.uri).getSystemState("/test")[2]
            topics = {topic: nodes for topic, nodes in publishers}
            assert "/dry_bridge" in topics[config.ros.status.replace("xvr_bridge", "dry")]
            for topic, nodes in publishers:
                if topic in (config.ros.equilibrium_pose, "/franka_gripper/move/goal", "/franka_gripper/grasp/goal",
                             "/franka_control/error_recovery/goal"):
                    assert "/dry_bridge" not in nodes and "/xvr_bridge" in nodes, (topic, nodes)
            graph.stop("dry")

            # 2. Stale camera: hold within two ticks of the last wrist frame growing too old.
            obs.fault("camera_off wrist")
            hold = obs.wait(lambda s: s["mode"] == "hold" and any("camera wrist stale" in r for r in s["reasons"]),
                            30, "hold on the stale wrist camera")
            with obs.lock:
                last_frame = obs.wrist_times[-1]
            assert _ticks_until_hold(obs.since(last_frame), last_frame + config.max_image_age_s) <= 1, hold
            obs.fault("camera_on wrist")
            running_again("the camera came back")

            # 3. A policy answering NaN: the server already refuses to send it (an error reply), the bridge holds on
            # the tick the reply arrives (its own NaN check is a core test); back to normal when the policy is.
            policy.fault = "nan"
            t_nan = time.time()
            hold = obs.wait(lambda s: s["mode"] == "hold" and any("NaN" in r for r in s["reasons"]), 60,
                            "hold on NaN actions")
            lines = obs.since(t_nan)
            before = next(s for s in reversed(lines) if s["tick"] == hold["tick"] - 1)
            assert hold["answers"] > before["answers"]  # the NaN chunk was refused on the tick it arrived
            with obs.lock:
                assert all(np.isfinite(p.pos).all() for t, p in obs.commands if t >= t_nan)
            policy.fault = ""
            running_again("the policy recovered")

            # 4/5. Reflex and user stop: fault at once; only an operator reset (error recovery) leaves it.
            for fault, reason in (("reflex", "robot reflex"), ("user_stop", "user stop pressed")):
                obs.fault(fault)
                line = obs.wait(lambda s: s["mode"] == "fault", 30, f"fault on {fault}")
                assert line["reasons"] == [reason]
                with obs.lock:
                    seen = next(t for t, mode in obs.state_modes if mode in (4, 5))
                    obs.state_modes.clear()
                assert _ticks_until_hold(obs.since(seen), seen) <= 1, (fault, line)
                time.sleep(3 * period)
                assert obs.since(time.time() - 2 * period)[-1]["mode"] == "fault"  # it stays
                obs.send("reset")
                obs.wait(lambda s: s["mode"] == "idle", 30, f"idle after the reset from {fault}")
                deadline = time.monotonic() + 5
                while not (obs.state_modes and obs.state_modes[-1][1] == 2) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert obs.state_modes[-1][1] == 2  # error recovery ran on the arm
                for _ in range(5):  # arm is refused while the bridge's newest state still says reflex: retry
                    obs.send("arm")
                    obs.send("start")
                    try:
                        obs.wait(lambda s: s["mode"] == "running", 2, "running")
                        break
                    except AssertionError:
                        continue
                running_again(f"the reset from {fault}")

            # 6. The policy server dies: the next request fails and the arm holds within two ticks of it.
            server_thread.__exit__(None, None, None)
            t_dead = time.time()
            hold = obs.wait(lambda s: s["mode"] == "hold", 30, "hold after the policy server died")
            assert any("policy error" in r for r in hold["reasons"]), hold
            lines = obs.since(t_dead)
            request = next(s for s in lines if s["requested"])
            assert hold["tick"] - request["tick"] <= 2, (request, hold)
            time.sleep(5 * period)
            held = [s["pose"] for s in obs.since(hold["time"]) if s["mode"] == "hold"]
            assert len(held) >= 4 and all(p == held[0] for p in held)  # the latched pose, every tick
            assert graph.processes["bridge"].poll() is None and graph.processes["sim"].poll() is None
            rospy.signal_shutdown("test done")
    finally:
        server_thread.__exit__(None, None, None)
