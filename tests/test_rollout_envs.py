"""The runner on the real built-in tasks with the scripted experts: expected success, reproducible episodes,
recovery from a worker that dies mid-episode. Small images, rendering off (experts read privileged state)."""

import json

import pytest

from rollouts.config import RolloutConfig
from rollouts.evaluate import evaluate


def _evaluate(out_dir, **kw):
    config = RolloutConfig(**{"task": "all", "policy": "expert", "episodes": 2, "num_envs": 2, "image_size": 64,
                              "out_dir": str(out_dir), "progress": False, **kw})
    ev = evaluate(config)
    rows = [json.loads(line) for line in (ev.out_dir / "episodes.jsonl").read_text().splitlines()]
    return ev, {(r["task"], r["index"]): r for r in rows}


@pytest.fixture(scope="module")
def experts_all_tasks(tmp_path_factory):
    return _evaluate(tmp_path_factory.mktemp("experts"))


def test_experts_solve_every_task_through_the_runner(experts_all_tasks):
    ev, rows = experts_all_tasks
    assert len(rows) == 6 and {r["worker"] for r in rows.values()} == {0, 1}
    for task, summary in ev.summaries.items():
        assert (summary.successes, summary.episodes, summary.errors) == (2, 2, 0), task
    assert all(r["steps"] < 500 for r in rows.values())


def test_same_episodes_replay_identically_with_one_worker(experts_all_tasks, tmp_path):
    _, two_workers = experts_all_tasks
    _, one_worker = _evaluate(tmp_path, task="CoffeePressButton", num_envs=1)
    for key, row in one_worker.items():
        reference = two_workers[key]
        assert (row["seed"], row["steps"], row["success"]) == (reference["seed"], reference["steps"], reference["success"])


def test_worker_killed_mid_episode_is_restarted_and_the_episode_rerun(experts_all_tasks, tmp_path):
    _, reference = experts_all_tasks
    ev, rows = _evaluate(tmp_path, task="CoffeePressButton", num_envs=1, fault="crash:0:20")
    crashed = rows[("CoffeePressButton", 0)]
    assert ev.stats.restarts == 1 and crashed["reruns"] == 1 and crashed["success"] and not crashed["error"]
    assert crashed["steps"] == reference[("CoffeePressButton", 0)]["steps"]  # rerun from the same initial state
    assert rows[("CoffeePressButton", 1)]["reruns"] == 0
