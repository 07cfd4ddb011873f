"""The bridge's safety filter and embodiment mapping: invariants over any input (hypothesis), and worked examples."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.embodiment import ActionRejected, ArmMapping, MappingConfig
from bridge.geometry import Pose, axis_angle_to_mat, is_rotation, mat_to_quat, quat_to_mat, rotation_angle
from bridge.safety import PANDA_Q_MAX, PANDA_Q_MIN, GripperGate, SafetyLimits, filter_target

LIMITS = SafetyLimits()
LO, HI = np.array(LIMITS.workspace_min), np.array(LIMITS.workspace_max)
READY_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
DOWN = np.diag([1.0, -1.0, -1.0])  # Franka's EE pointing at the table

finite = st.floats(-5, 5, allow_nan=False)
anything = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def rotations(draw):
    q = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    assume(np.linalg.norm(q) > 0.1)
    return quat_to_mat(q)


@st.composite
def inside(draw, margin=0.0):
    return np.array([draw(st.floats(lo + margin, hi - margin)) for lo, hi in zip(LO, HI)])


@st.composite
def wild_poses(draw):
    """Targets as a broken policy might produce them: anywhere, NaN, inf, not a rotation."""
    pos = np.array(draw(st.lists(anything | finite, min_size=3, max_size=3)))
    rot = draw(rotations()) if draw(st.booleans()) else np.array(draw(st.lists(anything, min_size=9, max_size=9))).reshape(3, 3)
    return Pose(pos, rot)


@st.composite
def arm_situation(draw):
    """(measured, last command): the last command within the offset limits of the measured pose."""
    measured = Pose(draw(inside()), draw(rotations()))
    offset = np.array(draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3)))
    offset *= draw(st.floats(0, LIMITS.max_offset_m)) / max(np.linalg.norm(offset), 1e-9)
    turn = np.array(draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3)))
    turn *= draw(st.floats(0, LIMITS.max_offset_rad)) / max(np.linalg.norm(turn), 1e-9)
    last = Pose(np.clip(measured.pos + offset, LO, HI), axis_angle_to_mat(turn) @ measured.rot)
    return measured, last


def assert_safe(command: Pose, measured: Pose, last: Pose):
    tol = 1e-9
    assert command.is_valid() and is_rotation(command.rot)
    assert (LO - tol <= command.pos).all() and (command.pos <= HI + tol).all()
    assert np.linalg.norm(command.pos - last.pos) <= LIMITS.max_step_m + tol
    assert np.linalg.norm(command.pos - measured.pos) <= LIMITS.max_offset_m + tol
    assert rotation_angle(command.rot, last.rot) <= LIMITS.max_step_rad + 1e-6
    assert rotation_angle(command.rot, measured.rot) <= LIMITS.max_offset_rad + 1e-6


@settings(max_examples=400, deadline=None)
@given(wild_poses(), arm_situation())
def test_no_command_leaves_the_box_or_exceeds_a_limit_whatever_the_target(target, situation):
    measured, last = situation
    verdict = filter_target(target, measured, last, LIMITS, q=READY_Q)
    if verdict.ok:
        assert_safe(verdict.command, measured, last)
    else:
        assert verdict.reason and "\n" not in verdict.reason


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3)), rotations(), arm_situation())
def test_finite_targets_are_clipped_not_refused_in_normal_operation(pos, rot, situation):
    measured, last = situation
    verdict = filter_target(Pose(np.array(pos), rot), measured, last, LIMITS, q=READY_Q)
    assert verdict.ok, verdict.reason
    assert_safe(verdict.command, measured, last)


@settings(max_examples=200, deadline=None)
@given(arm_situation(), st.floats(0, 1))
def test_a_target_within_every_limit_passes_unchanged(situation, fraction):
    measured, last = situation
    assume(np.linalg.norm(last.pos - measured.pos) < 0.999 * LIMITS.max_offset_m)  # not on a limit's rounding edge
    assume(rotation_angle(last.rot, measured.rot) < 0.999 * LIMITS.max_offset_rad)
    target = Pose(last.pos + (measured.pos - last.pos) * fraction * 0.2, last.rot)
    assume((LO <= target.pos).all() and (target.pos <= HI).all())
    verdict = filter_target(target, measured, last, LIMITS, q=READY_Q)
    assert verdict.ok and verdict.clipped == ()
    np.testing.assert_allclose(verdict.command.pos, target.pos)
    np.testing.assert_allclose(verdict.command.rot, target.rot, atol=1e-12)


def test_worked_examples():
    here = Pose(np.array([0.4, 0.0, 0.4]), DOWN)
    far = filter_target(Pose(np.array([0.6, 0.0, 0.4]), DOWN), here, here, LIMITS)
    assert far.ok and far.clipped == ("step_position", "offset_position")
    np.testing.assert_allclose(far.command.pos, [0.41, 0.0, 0.4], atol=1e-8)  # one 1 cm step toward it
    below = filter_target(Pose(np.array([0.4, 0.0, -0.3]), DOWN), here, here, LIMITS)
    assert below.command.pos[2] == pytest.approx(0.39)
    turned = filter_target(Pose(here.pos, axis_angle_to_mat([0, 0, 1.0]) @ DOWN), here, here, LIMITS)
    assert rotation_angle(turned.command.rot, DOWN) == pytest.approx(0.05, abs=1e-6)
    for bad in (Pose(np.array([np.nan, 0, 0.4]), DOWN), Pose(here.pos, np.full((3, 3), np.inf)),
                Pose(here.pos, 2 * DOWN), Pose(np.zeros(2), DOWN), Pose("x", DOWN)):
        verdict = filter_target(bad, here, here, LIMITS)
        assert not verdict.ok and verdict.reason == "target is malformed or not finite"


def test_outside_the_box_the_arm_holds():
    out = Pose(np.array([0.4, 0.0, 1.2]), DOWN)
    verdict = filter_target(out, out, out, LIMITS)
    assert not verdict.ok and "outside the workspace box" in verdict.reason


def test_joint_limit_margin():
    near = READY_Q.copy()
    near[3] = PANDA_Q_MAX[3] - 0.01
    here = Pose(np.array([0.4, 0.0, 0.4]), DOWN)
    verdict = filter_target(here, here, here, LIMITS, q=near)
    assert not verdict.ok and verdict.reason == "joint 4 at -0.080 rad is within 0.05 rad of its limit"
    assert not filter_target(here, here, here, LIMITS, q=[np.nan] * 7).ok
    assert filter_target(here, here, here, LIMITS, q=np.array(PANDA_Q_MIN) + 0.1).ok


def test_gripper_commands_only_on_change_and_not_faster_than_the_interval():
    gate = GripperGate(min_interval_s=0.5)
    sent = [gate.decide(v, t) for v, t in [(-1, 0.0), (-1, 0.1), (1, 0.2), (1, 0.6), (1, 0.7), (-1, 0.8), (-1, 1.3),
                                           (np.nan, 2.0)]]
    assert sent == ["open", None, None, "close", None, None, "open", None]


def test_limits_that_make_no_sense_are_one_line_errors():
    with pytest.raises(ValueError, match="workspace_min must be below workspace_max"):
        SafetyLimits(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1)).check()
    with pytest.raises(ValueError, match="must be positive"):
        SafetyLimits(max_step_m=0).check()


# -- the embodiment mapping ------------------------------------------------------------------------------------------

SIM_EE = Pose(np.array([0.2448, 0.0119, 0.5942]), DOWN)  # Franka's EE at the simulator's reset joint angles


def test_robocasa_state_from_franka_state_and_gripper():
    state = ArmMapping("robocasa_panda_omron").state(SIM_EE, [0.02, 0.02])
    assert state.shape == (16,) and state.dtype == np.float32
    np.testing.assert_allclose(state[:7], [0, 0, 0.9, 0, 0, 0, 1])  # the fixed base, as the simulator reports it
    np.testing.assert_allclose(state[7:10], [0.2448, 0.0119, 0.5942 + 0.0069], atol=1e-6)  # grip site 6.9 mm nearer the flange
    assert abs(state[10]) == pytest.approx(1.0)  # EE pointing down: 180 deg about x
    np.testing.assert_allclose(state[14:], [0.02, -0.02])  # robosuite's finger signs
    franka = ArmMapping("franka_panda").state(SIM_EE, [0.02, 0.02])
    assert franka.shape == (9,) and franka[:3] == pytest.approx(SIM_EE.pos)


def test_action_to_absolute_target_as_the_osc_controller_reads_it():
    mapping = ArmMapping("robocasa_panda_omron")
    action = np.zeros(12, np.float32)
    action[11] = -1  # arm mode
    target, grip = mapping.target(action, SIM_EE)
    np.testing.assert_allclose(target.pos, SIM_EE.pos, atol=1e-12)
    action[0], action[5], action[6] = 0.5, 0.2, 1.0  # +2.5 cm in x, +0.1 rad about z (base frame), close
    target, grip = mapping.target(action, SIM_EE)
    np.testing.assert_allclose(target.rot, axis_angle_to_mat([0, 0, 0.1]) @ DOWN, atol=1e-12)
    # the grip site moves by exactly the delta; Franka's EE follows it through the fixed 6.9 mm offset
    site = lambda pose: pose.pos + pose.rot @ np.array([0, 0, -0.0069])  # noqa: E731
    np.testing.assert_allclose(site(target) - site(SIM_EE), [0.025, 0, 0], atol=1e-12)
    assert grip == 1.0
    action[0] = 7.0  # beyond +-1: clipped, as OSC clips its input
    assert site(mapping.target(action, SIM_EE)[0])[0] == pytest.approx(site(SIM_EE)[0] + 0.05)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.__setitem__(11, 1.0), "asks for base motion"),
    (lambda a: a.__setitem__(2, np.nan), "NaN or inf"),
])
def test_bad_actions_are_refused(change, message):
    action = np.zeros(12)
    action[11] = -1
    change(action)
    with pytest.raises(ActionRejected, match=message):
        ArmMapping("robocasa_panda_omron").target(action, SIM_EE)
    with pytest.raises(ActionRejected, match=r"shape \(12,\)"):
        ArmMapping("robocasa_panda_omron").target(np.zeros(7), SIM_EE)
    with pytest.raises(ValueError, match="maps embodiments"):
        ArmMapping("unitree_g1")


@settings(max_examples=200, deadline=None)
@given(rotations(), st.lists(st.floats(-1, 1), min_size=7, max_size=7),
       st.sampled_from(["robocasa_panda_omron", "franka_panda"]))
def test_state_and_target_agree_for_any_pose(rot, arm, embodiment):
    """Applying an action's delta to the state the policy saw gives the state of the target pose."""
    mapping = ArmMapping(embodiment, MappingConfig(mount_pos=(0.1, -0.2, 0.3), mount_quat=(0, 0, 0.3826834, 0.9238795)))
    emb = mapping.embodiment
    measured = Pose(np.array([0.4, 0.1, 0.3]), rot)
    action = np.zeros(emb.action_dim)
    action[:7] = arm
    if embodiment == "robocasa_panda_omron":
        action[11] = -1
    target, _ = mapping.target(action, measured)
    before, after = mapping.state(measured, [0.01, 0.01]), mapping.state(target, [0.01, 0.01])
    pos, quat = emb.state_slice("eef_pos_rel_base" if emb.name != "franka_panda" else "eef_pos"), \
        emb.state_slice("eef_quat_rel_base" if emb.name != "franka_panda" else "eef_quat")
    np.testing.assert_allclose(after[pos.start:pos.stop] - before[pos.start:pos.stop], np.array(arm[:3]) * 0.05,
                               atol=1e-5)
    expected = axis_angle_to_mat(np.array(arm[3:6]) * 0.5) @ quat_to_mat(before[quat.start:quat.stop])
    assert rotation_angle(quat_to_mat(after[quat.start:quat.stop]), expected) < 1e-3
    assert mat_to_quat(expected)[3] >= 0
