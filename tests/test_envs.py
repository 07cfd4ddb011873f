"""Built-in kitchen tasks: contract, success conditions, seeding and bad input."""

import mujoco
import numpy as np
import pytest

from contract.embodiments import IMAGE_KEYS, STATE_KEY, TASK_KEY
import envs
from envs import fixtures
from envs.action_layout import robosuite_permutation
from envs.robocasa_backend import INSTALL_HINT, robocasa_env_name

IDLE = np.zeros(12, np.float32)
IDLE[11] = -1.0  # arm mode, base still


@pytest.fixture(scope="module", params=envs.list_tasks())
def env(request):
    env = envs.make(request.param, image_size=64, seed=0)
    yield env
    env.close()


def _move_fixture_to(sim, body: str, point_in_fixture: np.ndarray, target: np.ndarray) -> None:
    """Translate a fixture so that point_in_fixture (world) lands on target (world), then recompute."""
    sim.mj_model.body_pos[sim.mj_model.body(body).id] += target - point_in_fixture
    mujoco.mj_forward(sim.mj_model, sim.mj_data)


def _fingertip(sim) -> np.ndarray:
    return sim.mj_data.geom_xpos[sim.mj_model.geom("gripper0_right_finger1_pad_collision").id].copy()


def test_registry_lists_the_three_tasks():
    assert envs.list_tasks() == ["CoffeePressButton", "TurnOffMicrowave", "PnPCabToCounter"]
    assert [envs.TASKS[t].horizon for t in envs.list_tasks()] == [300, 500, 500]


def test_reset_and_step_follow_the_contract(env):
    obs, info = env.reset(seed=1)
    assert set(obs) == {*IMAGE_KEYS, STATE_KEY, TASK_KEY}
    for key in IMAGE_KEYS:
        assert obs[key].shape == (64, 64, 3) and obs[key].dtype == np.uint8
        assert obs[key].std() > 1.0  # a real picture, not a blank buffer
    assert obs[STATE_KEY].shape == (16,) and obs[STATE_KEY].dtype == np.float32
    assert isinstance(obs[TASK_KEY], str) and obs[TASK_KEY]
    assert obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step(IDLE)
    assert obs in env.observation_space
    assert info["success"] is False and not terminated and not truncated and reward == 0.0
    assert np.linalg.norm(obs[STATE_KEY][7:10]) > 0.2  # eef is relative to the base, not the world


def test_instructions_match_upstream():
    coffee = envs.make("CoffeePressButton", render=False, seed=0)
    assert coffee.reset(seed=0)[0][TASK_KEY] == "press the button on the coffee machine to serve coffee"
    coffee.close()
    pnp = envs.make("PnPCabToCounter", render=False, seed=0)
    text = pnp.reset(seed=0)[0][TASK_KEY]
    assert text.startswith("pick the ") and text.endswith(" from the cabinet and place it on the counter")
    assert pnp.unwrapped.sim.target_name in text
    pnp.close()


def test_same_seed_same_episode_and_different_seed_differs():
    a = envs.make("PnPCabToCounter", image_size=64, seed=0)
    b = envs.make("PnPCabToCounter", image_size=64, seed=99)
    push = IDLE.copy()
    push[:3] = [0.3, -0.2, 0.1]

    def rollout(env, seed):
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for _ in range(3):
            frames.append(env.step(push)[0])
        return frames

    first = rollout(a, 7)
    rollout(a, 8)  # a different episode in between must not leak into the next
    again, other_env = rollout(a, 7), rollout(b, 7)
    for x, y, z in zip(first, again, other_env):
        for key in (*IMAGE_KEYS, STATE_KEY):
            np.testing.assert_array_equal(x[key], y[key])
            np.testing.assert_array_equal(x[key], z[key])
        assert x[TASK_KEY] == y[TASK_KEY] == z[TASK_KEY]
    different = rollout(a, 8)
    assert not np.array_equal(first[0][IMAGE_KEYS[0]], different[0][IMAGE_KEYS[0]])
    assert not np.array_equal(first[0][STATE_KEY], different[0][STATE_KEY])  # arm joint noise differs
    a.close()
    b.close()


def test_coffee_button_latches_and_needs_retreat():
    env = envs.make("CoffeePressButton", render=False, seed=0)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    eef = sim.eef_pos()
    near = eef + np.array([0.05, 0.0, 0.0])  # button close to the eef but not touched
    _move_fixture_to(sim, "coffee_machine", sim.button_pos(), near + np.array([0.06, 0, 0]))
    sim.update_fixture_state()
    assert not sim.button_pressed and not sim._check_success()
    _move_fixture_to(sim, "coffee_machine", sim.button_pos(), _fingertip(sim))  # button against a fingertip
    sim.update_fixture_state()
    assert sim.button_pressed and not sim._check_success()  # pressed but the eef is still at the button
    _move_fixture_to(sim, "coffee_machine", sim.button_pos(), eef + np.array([0.3, 0.0, -0.2]))
    sim.update_fixture_state()
    assert sim.button_pressed and sim._check_success()  # latched, and the eef has retreated
    env.close()


def test_coffee_press_shows_the_liquid_to_the_cameras():
    """Like upstream's coffee-liquid sites: once pressed, the stream is in the images, so the press is observable."""
    env = envs.make("CoffeePressButton", image_size=64, seed=0)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    before = sim.render_images()
    sim.set_pressed(True)
    after = sim.render_images()
    changed = {camera: int((np.abs(after[camera].astype(int) - before[camera]).sum(-1) > 30).sum()) for camera in after}
    assert changed["left"] > 5 and changed["right"] > 5, changed
    env.reset(seed=0)  # a new episode starts with the machine off
    assert not sim.button_pressed
    assert np.array_equal(sim.render_images()["left"], before["left"])
    env.close()


def test_microwave_needs_stop_button_and_retreat_and_ignores_the_door():
    env = envs.make("TurnOffMicrowave", render=False, seed=0)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    assert sim.turned_on
    sim.mj_data.qpos[sim.door_qpos_adr] = -1.5  # door wide open
    mujoco.mj_forward(sim.mj_model, sim.mj_data)
    sim.update_fixture_state()
    assert sim.turned_on and not sim._check_success()
    eef = sim.eef_pos()
    _move_fixture_to(sim, "microwave", sim.stop_button_pos(), _fingertip(sim))
    sim.update_fixture_state()
    assert not sim.turned_on and not sim._check_success()  # off, but the eef is at the button
    _move_fixture_to(sim, "microwave", sim.stop_button_pos(), eef + np.array([0.35, 0.0, -0.3]))
    sim.update_fixture_state()
    assert sim._check_success()
    env.close()


def test_pnp_succeeds_only_with_object_on_counter_and_eef_away():
    env = envs.make("PnPCabToCounter", render=False, seed=0)
    env.reset(seed=0)
    sim = env.unwrapped.sim
    adr = sim.object_qpos_adr[sim.target]
    half = fixtures.OBJECT_SHAPES[sim.target].half_height
    assert not sim._check_success()  # still in the cabinet
    sim.mj_data.qpos[adr:adr + 7] = [0.62, 0.0, fixtures.COUNTER_TOP_Z + half + 0.10, 1, 0, 0, 0]
    mujoco.mj_forward(sim.mj_model, sim.mj_data)
    assert not sim._check_success()  # held above the counter
    sim.mj_data.qpos[adr:adr + 7] = [0.62, 0.0, fixtures.COUNTER_TOP_Z + half - 0.001, 1, 0, 0, 0]
    mujoco.mj_forward(sim.mj_model, sim.mj_data)
    assert np.linalg.norm(sim.eef_pos() - sim.object_pos()) > 0.25
    assert sim._check_success()  # resting on the counter, eef far away
    env.close()


def test_terminates_on_success_and_truncates_at_horizon():
    env = envs.make("TurnOffMicrowave", render=False, seed=0, horizon=2)
    env.reset(seed=0)
    assert env.step(IDLE)[3] is False
    _, _, terminated, truncated, info = env.step(IDLE)
    assert truncated and not terminated and not info["success"]
    env.reset(seed=0)
    env.unwrapped.sim.set_power(False)  # off, eef starts far from the button
    _, reward, terminated, truncated, info = env.step(IDLE)
    assert terminated and info["success"] and reward == 1.0
    env.close()


@pytest.mark.parametrize("bad, match", [
    (np.zeros(11, np.float32), "shape"),
    (np.zeros(12, np.int64), "float"),
    (np.array([np.nan] + [0.0] * 11, np.float32), "NaN"),
    (np.array([np.inf] + [0.0] * 11, np.float32), "NaN/inf"),
])
def test_bad_actions_are_rejected_before_mujoco(bad, match):
    env = envs.make("CoffeePressButton", render=False, seed=0)
    env.reset(seed=0)
    before = env.unwrapped.sim.mj_data.time
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    assert env.unwrapped.sim.mj_data.time == before
    env.close()


@pytest.mark.parametrize("task, backend, match", [
    ("PnPCabToCountr", "builtin", "did you mean 'PnPCabToCounter'"),
    ("Nope", "builtin", "valid: CoffeePressButton, TurnOffMicrowave, PnPCabToCounter"),
    ("CoffeePressButton", "mujoco", "valid: builtin, robocasa"),
])
def test_unknown_task_or_backend_is_a_one_line_error(task, backend, match):
    with pytest.raises(ValueError, match=match) as err:
        envs.make(task, backend)
    assert "\n" not in str(err.value)


def test_robocasa_backend_guard_and_name_mapping():
    pytest.importorskip("robosuite")
    try:
        import robocasa  # noqa: F401
        pytest.skip("RoboCasa is installed; the guard is not exercised")
    except ImportError:
        pass
    with pytest.raises(RuntimeError) as err:
        envs.make("CoffeePressButton", backend="robocasa")
    assert str(err.value) == INSTALL_HINT and "\n" not in INSTALL_HINT
    assert robocasa_env_name("CoffeePressButton", "0.2.0") == "CoffeePressButton"
    assert robocasa_env_name("CoffeePressButton", "1.0.1") == "StartCoffeeMachine"
    assert robocasa_env_name("PnPCabToCounter", "1.0") == "PickPlaceCabinetToCounter"
    assert robocasa_env_name("TurnOffMicrowave", "1.0") == "TurnOffMicrowave"


def test_action_channels_follow_the_robocasa_layout():
    env = envs.make("CoffeePressButton", render=False, seed=0)
    obs, _ = env.reset(seed=0)
    start = obs[STATE_KEY]
    forward_and_close = IDLE.copy()
    forward_and_close[0] = 1.0  # +x eef (base frame)
    forward_and_close[6] = 1.0  # close the gripper
    for _ in range(10):
        obs, *_ = env.step(forward_and_close)
    state = obs[STATE_KEY]
    assert state[7] - start[7] > 0.05  # eef moved forward in the base frame
    assert state[14] < start[14] - 0.01  # fingers closed
    np.testing.assert_allclose(state[:3], start[:3], atol=0.01)  # base stayed put (arm mode)
    env.close()


def test_permutation_matches_robosuite_split():
    split = {"right": (0, 6), "torso": (6, 7), "base": (7, 10), "right_gripper": (10, 11)}
    np.testing.assert_array_equal(robosuite_permutation(split), [0, 1, 2, 3, 4, 5, 10, 7, 8, 9, 6, 11])
    with pytest.raises(RuntimeError, match="does not cover"):
        robosuite_permutation({"right": (0, 6), "torso": (6, 7), "base": (6, 9), "right_gripper": (10, 11)})
