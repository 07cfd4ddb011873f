"""One control tick of the bridge, with no ROS in it: the adapter feeds messages in and publishes what comes out.

    core = BridgeCore(config, policy, task="press the stop button on the microwave")
    core.on_image("wrist", rgb, stamp); core.on_arm_state(ee_pose, q, robot_mode, stamp); core.on_fingers(w, stamp)
    core.arm(now); core.start(now)
    out = core.tick(now)          # at config.rate_hz: out.pose (or None), out.gripper ('open'/'close'/None)
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from bridge.config import BridgeConfig
from bridge.embodiment import ActionRejected, ArmMapping
from bridge.geometry import Pose
from bridge.observation import ObservationAssembler
from bridge.safety import GripperGate, filter_target
from bridge.scheduler import ChunkScheduler
from bridge.supervisor import Mode, Supervisor

log = logging.getLogger("bridge")

FAULT_ROBOT_MODES = {4: "robot reflex", 5: "user stop pressed"}  # franka_msgs/FrankaState.robot_mode


@dataclass(frozen=True)
class TickResult:
    """What the adapter publishes this tick (nothing when pose and gripper are None)."""

    tick: int
    mode: Mode
    pose: Pose | None  # EE target in panda_link0 for the Cartesian impedance controller
    gripper: str | None = None  # 'open' / 'close' on a change only
    reasons: tuple[str, ...] = ()  # why it holds, or which safety limits clipped the command
    action: np.ndarray | None = None  # the policy action behind the command


class PolicyLink:
    """Runs predict_action_chunk off the control thread, one request at a time (threaded=False: inline, for tests)."""

    def __init__(self, policy, threaded: bool = True):
        self.policy = policy
        self.threaded = threaded
        self._results: queue.Queue = queue.Queue()
        self._requests: queue.Queue = queue.Queue(maxsize=1)
        self._busy = threading.Event()
        if threaded:
            self._thread = threading.Thread(target=self._main, name="policy-link", daemon=True)
            self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, obs: dict, tag) -> None:
        self._busy.set()
        if self.threaded:
            self._requests.put((obs, tag))
        else:
            self._run(obs, tag)

    def poll(self) -> list[tuple]:
        """Finished requests: (tag, chunk or None, error message or '')."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self.threaded:
            try:
                self._requests.put_nowait(None)
            except queue.Full:
                pass

    def _main(self) -> None:
        while (item := self._requests.get()) is not None:
            self._run(*item)

    def _run(self, obs, tag) -> None:
        try:
            chunk, error = np.asarray(self.policy.predict_action_chunk(obs), dtype=np.float32), ""
        except Exception as err:  # a remote policy's timeouts, connection and server errors all end up here
            chunk, error = None, f"{type(err).__name__}: {err}"
        self._results.put((tag, chunk, error))
        self._busy.clear()


@dataclass
class _Arm:
    pose: Pose
    q: np.ndarray
    robot_mode: int
    stamp: float


@dataclass
class _Request:
    epoch: int
    obs_tick: int
    sent_at: float


class BridgeCore:
    """Observation -> policy -> schedule -> mapping -> safety -> command, under the supervisor."""

    def __init__(self, config: BridgeConfig, policy, task: str, threaded_policy: bool = True):
        config.check()
        self.config = config
        self.mapping = ArmMapping(policy.embodiment.name, config.mapping)
        self.assembler = ObservationAssembler(policy.cameras, task, int(getattr(policy, "image_size", 0) or 0),
                                              config.max_image_age_s, config.max_state_age_s)
        self.scheduler = ChunkScheduler(policy.chunk_size, policy.action_dim, config.execute_steps,
                                        config.execute_mode, config.ensemble_coeff)
        self.gripper = GripperGate(config.gripper_min_interval_s)
        self.supervisor = Supervisor()
        self.link = PolicyLink(policy, threaded=threaded_policy)
        self.arm_state: _Arm | None = None
        self.fingers: tuple[np.ndarray, float] | None = None
        self.tick_count = 0
        self.epoch = 0  # bumped on every hold: chunks asked for before it are dropped on arrival
        self.request: _Request | None = None
        self.hold_pose: Pose | None = None
        self.last_command: Pose | None = None
        self.input_errors = 0
        self.requests_sent = 0  # chunk requests submitted, and answers (chunks or errors) taken in: for status
        self.answers_received = 0

    # -- inputs (any thread; the adapter's callbacks) ----------------------------------------------------------------
    def on_image(self, camera: str, image, stamp: float) -> None:
        try:
            self.assembler.add_image(camera, image, stamp)
        except ValueError as err:
            self.input_errors += 1
            log.warning("dropped a frame: %s", err)

    def on_arm_state(self, ee_pose: Pose, q, robot_mode: int, stamp: float) -> None:
        """Franka's O_T_EE (as a Pose in panda_link0), joint positions and robot_mode."""
        if not isinstance(ee_pose, Pose) or not ee_pose.is_valid():
            self.input_errors += 1
            log.warning("dropped a robot state: the EE pose is malformed or not finite")
            return
        self.arm_state = _Arm(ee_pose, np.asarray(q, dtype=float), int(robot_mode), stamp)
        self._update_state()

    def on_fingers(self, positions, stamp: float) -> None:
        """The two finger joint positions (m), as franka_gripper's joint_states reports them."""
        self.fingers = (np.asarray(positions, dtype=float), stamp)
        self._update_state()

    def _update_state(self) -> None:
        if self.arm_state is None or self.fingers is None:
            return
        try:
            state = self.mapping.state(self.arm_state.pose, self.fingers[0])
            self.assembler.add_state(state, min(self.arm_state.stamp, self.fingers[1]))
        except ValueError as err:
            self.input_errors += 1
            log.warning("dropped a robot state: %s", err)

    # -- operator ------------------------------------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return self.supervisor.mode

    def arm(self, now: float) -> None:
        """idle -> armed: latch the current pose as the command (needs a robot state)."""
        if self.arm_state is None:
            raise ValueError("cannot arm: no robot state received yet")
        if self.arm_state.robot_mode in FAULT_ROBOT_MODES:
            raise ValueError(f"cannot arm: the robot reports {FAULT_ROBOT_MODES[self.arm_state.robot_mode]} "
                             f"(release it, then reset)")
        self.supervisor.arm(now)
        self._latch_hold()

    def start(self, now: float) -> None:
        self.supervisor.start(now)

    def stop(self, now: float) -> None:
        self.supervisor.stop(now)
        self._forget_plans()

    def abort(self, reason: str, now: float) -> None:
        """Operator (or watchdog) abort: fault, which only reset() leaves."""
        self.supervisor.fault(reason, now)
        self._latch_hold()

    def reset(self, recover, now: float) -> None:
        """Operator reset of a fault; `recover()` is the robot's error recovery (True or None on success)."""
        self.supervisor.reset(recover, now)
        self._forget_plans()

    def close(self) -> None:
        self.link.close()

    # -- the tick ------------------------------------------------------------------------------------------------------
    def tick(self, now: float) -> TickResult:
        tick = self.tick_count
        self.tick_count += 1
        sup = self.supervisor
        # Only while commanding: in idle nothing is sent, and the newest state may predate a just-finished error
        # recovery (arm() refuses while the robot still reports a reflex or user stop).
        arm = self.arm_state
        if arm is not None and arm.robot_mode in FAULT_ROBOT_MODES and sup.mode not in (Mode.IDLE, Mode.FAULT):
            if sup.mode is not Mode.FAULT:
                sup.fault(FAULT_ROBOT_MODES[self.arm_state.robot_mode], now)
                self._latch_hold()
        if sup.mode is Mode.IDLE:
            self._drain()
            return TickResult(tick, sup.mode, None)
        if sup.mode in (Mode.ARMED, Mode.FAULT):
            self._drain()
            return TickResult(tick, sup.mode, self.hold_pose, reasons=(sup.reason,) if sup.mode is Mode.FAULT else ())
        return self._run(tick, now)

    def _run(self, tick: int, now: float) -> TickResult:
        problems = self._collect_chunks(tick)
        stale = self.assembler.problems(now)
        problems += stale
        if self.request is not None and now - self.request.sent_at > self.config.policy_timeout_s:
            problems.append(f"policy sent no chunk within {self.config.policy_timeout_s:g} s")
        if not stale and not self.link.busy and self.scheduler.should_request(tick):
            obs, _ = self.assembler.assemble(now)  # built only when asked for: resizing frames is the tick's main cost
            self.link.submit(obs, (self.epoch, tick))
            self.requests_sent += 1
            self.scheduler.requested(tick)
            self.request = _Request(self.epoch, tick, now)
            problems += self._collect_chunks(tick)  # an inline link answers at once
        action = None
        if not problems:
            action = self.scheduler.action(tick)
            if action is None and not self.scheduler.chunks and self.request is not None:
                # Just started or resuming: the first chunk is on its way (the timeout above bounds the wait).
                return TickResult(tick, self.supervisor.mode, self.last_command, reasons=("waiting for the first chunk",))
            if action is None:
                problems.append("no action for this tick (the policy fell behind)")
        if not problems:
            try:
                target, grip = self.mapping.target(action, self.arm_state.pose)
            except ActionRejected as err:
                problems.append(f"action rejected: {err}")
        if not problems:
            verdict = filter_target(target, self.arm_state.pose, self.last_command or self.arm_state.pose,
                                    self.config.safety, q=self.arm_state.q)
            if not verdict.ok:
                problems.append(f"safety: {verdict.reason}")
        if problems:
            return self._hold(tick, now, problems)
        if self.supervisor.mode is Mode.HOLD:
            self.supervisor.resume(now)
        self.last_command = verdict.command
        return TickResult(tick, Mode.RUNNING, verdict.command, self.gripper.decide(grip, now), verdict.clipped, action)

    def _collect_chunks(self, tick: int) -> list[str]:
        problems = []
        for (epoch, obs_tick), chunk, error in self.link.poll():
            self.answers_received += 1
            if self.request is not None and self.request.epoch == epoch and self.request.obs_tick == obs_tick:
                self.request = None
            if epoch != self.epoch:
                continue  # asked for before the last hold: its plan must not resume
            if error:
                self.scheduler.failed()
                problems.append(f"policy error: {error}")
                continue
            try:
                self.scheduler.received(chunk, obs_tick, tick)
            except ValueError as err:
                self.scheduler.failed()
                problems.append(f"policy error: {err}")
        return problems

    def _hold(self, tick: int, now: float, problems: list[str]) -> TickResult:
        if self.supervisor.mode is not Mode.HOLD:
            self.supervisor.hold("; ".join(problems), now)
            self._latch_hold()
            self._forget_plans()
        else:
            self.supervisor.hold("; ".join(problems), now)
        return TickResult(tick, Mode.HOLD, self.hold_pose, reasons=tuple(problems))

    def _latch_hold(self) -> None:
        if self.arm_state is not None:
            self.hold_pose = self.arm_state.pose
            self.last_command = self.hold_pose

    def _forget_plans(self) -> None:
        self.epoch += 1
        self.scheduler.reset()
        if self.request is not None and not self.link.busy:
            self.request = None  # answered but not collected: dropped on arrival by its old epoch

    def _drain(self) -> None:
        for (epoch, obs_tick), _, _ in self.link.poll():
            self.answers_received += 1
            if self.request is not None and (epoch, obs_tick) == (self.request.epoch, self.request.obs_tick):
                self.request = None
