"""The bridge core without ROS: chunk scheduling, the supervisor, observation staleness, and whole ticks against a
simulated arm, with faults injected (stale camera or state, policy errors and silence, NaN actions, reflexes)."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import BridgeConfig, file_overrides
from bridge.core import BridgeCore
from bridge.geometry import Pose
from bridge.loop import run_at_rate
from bridge.observation import ObservationAssembler
from bridge.scheduler import ChunkScheduler
from bridge.supervisor import Mode, Supervisor, TransitionError
from contract.cli import apply_overrides
from contract.embodiments import get_embodiment
from policies.remote import RemotePolicy
from policies.server import PolicyServer, ServerThread

DOWN = np.diag([1.0, -1.0, -1.0])
START = Pose(np.array([0.40, 0.0, 0.40]), DOWN)
READY_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
DT = 1 / 15


# -- scheduler ---------------------------------------------------------------------------------------------------------

def _chunk(start, horizon=16, dim=2):
    """Action i of the chunk is start + i in every dim: shows which chunk and step an action came from."""
    return np.repeat(np.arange(start, start + horizon, dtype=np.float32)[:, None], dim, axis=1)


def test_chunk_mode_skips_the_ticks_spent_waiting_and_asks_early_by_the_latency():
    s = ChunkScheduler(horizon=16, action_dim=2, execute_steps=8)
    assert s.should_request(0) and s.action(0) is None  # nothing yet: a gap
    s.requested(0)
    assert not s.should_request(1)  # one request in flight at a time
    s.received(_chunk(100), obs_tick=0, tick=3)  # predicted from tick 0's observation, arrived at tick 3
    assert s.action(3)[0] == 103 and s.latency_ticks == 3
    assert not s.should_request(4) and s.should_request(5)  # 8 - 3: the next chunk should land by tick 8
    s.requested(5)
    s.received(_chunk(200), obs_tick=5, tick=8)
    assert s.action(8)[0] == 203  # the newest chunk wins
    assert s.action(20)[0] == 215 and s.action(21) is None  # past the newest chunk's end: a gap


def test_ensemble_mode_blends_overlapping_chunks_oldest_first():
    s = ChunkScheduler(horizon=16, action_dim=2, execute_steps=2, mode="ensemble", ensemble_coeff=0.5)
    s.received(_chunk(0), obs_tick=0, tick=0)
    s.received(_chunk(100), obs_tick=2, tick=2)
    w = np.exp(-0.5 * np.arange(2))
    assert s.action(3)[0] == pytest.approx((w[0] * 3 + w[1] * 101) / w.sum())
    assert not s.should_request(3) and s.should_request(4)
    with pytest.raises(ValueError, match=r"chunk must be \(16, 2\)"):
        s.received(np.zeros((4, 2)), obs_tick=4, tick=4)


# -- supervisor --------------------------------------------------------------------------------------------------------

def test_supervisor_transitions_and_operator_reset():
    sup = Supervisor()
    with pytest.raises(TransitionError, match="cannot go from idle to running"):
        sup.start()
    sup.arm()
    sup.start()
    sup.hold("camera wrist stale")
    sup.hold("camera wrist stale; robot state stale")  # still one hold, reason updated
    sup.resume()
    sup.fault("robot reflex")
    with pytest.raises(TransitionError):
        sup.resume()
    sup.reset(lambda: False)
    assert sup.mode is Mode.FAULT and sup.reason == "error recovery failed"
    sup.reset(lambda: (_ for _ in ()).throw(RuntimeError("no action server")))
    assert sup.mode is Mode.FAULT and "no action server" in sup.reason
    sup.reset(lambda: None)
    assert sup.mode is Mode.IDLE
    assert [t.target.value for t in sup.history] == ["armed", "running", "hold", "running", "fault", "idle"]
    with pytest.raises(TransitionError, match="reset applies to a fault"):
        sup.reset(lambda: True)


# -- observation -------------------------------------------------------------------------------------------------------

def test_observation_needs_every_camera_and_a_fresh_state():
    a = ObservationAssembler(("left", "wrist"), "open the drawer", image_size=64, max_image_age_s=0.2,
                             max_state_age_s=0.1)
    assert a.assemble(0.0)[1] == ["no frame from camera left yet", "no frame from camera wrist yet",
                                  "no robot state yet"]
    a.add_image("left", np.zeros((480, 640, 3), np.uint8), 1.0)
    a.add_image("wrist", np.zeros((480, 640, 3), np.uint8), 1.0)
    a.add_state(np.zeros(16), 1.0)
    obs, problems = a.assemble(1.05)
    assert problems == [] and obs["observation.images.left"].shape == (64, 64, 3) and obs["task"] == "open the drawer"
    assert a.assemble(1.15)[1] == ["robot state stale (0.15 s > 0.1 s)"]
    with pytest.raises(ValueError, match="expected a uint8 HxWx3 RGB frame; got float32"):
        a.add_image("left", np.zeros((480, 640, 3), np.float32), 2.0)
    with pytest.raises(ValueError, match="unknown camera 'right'"):
        a.add_image("right", np.zeros((480, 640, 3), np.uint8), 2.0)
    with pytest.raises(ValueError, match="finite"):
        a.add_state([np.nan] * 16, 2.0)


# -- the core against a simulated arm ----------------------------------------------------------------------------------

class ScriptedPolicy:
    """A chunk policy with the server's metadata; its actions come from `make(call index) -> (16, 12)`."""

    def __init__(self, make):
        self.embodiment = get_embodiment("robocasa_panda_omron")
        self.cameras, self.chunk_size, self.action_dim, self.image_size = ("left", "right", "wrist"), 16, 12, 32
        self.make, self.calls = make, 0

    def predict_action_chunk(self, obs):
        assert obs["observation.state"].shape == (16,) and obs["observation.images.wrist"].shape == (32, 32, 3)
        self.calls += 1
        return self.make(self.calls - 1)


def forward(vx=1.0, gripper=1.0):
    def make(_):
        chunk = np.zeros((16, 12), np.float32)
        chunk[:, 0], chunk[:, 6], chunk[:, 11] = vx, gripper, -1
        return chunk
    return make


class Rig:
    """A core wired to an arm that reaches each command by the next tick, with cameras and a gripper."""

    def __init__(self, policy, **config):
        self.core = BridgeCore(BridgeConfig(**config), policy, task="press the button", threaded_policy=False)
        self.now, self.pose, self.robot_mode = 100.0, START, 2
        self.feed()
        self.core.arm(self.now)
        self.core.start(self.now)
        self.sent: list[Pose] = []

    def feed(self, cameras=("left", "right", "wrist"), state=True):
        for cam in cameras:
            self.core.on_image(cam, np.full((48, 64, 3), 50, np.uint8), self.now)
        if state:
            self.core.on_arm_state(self.pose, READY_Q, self.robot_mode, self.now)
            self.core.on_fingers([0.04, 0.04], self.now)

    def step(self, **feed):
        out = self.core.tick(self.now)
        if out.pose is not None:
            self.sent.append(out.pose)
            self.pose = out.pose
        self.now += DT
        self.feed(**feed)
        return out


def test_running_moves_one_limited_step_a_tick_and_closes_the_gripper_once():
    rig = Rig(ScriptedPolicy(forward(vx=1.0)))
    outs = [rig.step() for _ in range(20)]
    assert all(o.mode is Mode.RUNNING for o in outs)
    steps = np.diff([p.pos[0] for p in [START] + rig.sent])
    np.testing.assert_allclose(steps, 0.01, atol=1e-8)  # asked for 5 cm a tick, given 1 cm (the step limit)
    assert [o.gripper for o in outs].count("close") == 1 and outs[0].gripper == "close"
    assert outs[0].reasons == ("step_position", "offset_position")
    assert rig.core.link.policy.calls == 3  # ticks 0, 8, 16


def test_stale_camera_holds_within_two_ticks_then_resumes():
    rig = Rig(ScriptedPolicy(forward(vx=0.1)))
    for _ in range(5):
        rig.step()
    last_frame = rig.now  # the wrist camera's last frame (then it stops)
    modes = [rig.step(cameras=("left", "right")) for _ in range(8)]
    first_hold = next(o for o in modes if o.mode is Mode.HOLD)
    stale_since = last_frame + rig.core.config.max_image_age_s
    hold_time = 100.0 + first_hold.tick * DT  # tick k runs at 100 + k / 15 s
    assert 0 < hold_time - stale_since <= 2 * DT and "camera wrist stale" in first_hold.reasons[0]
    held = first_hold.pose
    assert all(o.pose is held for o in modes[modes.index(first_hold):])  # the latched pose, every tick
    outs = [rig.step() for _ in range(3)]  # frames again: a fresh chunk, then running
    assert outs[0].mode is Mode.HOLD and outs[-1].mode is Mode.RUNNING


@pytest.mark.parametrize("fault", ["nan", "huge", "base_mode", "error", "wrong_shape"])
def test_bad_policy_output_never_reaches_the_arm(fault):
    def make(call):
        chunk = forward(vx=0.2)(call)
        if call >= 1:
            if fault == "nan":
                chunk[:, 1] = np.nan
            elif fault == "huge":
                chunk[:, :6] = 1e30
            elif fault == "base_mode":
                chunk[:, 11] = 1
            elif fault == "error":
                raise ConnectionError("policy server at ws://127.0.0.1:8000 closed the connection")
            else:
                return chunk[:4]
        return chunk

    rig = Rig(ScriptedPolicy(make))
    outs = [rig.step() for _ in range(12)]
    assert all(o.mode is Mode.RUNNING for o in outs[:8])  # the second chunk is asked for (and used) at tick 8
    assert all(np.isfinite(p.pos).all() for p in rig.sent)
    if fault == "huge":  # finite, so clipped (to +-1 by the mapping, then to one step), not refused
        assert all(o.mode is Mode.RUNNING for o in outs[8:])
        assert all(np.linalg.norm(a.pos - b.pos) <= 0.01 + 1e-9 for a, b in zip(rig.sent, rig.sent[1:]))
    else:
        held = outs[8].pose
        assert outs[8].mode is Mode.HOLD and all(o.pose is held for o in outs[8:])
        assert np.allclose(held.pos, outs[7].pose.pos)  # the arm had reached tick 7's command: it stays there


def test_silent_policy_holds_when_the_timeout_passes():
    class Silent(ScriptedPolicy):
        def __init__(self):
            super().__init__(forward())
            self.released = False

        def predict_action_chunk(self, obs):
            if self.calls >= 1:
                while not self.released:  # the server stopped answering
                    time.sleep(0.01)
            return super().predict_action_chunk(obs)

    policy = Silent()
    core = BridgeCore(BridgeConfig(policy_timeout_s=0.3), policy, task="press the button", threaded_policy=True)
    now = 0.0

    def feed():
        for cam in ("left", "right", "wrist"):
            core.on_image(cam, np.zeros((32, 32, 3), np.uint8), now)
        core.on_arm_state(START, READY_Q, 2, now)
        core.on_fingers([0.04, 0.04], now)

    feed()
    core.arm(now)
    core.start(now)
    modes = []
    for _ in range(30):
        out = core.tick(now)
        modes.append(out.mode)
        time.sleep(0.01)  # let the link thread answer the first request
        now += DT
        feed()
    first_hold = modes.index(Mode.HOLD)
    # second request at tick 8 (latency measured 1 tick: asked at 7); timeout 0.3 s = 4.5 ticks after it
    assert 7 + 0.3 / DT < first_hold <= 7 + 0.3 / DT + 2
    assert "policy sent no chunk within 0.3 s" in core.supervisor.reason
    policy.released = True
    core.close()


def test_robot_reflex_faults_and_only_an_operator_reset_leaves_it():
    rig = Rig(ScriptedPolicy(forward(vx=0.1)))
    for _ in range(3):
        rig.step()
    rig.robot_mode = 4
    rig.feed()
    out = rig.step()
    assert out.mode is Mode.FAULT and out.reasons == ("robot reflex",)
    rig.robot_mode = 2
    rig.feed()
    assert rig.step().mode is Mode.FAULT  # the reflex cleared, the fault stays
    recovered = []
    rig.core.reset(lambda: recovered.append(True), rig.now)
    assert recovered == [True] and rig.step().mode is Mode.IDLE and rig.step().pose is None


def test_after_a_reset_the_bridge_stays_idle_and_refuses_to_arm_while_the_robot_still_reports_a_reflex():
    rig = Rig(ScriptedPolicy(forward(vx=0.1)))
    rig.robot_mode = 4
    rig.feed()
    assert rig.step().mode is Mode.FAULT
    rig.core.reset(lambda: True, rig.now)  # error recovery done; the newest state predates it (still reflex)
    assert rig.step().mode is Mode.IDLE and rig.step().pose is None
    with pytest.raises(ValueError, match="cannot arm: the robot reports robot reflex"):
        rig.core.arm(rig.now)
    rig.robot_mode = 2
    rig.feed()
    rig.core.arm(rig.now)
    assert rig.step().mode is Mode.ARMED


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, -1.0, 0.3, np.nan, np.inf, 1e9]), min_size=12, max_size=12),
       st.lists(st.booleans(), min_size=40, max_size=40))
def test_whatever_the_policy_and_the_inputs_do_every_command_is_safe(values, camera_alive):
    def make(call):
        chunk = np.tile(np.array(values, np.float32), (16, 1))
        chunk[:, 11] = -1 if call % 3 else chunk[:, 11]
        return np.roll(chunk, call, axis=1)

    rig = Rig(ScriptedPolicy(make))
    config = rig.core.config.safety
    previous = START
    for alive in camera_alive:
        out = rig.step(cameras=("left", "right", "wrist") if alive else ("left",))
        if out.pose is None:
            continue
        p = out.pose
        assert p.is_valid()
        assert (np.array(config.workspace_min) <= p.pos).all() and (p.pos <= np.array(config.workspace_max)).all()
        step = np.linalg.norm(p.pos - previous.pos)
        assert step <= (config.max_step_m if out.mode is Mode.RUNNING else config.max_offset_m) + 1e-9
        previous = p


def test_config_file_and_bad_settings(tmp_path):
    path = tmp_path / "bridge.json"
    path.write_text('{"rate_hz": 20, "safety": {"max_step_m": 0.005, "workspace_min": [0.2, -0.3, 0.1]}, '
                    '"ros": {"cameras": ["wrist=/camera/color/image_raw/compressed"]}}')
    config = apply_overrides(BridgeConfig(), file_overrides(path))
    assert config.rate_hz == 20 and config.safety.max_step_m == 0.005 and config.safety.workspace_min == (0.2, -0.3, 0.1)
    assert config.camera_topics() == {"wrist": "/camera/color/image_raw/compressed"}
    with pytest.raises(ValueError, match="execute_mode must be chunk or ensemble"):
        BridgeConfig(execute_mode="blend").check()
    with pytest.raises(ValueError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{rate_hz: 3")
        file_overrides(tmp_path / "bad.json")


def test_rate_loop_keeps_absolute_deadlines_and_skips_rather_than_bursts():
    t = [0.0]
    starts = []

    def step(now):
        starts.append(now)
        t[0] += 0.25 if len(starts) == 3 else 0.01  # the third tick (at 0.2) overruns to 0.45

    def sleep(s):
        t[0] += s

    stats = run_at_rate(step, 10.0, ticks=6, clock=lambda: t[0], sleep=sleep)
    # the 0.3 deadline is more than a period gone: skipped; the 0.4 one runs 50 ms late, then back on schedule
    np.testing.assert_allclose(starts, [0.0, 0.1, 0.2, 0.45, 0.5, 0.6], atol=1e-9)
    assert stats.skipped == 1 and max(stats.lateness) == pytest.approx(0.05)


def test_a_dead_policy_server_holds_the_arm_within_two_ticks():
    """The real link: a policy server on loopback, RemotePolicy in the core, the server stopped mid-run."""
    class Served(ScriptedPolicy):
        def predict_action_chunk(self, obs):  # the server batches: (B, 16, 12)
            return np.stack([forward(vx=0.1)(0)] * len(obs["observation.state"]))

    server = ServerThread(PolicyServer(Served(forward()), port=0))
    port = server.__enter__().port
    config = BridgeConfig(execute_steps=2, policy_timeout_s=0.5)
    core = BridgeCore(config, RemotePolicy(f"ws://127.0.0.1:{port}", timeout_s=0.5), task="press the button")
    outs = []

    def feed_and_tick(now):
        for cam in ("left", "right", "wrist"):
            core.on_image(cam, np.zeros((32, 32, 3), np.uint8), now)
        core.on_arm_state(START, READY_Q, 2, now)
        core.on_fingers([0.04, 0.04], now)
        outs.append(core.tick(now))

    feed_and_tick(time.monotonic())
    core.arm(time.monotonic())
    core.start(time.monotonic())
    run_at_rate(feed_and_tick, 15.0, ticks=20)
    assert outs[-1].mode is Mode.RUNNING
    server.__exit__(None, None, None)
    stopped = len(outs)
    run_at_rate(feed_and_tick, 15.0, ticks=6)
    first_hold = next(i for i, o in enumerate(outs) if i >= stopped and o.mode is Mode.HOLD)
    # at most two requests' worth of ticks: the next request is due within execute_steps (2) ticks, and the
    # closed connection fails it at once
    assert first_hold - stopped <= 3, [o.mode.value for o in outs[stopped:]]
    assert "policy error: ConnectionError" in core.supervisor.reason
    core.close()
