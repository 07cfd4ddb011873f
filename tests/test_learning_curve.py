"""Learning curve: every checkpoint of a run meets the same episodes; table, JSON and PNG beside the run."""

import json

import pytest

from checkpoints.format import CheckpointContents, save_checkpoint
from rollouts.config import RolloutConfig
from rollouts.evaluate import Evaluation
from rollouts.learning_curve import CURVE_JSON, CURVE_PNG, curve_table, learning_curve
from rollouts.metrics import summarize
from rollouts.runner import RunStats


def _fake_run(tmp_path, steps):
    run = tmp_path / "run"
    for step in steps:
        save_checkpoint(run / f"checkpoint-{step:06d}", CheckpointContents(
            config={"step": step, "model": {}}, weights={}, normalizer={}, card="", training_state=None))
    return run


def test_each_checkpoint_is_evaluated_on_the_same_episodes(tmp_path):
    run = _fake_run(tmp_path, [100, 200])
    seen = []

    def evaluate(config):
        seen.append(config)
        step = int(config.checkpoint.rsplit("-", 1)[1])
        wins = 1 if step == 100 else 3
        records = [{"task": "CoffeePressButton", "base_seed": 0, "index": i, "success": i < wins, "steps": 10,
                    "error": ""} for i in range(4)]
        return Evaluation("x", tmp_path, summarize(records, ["CoffeePressButton"]), RunStats(), 0)

    curve = learning_curve(run, RolloutConfig(task="CoffeePressButton", episodes=4), evaluate_fn=evaluate)
    assert [p["step"] for p in curve["points"]] == [100, 200]
    assert [p["tasks"]["CoffeePressButton"]["successes"] for p in curve["points"]] == [1, 3]
    assert {c.seed for c in seen} == {0} and {c.episodes for c in seen} == {4}
    assert len({c.out_dir for c in seen}) == 2  # one results folder per checkpoint, so each resumes on its own
    assert (run / CURVE_PNG).stat().st_size > 0 and json.loads((run / CURVE_JSON).read_text()) == curve
    assert "75.0% (3/4)" in curve_table(curve)
    assert "p = 0.16" in curve_table(curve)  # 1/4 vs 3/4: chi-square 2.0 on 1 degree of freedom


def test_a_folder_without_checkpoints_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="no complete checkpoint"):
        learning_curve(tmp_path, RolloutConfig(), evaluate_fn=lambda c: None)
