"""The kitchen tasks as Gymnasium environments: spaces, check_env, registration, vector envs, render and wrappers."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from contract.embodiments import IMAGE_KEYS, STATE_KEY, TASK_KEY
import envs
from envs import fixtures, rendering
from envs.kitchen_env import KitchenEnv
from envs.spaces import instruction_space, state_space

IDLE = np.zeros(12, np.float32)
IDLE[11] = -1.0  # arm mode, base still


@pytest.mark.parametrize("task", envs.list_tasks())
def test_check_env_passes_without_warnings(task):
    env = envs.make(task, image_size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        check_env(env)  # also rebuilds the env through env.spec with render_mode="rgb_array" and closes it twice
    assert [str(w.message) for w in caught] == []
    env.close()


def test_observations_lie_in_the_observation_space():
    env = envs.make("PnPCabToCounter", image_size=16, seed=0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert obs in env.observation_space
        for _ in range(3):
            obs, *_ = env.step(env.action_space.sample())
            assert obs in env.observation_space
    assert np.isfinite(env.observation_space[STATE_KEY].low).all()
    assert np.isfinite(env.observation_space[STATE_KEY].high).all()
    env.close()


def test_every_instruction_fits_the_instruction_space():
    space = instruction_space()
    objects = [f"{colour} {shape.name}" for colour in fixtures.OBJECT_COLOURS for shape in fixtures.OBJECT_SHAPES]
    texts = [spec.instruction.format(obj=obj) for spec in envs.TASKS.values() for obj in objects]
    assert all(text in space for text in texts)
    assert "press the stop button\n" not in space and "" not in space


def test_state_bounds_follow_the_robot():
    space = state_space()
    state = np.zeros(16, np.float32)
    state[2], state[6], state[13] = 0.9, 1.0, 1.0  # base height, identity quaternions
    assert state in space
    too_open = state.copy()
    too_open[14] = 0.08  # the finger joint range ends at 0.04 m
    assert too_open not in space


def test_unwrapped_is_the_env_and_the_simulator_has_its_own_attribute():
    env = envs.make("CoffeePressButton", render=False)
    assert env.unwrapped is env and isinstance(env.sim, KitchenEnv)
    made = gym.make("xvr_vla/CoffeePressButton-v0", render=False)
    assert made.unwrapped is not made and isinstance(made.unwrapped.sim, KitchenEnv)
    made.close()
    env.close()


def test_tasks_are_registered_with_their_horizons():
    for name, spec in envs.TASKS.items():
        registered = gym.spec(f"xvr_vla/{name}-v0")
        assert registered.id == envs.gym_id(name)
        assert registered.max_episode_steps == spec.horizon
        assert registered.kwargs == {"task": name, "image_size": 256, "cameras": ("left", "right", "wrist")}


def test_gymnasium_make_gives_the_episodes_of_envs_make():
    ours = envs.make("TurnOffMicrowave", image_size=16, seed=4)
    theirs = gym.make("xvr_vla/TurnOffMicrowave-v0", image_size=16, cameras=("wrist",), seed=4, max_episode_steps=2)
    for seed in (None, 3):  # the constructor's seed, then a seed at reset
        a, b = ours.reset(seed=seed)[0], theirs.reset(seed=seed)[0]
        assert set(b) == {"observation.images.wrist", STATE_KEY, TASK_KEY}
        np.testing.assert_array_equal(a["observation.images.wrist"], b["observation.images.wrist"])
        np.testing.assert_array_equal(a[STATE_KEY], b[STATE_KEY])
    assert theirs.step(IDLE)[3] is False
    assert theirs.step(IDLE)[3] is True  # the TimeLimit of max_episode_steps
    ours.close()
    theirs.close()


def test_make_vec_seeds_sub_env_i_with_seed_plus_i():
    vec = gym.make_vec("xvr_vla/CoffeePressButton-v0", num_envs=2, vectorization_mode="sync", render=False)
    obs, _ = vec.reset(seed=5)
    for i in range(2):
        single = envs.make("CoffeePressButton", render=False)
        np.testing.assert_array_equal(obs[STATE_KEY][i], single.reset(seed=5 + i)[0][STATE_KEY])
        single.close()
    vec.close()


ASYNC_SCRIPT = """
import numpy as np, gymnasium as gym, envs
vec = gym.make_vec("xvr_vla/CoffeePressButton-v0", num_envs=2, vectorization_mode="async", image_size=16)
obs, _ = vec.reset(seed=0)
action = np.zeros((2, 12), np.float32)
action[:, 11] = -1.0
obs, reward, terminated, truncated, info = vec.step(action)
assert obs["observation.images.left"].shape == (2, 16, 16, 3), obs["observation.images.left"].shape
assert obs["task"] == (envs.TASKS["CoffeePressButton"].instruction,) * 2, obs["task"]
print("ok", reward.tolist(), terminated.tolist())
vec.close()
"""


def test_async_make_vec_steps_and_resets_in_a_fresh_process():
    # multiprocessing's default "fork", as a user's script gets it; this test process has rendered already.
    done = subprocess.run([sys.executable, "-c", ASYNC_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok [0.0, 0.0] [False, False]" in done.stdout


def test_async_workers_forked_after_software_rendering_fail_in_one_line_instead_of_hanging():
    env = envs.make("CoffeePressButton", image_size=16)
    env.reset(seed=0)
    env.close()
    if not rendering._software_gl_started:
        pytest.skip("rendering on a GPU here, not Mesa's llvmpipe")
    vec = gym.make_vec("xvr_vla/CoffeePressButton-v0", num_envs=1, vectorization_mode="async", image_size=16)
    with pytest.raises(RuntimeError, match="forked after its parent started Mesa's software renderer") as err:
        vec.reset(seed=0)  # the worker's first render
    assert "\n" not in str(err.value)
    vec.close()
    vec = gym.make_vec("xvr_vla/CoffeePressButton-v0", num_envs=1, vectorization_mode="async", image_size=16,
                       vector_kwargs={"context": "spawn"})  # the remedy the message names
    assert vec.reset(seed=0)[0]["observation.images.left"].shape == (1, 16, 16, 3)
    vec.close()


def test_rgb_array_render_with_record_video_and_episode_statistics(tmp_path):
    env = gym.make("xvr_vla/TurnOffMicrowave-v0", image_size=16, render_mode="rgb_array", max_episode_steps=3)
    env = gym.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda ep: True, disable_logger=True)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (16, 48, 3)  # the three cameras side by side
    np.testing.assert_array_equal(frame, np.concatenate([obs[key] for key in IMAGE_KEYS], axis=1))
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(IDLE)
        done = terminated or truncated
    assert info["episode"]["l"] == 3 and info["episode"]["r"] == 0.0
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_render_mode_none_renders_nothing_and_bad_modes_are_one_line_errors():
    env = envs.make("CoffeePressButton", render=False)
    assert env.render_mode is None and env.render() is None
    env.close()
    with pytest.raises(ValueError, match="unknown render_mode 'human'; valid: None, 'rgb_array'"):
        envs.make("CoffeePressButton", render_mode="human")
    with pytest.raises(ValueError, match="needs camera images"):
        envs.make("CoffeePressButton", render=False, render_mode="rgb_array")


def test_unknown_ids_get_gymnasiums_error_and_unknown_tasks_the_projects_list():
    with pytest.raises(gym.error.NameNotFound, match="TurnOffMicrowav"):
        gym.make("xvr_vla/TurnOffMicrowav-v0")
    with pytest.raises(ValueError, match="valid: CoffeePressButton, TurnOffMicrowave, PnPCabToCounter") as err:
        envs.make("TurnOffMicrowav")
    assert "\n" not in str(err.value) and "did you mean 'TurnOffMicrowave'" in str(err.value)
