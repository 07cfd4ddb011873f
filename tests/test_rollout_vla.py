"""A tiny trained checkpoint through `rollout.py` end to end: batched inference across workers, videos, the
report, and the backbone ablation on two checkpoints that meet exactly the same episodes."""

import json
import re

import pytest

from rollouts.cli import main
from rollouts.config import RolloutConfig
from rollouts.evaluate import check_held_out, episode_specs
from rollouts.worker import EpisodeSpec
from vla.data.synthetic import write_synthetic_dataset
from vla.train.cli import parse_args
from vla.train.preflight import plan_run
from vla.train.workspace import Workspace


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-vla")
    dataset = write_synthetic_dataset(root / "demos", num_episodes=2, length=20, image_size=64,
                                      tasks=("TurnOffMicrowave", "CoffeePressButton", "PnPCabToCounter"))
    train_cfg, model_cfg = parse_args(["--preset", "tiny", "--dataset", str(dataset), "--output", str(root / "runs"),
                                       "--batch-size", "4", "--steps", "2", "--save-every", "1", "--wandb", "false"])
    run_dir = Workspace(plan_run(train_cfg, model_cfg)).run().run_dir
    return run_dir / "checkpoint-000001", run_dir / "checkpoint-000002"


def test_tiny_checkpoint_rolls_out_with_two_workers(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--task", "TurnOffMicrowave", "--checkpoint", str(checkpoints[1]), "--episodes", "2", "--num-envs", "2",
            "--image-size", "64", "--horizon", "8", "--execute-steps", "4", "--video", "--out-dir", str(out),
            "--progress", "false"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"TurnOffMicrowave +\d+\.\d% \[.*\] \([012]/2\)", printed)
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1] and {r["worker"] for r in rows} == {0, 1}
    assert all(r["steps"] <= 8 and r["video"] and not r["error"] for r in rows)
    assert (out / "report.md").read_text().startswith("# tiny-tiny-demos-seed0-checkpoint-000002")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["execution"]["execute_steps"] == 4
    # the same command again finds every episode done
    assert main(argv) == 0 and "already done" in capsys.readouterr().err


def test_a_checkpoint_whose_spec_does_not_match_the_env_fails_in_one_line(checkpoints, tmp_path, capsys):
    argv = ["--task", "TurnOffMicrowave", "--checkpoint", str(checkpoints[1]), "--episodes", "1", "--image-size", "32",
            "--out-dir", str(tmp_path / "eval"), "--progress", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: checkpoint {checkpoints[1]} was trained on 64px images; the env renders 32px\n"
    assert not (tmp_path / "eval").exists()  # refused before anything ran


def test_compare_two_checkpoints_on_the_same_episodes(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results go under ./outputs/rollouts
    argv = ["--compare", str(checkpoints[0]), str(checkpoints[1]), "--task", "CoffeePressButton", "--episodes", "1",
            "--seeds", "2", "--num-envs", "1", "--image-size", "64", "--horizon", "4", "--progress", "false"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "B - A [95% CI]" in printed and "83.1 -> 89.3 (+6.2)" in printed
    dirs = sorted(p for p in (tmp_path / "outputs/rollouts").iterdir() if not p.name.startswith("compare-"))
    seeds = [{(r["base_seed"], r["index"], r["seed"]) for r in map(json.loads, (d / "episodes.jsonl").open())}
             for d in dirs]
    assert len(dirs) == 2 and seeds[0] == seeds[1] and len(seeds[0]) == 2
    (report,) = (tmp_path / "outputs/rollouts").glob("compare-*/report.md")
    assert "checkpoint-000001" in report.read_text() and (report.parent / "success.png").is_file()


def test_checkpoint_records_its_demo_scenes_and_evaluation_avoids_them(checkpoints):
    demo_seeds = json.loads((checkpoints[1] / "config.json").read_text())["dataset"]["episode_seeds"]
    assert sum(map(len, demo_seeds.values())) == 2 and set(demo_seeds) <= {"TurnOffMicrowave", "CoffeePressButton",
                                                                             "PnPCabToCounter"}
    specs = episode_specs(["TurnOffMicrowave", "CoffeePressButton"], RolloutConfig(episodes=50, seeds=3))
    assert check_held_out(specs, demo_seeds, allow=False) == 0
    clash = [EpisodeSpec("TurnOffMicrowave", 0, 0, seed=7), EpisodeSpec("TurnOffMicrowave", 0, 1, seed=8)]
    with pytest.raises(ValueError, match="1 evaluation episode.*TurnOffMicrowave seed 7.*--allow-demo-seeds"):
        check_held_out(clash, {"TurnOffMicrowave": [7]}, allow=False)
    assert check_held_out(clash, {"TurnOffMicrowave": [7]}, allow=True) == 1


def test_demo_seeds_replays_the_training_scenes(checkpoints, tmp_path, capsys):
    demo_seeds = json.loads((checkpoints[1] / "config.json").read_text())["dataset"]["episode_seeds"]
    task = next(iter(demo_seeds))
    out = tmp_path / "memorize"
    argv = ["--task", task, "--checkpoint", str(checkpoints[1]), "--demo-seeds", "--episodes", "5",
            "--image-size", "64", "--horizon", "4", "--out-dir", str(out), "--progress", "false"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in rows) == demo_seeds[task]
    assert "scenes: training scenes replayed" in capsys.readouterr().out


def test_blanked_camera_control_runs_through_the_runner(checkpoints, tmp_path):
    out = tmp_path / "blind"
    argv = ["--task", "CoffeePressButton", "--checkpoint", str(checkpoints[1]), "--ablate", "cameras",
            "--episodes", "1", "--image-size", "64", "--horizon", "4", "--out-dir", str(out), "--progress", "false"]
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["meta"]["ablate"] == "cameras"
    assert main(argv[:-4] + ["--ablate", "nose", "--progress", "false"]) == 2
