"""Scripted experts solve their tasks and produce valid, varied actions."""

import numpy as np
import pytest

import envs
from policies.experts import make_expert


def _run(task, seed):
    env = envs.make(task, render=False, seed=seed)
    obs, _ = env.reset(seed=seed)
    expert = make_expert(task, env, seed=seed)
    actions = []
    for _ in range(env.horizon):
        action = expert.select_action(obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return info["success"], np.array(actions)


@pytest.mark.parametrize("task", envs.list_tasks())
@pytest.mark.parametrize("seed", [11, 12])
def test_expert_succeeds(task, seed):
    success, actions = _run(task, seed)
    assert success
    assert actions.dtype == np.float32 and actions.shape[1] == 12
    assert np.all(np.abs(actions) <= 1.0) and np.all(actions[:, 11] == -1.0)  # arm mode, base never moves
    assert np.all(actions[:, 7:11] == 0.0)


def test_demos_vary_between_seeds():
    _, a = _run("CoffeePressButton", 1)
    _, b = _run("CoffeePressButton", 2)
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n])


def test_unknown_task_has_no_expert():
    with pytest.raises(ValueError, match="valid: CoffeePressButton"):
        make_expert("CoffeePress", env=None)


def test_one_expert_reset_with_a_seed_replays_that_episode_exactly():
    """Collection keeps one expert per process: reseeding it per episode makes an attempt a function of its seed."""
    env = envs.make("CoffeePressButton", render=False)
    expert = make_expert("CoffeePressButton", env)

    def first_actions(seed):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed=seed)
        actions = []
        for _ in range(20):
            actions.append(expert.select_action(obs))
            obs = env.step(actions[-1])[0]
        return np.array(actions)

    try:
        first, other, again = first_actions(5), first_actions(6), first_actions(5)
    finally:
        env.close()
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("task", ["CoffeePressButton", "TurnOffMicrowave"])
def test_after_a_press_the_hand_leaves_by_another_path_than_it_came(task):
    """A retreat that retraced the approach would give a memoryless policy the same poses with opposite actions."""
    env = envs.make(task, render=False, seed=11)
    obs, _ = env.reset(seed=11)
    expert = make_expert(task, env, seed=11)
    before, after = [], []
    for _ in range(env.horizon):
        state = env.unwrapped.sim.privileged_state()
        pressed = state["button_pressed"] if task == "CoffeePressButton" else not state["turned_on"]
        (after if pressed else before).append(state["eef_pos"] - state["button_pos"])
        obs, _, terminated, truncated, _ = env.step(expert.select_action(obs))
        if terminated or truncated:
            break
    env.close()
    before = np.array(before)
    leaving = [p for p in after if 0.05 < np.linalg.norm(p) < 0.10]  # where the approach lines up and pushes
    assert leaving
    gaps = [np.min(np.linalg.norm(before - p, axis=1)) for p in leaving]
    assert min(gaps) > 0.02, f"the retreat passes {100 * min(gaps):.1f} cm from the approach"
