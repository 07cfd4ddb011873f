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
