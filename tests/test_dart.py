"""DART disturbances for demo collection: the push's statistics, and that demos record the expert, not the push."""

import dataclasses

import numpy as np
import pytest

from policies.dart import Disturbance
from rollouts.worker import EnvHost, EpisodeSpec
from test_rollout_runner import SPEC


def test_push_has_the_asked_scale_and_persistence_and_touches_only_translation():
    d = Disturbance(0.2, seed=5, persistence=0.8)
    pushes = []
    for _ in range(20000):
        executed = d.apply(np.zeros(12, np.float32))
        assert np.all(executed[3:] == 0)
        pushes.append(executed[:3])
    pushes = np.array(pushes)
    assert pushes.std(axis=0) == pytest.approx([0.2] * 3, rel=0.1)
    lag1 = np.mean([np.corrcoef(pushes[:-1, i], pushes[1:, i])[0, 1] for i in range(3)])
    assert lag1 == pytest.approx(0.8, abs=0.03)


def test_push_is_a_function_of_the_seed_and_clipped():
    a, b, c = Disturbance(0.5, seed=1), Disturbance(0.5, seed=1), Disturbance(0.5, seed=2)
    action = np.full(12, 0.99, np.float32)
    ra, rb, rc = ([x.apply(action) for _ in range(50)] for x in (a, b, c))
    assert np.array_equal(np.array(ra), np.array(rb)) and not np.array_equal(np.array(ra), np.array(rc))
    assert np.abs(np.array(ra)).max() <= 1.0


@pytest.mark.parametrize("scale, persistence", [(-0.1, 0.8), (0.2, 1.0)])
def test_bad_settings_are_refused(scale, persistence):
    with pytest.raises(ValueError):
        Disturbance(scale, seed=0, persistence=persistence)


def _recorded_episode(disturbance: float):
    host = EnvHost(0, dataclasses.replace(SPEC, record=True, disturbance=disturbance))
    assert host.begin_episode(EpisodeSpec("ReachA", base_seed=0, index=0, seed=3))[0] == "started"
    kind, success, steps, _, recording = host.run_episode()
    assert kind == "episode" and success and steps > 3
    return recording


def test_demo_records_the_experts_action_while_the_env_executes_the_pushed_one():
    for disturbance in (0.0, 0.5):
        rec = _recorded_episode(disturbance)
        pos, target, act = rec.state[:, 0], rec.state[:, 1], rec.action[:, 0]
        # The reach expert's action is a function of the state it saw: every recorded action is the expert's own.
        np.testing.assert_allclose(act, np.clip(10 * (target - pos), -1, 1), atol=1e-5)
        # The env moves by 0.1 x the executed action: the recorded one without a push, the pushed one with it.
        executed = rec.action
        if disturbance:
            push = Disturbance(disturbance, seed=3)  # the episode's seed: the same pushes again
            executed = np.array([push.apply(a) for a in rec.action])
            assert not np.allclose(executed[:-1, 0], act[:-1])
        np.testing.assert_allclose(np.diff(pos), 0.1 * executed[:-1, 0], atol=1e-6)
