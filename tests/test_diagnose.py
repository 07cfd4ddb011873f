"""The diagnosis ladder: fitting one real demo, open-loop error on held-out demos, failure analysis, the
memorization replay (slow)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import envs
from policies.experts import make_expert
from policies.vla_policy import VLAPolicy
from vla.data.collect import CollectConfig, collect
from vla.train.cli import parse_args
from vla.train.offline_eval import held_out_episodes, open_loop_error
from vla.train.preflight import plan_run
from vla.train.workspace import Workspace


@pytest.fixture(scope="module")
def one_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-demo") / "demos"
    collect(CollectConfig(task="CoffeePressButton", episodes=1, out=str(root), image_size=64, workers=1),
            log=lambda *_: None)
    return root


def _train(dataset, tmp_path, steps, *extra):
    argv = ["--preset", "tiny", "--dataset", str(dataset), "--output", str(tmp_path), "--run-name", f"r{steps}",
            "--steps", str(steps), "--save-every", str(steps), "--batch-size", "8", "--wandb", "false",
            "--num-workers", "0", "--data.augment.enabled", "false", *extra]
    return Workspace(plan_run(*parse_args(argv))).run().checkpoint


def test_training_fits_one_real_demo_open_loop(one_demo, tmp_path):
    before = open_loop_error(VLAPolicy.from_checkpoint(_train(one_demo, tmp_path, 2)), one_demo, episodes=[0])
    after = open_loop_error(VLAPolicy.from_checkpoint(_train(one_demo, tmp_path, 250, "--optim.lr", "3e-3")),
                            one_demo, episodes=[0])
    assert after.frames == before.frames > 5 and after.episodes == 1
    assert after.mse < 0.5 * before.mse, (before.line(), after.line())
    assert set(after.per_part) == {"eef_delta_pos", "eef_delta_rot", "gripper", "base_mode"}


def test_held_out_episodes_are_the_ones_not_trained_on(one_demo):
    assert held_out_episodes(one_demo, {"CoffeePressButton": [0]}) == []
    assert held_out_episodes(one_demo, {"CoffeePressButton": [5]}) == [0]
    assert held_out_episodes(one_demo, {"TurnOffMicrowave": [0]}) == [0]


def _diagnose_script():
    script = Path(__file__).resolve().parents[1] / "scripts" / "diagnose_policy.py"
    spec = importlib.util.spec_from_file_location("diagnose_policy", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tracking_slope_tells_following_the_target_from_replaying_an_average():
    diagnose = _diagnose_script()
    targets = [[0.5, y, 0.9] for y in (-0.1, 0.0, 0.1)]
    follows = [{"target": t, "closest_at": [t[0] + 0.01, t[1] + 0.02, t[2]]} for t in targets]
    replays = [{"target": t, "closest_at": [0.5, 0.01, 0.9]} for t in targets]
    assert diagnose._tracking(follows) == pytest.approx(1.0)
    assert diagnose._tracking(replays) == pytest.approx(0.0)


def test_failure_rows_read_the_simulator_the_expert_presses_the_button():
    """The expert as the policy: the button is pressed, the gripper gets within a few cm of it."""
    diagnose = _diagnose_script()
    env = envs.make("CoffeePressButton", image_size=32)
    try:
        row = diagnose._run_episode(env, make_expert("CoffeePressButton", env, seed=3), "CoffeePressButton", 3, 400)
    finally:
        env.close()
    assert row["success"] and row["sub_goal"]
    assert row["closest_cm"] < 3.0
    assert len(row["target"]) == len(row["closest_at"]) == 3


class _HoldStill:
    """A policy that sends the zero action: the arm stays where it is and never picks anything."""

    def __init__(self, env):
        self.shape = env.action_space.shape

    def reset(self, seed=None):
        pass

    def select_action(self, obs):
        return np.zeros(self.shape, dtype=np.float32)


def test_pick_funnel_tells_a_lift_from_no_lift():
    """The PnP expert gets near the object, lifts it and places it; an arm that holds still lifts nothing."""
    diagnose = _diagnose_script()
    env = envs.make("PnPCabToCounter", image_size=32)
    try:
        expert = diagnose._run_episode(env, make_expert("PnPCabToCounter", env, seed=3), "PnPCabToCounter", 3, 600)
        still = diagnose._run_episode(env, _HoldStill(env), "PnPCabToCounter", 3, 30)
    finally:
        env.close()
    assert expert["success"] and expert["sub_goal"] and expert["lifted"]
    assert not still["lifted"] and not still["sub_goal"]
    funnel = diagnose._pick_funnel([expert, still])
    assert "of 2: gripper within 5 cm of the object 1, object lifted 1, on the counter 1, success" in funnel
    assert funnel.endswith(" 1")


@pytest.mark.slow
def test_memorized_demo_replays_to_success_in_closed_loop(monkeypatch, tmp_path):
    """The ladder's first rung at the small preset: ~10 minutes on 2 cores."""
    monkeypatch.chdir(tmp_path)
    assert _diagnose_script().main(["memorize", "--task", "CoffeePressButton", "--steps", "1500"]) == 0


@pytest.mark.parametrize("flags, message", [
    (["--layers", "9"], "--layers 9: backbone 'tiny-grounded' has 4 LLM layers; choose 1..4"),
    (["--image-sizes", "100"], "image_size must be a positive multiple of 32"),
    (["--episodes", "3"], "episodes must be >= 5 per task"),
    (["--tokens", "image,all"], "--tokens all: choose from image,text,point"),
    (["--readouts", "ridge,mlp"], "--readouts mlp: choose from ridge,attention"),
    (["--frames", "first:0"], "frames must be 'all', 'before-move' or 'first:K' with K >= 1, got 'first:0'"),
])
def test_probe_refuses_bad_settings_in_one_line_before_simulating(flags, message, capsys):
    assert _diagnose_script().main(["probe", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_probe_reads_every_token_kind_with_every_readout_from_recorded_frames(monkeypatch, tmp_path, capsys):
    """The probe's table from frames already recorded (no simulation): two token kinds, two readouts, one frame set."""
    import pickle

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    episodes = [{"images": rng.integers(0, 255, (3, 3, 64, 64, 3), dtype=np.uint8),
                 "state": rng.normal(size=(3, 16)).astype(np.float32),
                 "target_cm": np.repeat(rng.normal(size=(1, 3)), 3, axis=0).astype(np.float32),
                 "instruction": "press the button on the coffee machine"} for _ in range(5)]
    frames = Path("outputs/diagnose/probe-frames-CoffeePressButton-5ep-seed2000000-stride8-64px.pkl")
    frames.parent.mkdir(parents=True)
    frames.write_bytes(pickle.dumps({"CoffeePressButton": episodes}))
    import vla.feature_probe

    encoded = []  # frames per episode the backbone encodes: only the ones --frames keeps
    real_token_features = vla.feature_probe.token_features

    def counting(backbone, images, *args, **kwargs):
        encoded.append(len(images))
        return real_token_features(backbone, images, *args, **kwargs)

    monkeypatch.setattr(vla.feature_probe, "token_features", counting)
    assert _diagnose_script().main(["probe", "--task", "CoffeePressButton", "--episodes", "5", "--render-size", "64",
                                    "--backbones", "tiny", "--image-sizes", "64", "--tokens", "image,text",
                                    "--readouts", "ridge,attention", "--frames", "first:2"]) == 0
    out = capsys.readouterr().out
    for row in ("image ", "image attention", "text ", "text attention"):
        assert f"tiny 64px L4 {row}" in out, out
    saved = json.loads(Path("outputs/diagnose/feature_probe-CoffeePressButton-5ep-seed2000000-stride8-64px-first2.json")
                       .read_text())
    text_rows = saved["rows"]["CoffeePressButton"]["tiny 64px L4 text"]
    assert saved["frames"] == "first:2" and text_rows["3"]["frames_scored"] == 2  # 1 scored episode, its first 2
    assert encoded == [2] * 10  # 5 episodes, two token kinds


def test_failures_refuses_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert _diagnose_script().main(["failures", "--checkpoint", str(missing), "--task", "PnPCabToCounter"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: checkpoint {missing} does not exist"


def test_failure_traces_of_different_tasks_go_to_different_files(tmp_path):
    script = _diagnose_script()
    ckpt = tmp_path / "run-a" / "checkpoint-020000"
    coffee = script.failures_path(ckpt, ["CoffeePressButton"])
    microwave = script.failures_path(ckpt, ["TurnOffMicrowave"])
    assert coffee != microwave and coffee.parent == microwave.parent == script.OUT
    assert "run-a-checkpoint-020000" in coffee.name and coffee.name.endswith("CoffeePressButton.json")
