"""Training end to end on the tiny preset and a tiny synthetic dataset: loss goes down, checkpoints round-trip,
resuming (after a stop or a SIGKILL) continues the loss curve exactly, and bad input is one line."""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoints import find_latest, load_policy_checkpoint
from checkpoints.backbones import resolve_backbone
from checkpoints.format import CheckpointError, list_checkpoints, read_training_state, read_weights
from contract.spec import ObservationSpec
from test_backbone import instruction_first_copy
from test_checkpoint_format import fake_qwen_dir
from test_data_names import GR00T_ACTION, store_action_as
from vla.data.schema import SIDECAR_PATH
from vla.data.synthetic import synthetic_episode
from vla.data.writer import DatasetWriter
from vla.model import VLA
from vla.train.cli import main, parse_args
from vla.train.logger import read_metrics
from vla.train.config import CollectConfig
from vla.train.preflight import _demos_short, compose_model_config, learning_warning, plan_run
from vla.train.sampling import StepBatchSampler
from vla.train import workspace as workspace_module
from vla.train.workspace import Workspace, attention_kernel

REPO = Path(__file__).resolve().parents[1]


TASKS = ("TurnOffMicrowave", "CoffeePressButton", "PnPCabToCounter")


def learnable_episode(i: int):
    """A synthetic episode whose actions follow a smooth per-task curve, so there is something to learn."""
    ep = synthetic_episode(20 + i, seed=i, image_size=64, task_name=TASKS[i % 3])
    t = np.arange(len(ep))[:, None] / len(ep)
    action = ep.action.copy()
    action[:, :6] = 0.5 * np.sin(2 * np.pi * t + np.arange(6) + i % 3)
    return dataclasses.replace(ep, action=action.astype(np.float32))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-ds") / "demos"
    with DatasetWriter(root, ObservationSpec(image_size=64), source="synthetic") as writer:
        for i in range(3):
            writer.add_episode(learnable_episode(i))
    return root


def args(dataset, out, *extra):
    return ["--preset", "tiny", "--dataset", str(dataset), "--output", str(out), "--batch-size", "4",
            "--log-every", "1", "--wandb", "false", *map(str, extra)]


def train(argv):
    train_cfg, model_cfg = parse_args(argv)
    workspace = Workspace(plan_run(train_cfg, model_cfg))
    return workspace, workspace.run()


def losses(run_dir):
    return {row["step"]: row["loss"] for row in read_metrics(run_dir)}


def test_a_few_steps_lower_the_loss_and_write_a_loadable_checkpoint(dataset, tmp_path):
    workspace, result = train(args(dataset, tmp_path, "--steps", 200, "--save-every", 100, "--batch-size", 8,
                                   "--cache-features"))
    curve = [losses(result.run_dir)[s] for s in range(1, 201)]
    assert sum(curve[-20:]) / 20 < 0.75 * sum(curve[:20]) / 20
    assert result.checkpoint == result.run_dir / "checkpoint-000200"
    assert [p.name for p in list_checkpoints(result.run_dir)] == ["checkpoint-000100", "checkpoint-000200"]
    assert (result.run_dir / "loss.png").is_file() and (result.run_dir / "tensorboard").is_dir()
    for name in ("config.json", "model.safetensors", "normalizer.json", "README.md", "training_state/rng.pt"):
        assert (result.checkpoint / name).is_file(), name
    assert find_latest(tmp_path) == result.checkpoint

    # Round trip: the reloaded policy predicts exactly what the trained one does.
    model, config, normalizer = load_policy_checkpoint(result.checkpoint)
    assert config["observation"] == {"embodiment": "robocasa_panda_omron", "cameras": ["left", "right", "wrist"],
                                     "image_size": 64, "action_horizon": 16, "fps": 20}
    trained = workspace.model.eval()
    batch = {
        "images": torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8),
        "instruction": ["press the stop button on the microwave"] * 2,
        "state": torch.zeros(2, 16), "embodiment": "robocasa_panda_omron",
    }
    torch.manual_seed(0)
    expected = trained.predict_action_chunk(batch)
    torch.manual_seed(0)
    assert torch.equal(model.predict_action_chunk(batch), expected)
    assert normalizer.to_dict() == json.loads((result.checkpoint / "normalizer.json").read_text())


def safetensors_content(directory):
    """(parsed header, tensor bytes) of model.safetensors: the file up to the order of the header's JSON keys, which
    safetensors does not fix."""
    raw = (directory / "model.safetensors").read_bytes()
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def test_save_pretrained_writes_the_weights_a_training_checkpoint_holds(dataset, tmp_path):
    # One rule for which weights a saved model holds: the same model gives the same weight file both ways.
    workspace, result = train(args(dataset, tmp_path / "runs", "--steps", 2))
    trained = workspace.model.eval()
    trained.save_pretrained(tmp_path / "model")
    assert safetensors_content(tmp_path / "model") == safetensors_content(result.checkpoint)

    images = torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batch = {"images": images, "instruction": ["press the stop button on the microwave"] * 2,
             "state": torch.zeros(2, 16), "embodiment": "robocasa_panda_omron"}

    def chunk(model):
        return model.eval().predict_action_chunk(batch, generator=torch.Generator().manual_seed(1))

    expected = chunk(trained)
    for loaded in (VLA.from_pretrained(tmp_path / "model"), VLA.from_pretrained(result.checkpoint),
                   load_policy_checkpoint(result.checkpoint)[0]):
        assert torch.equal(chunk(loaded), expected)


# The small preset's fast step: bf16 autocast (fp32 where the CPU lacks native bf16), math attention, fused AdamW.
FAST_STEP = ("--mixed-precision", "bf16", "--attention", "math", "--optim.fused", "true")


@pytest.mark.parametrize("speed", [(), FAST_STEP, ("--ema.enabled", "true"), ("--compile", "true")],
                         ids=["fp32", "fast-step", "ema", "compiled"])
def test_stop_and_resume_continue_the_same_loss_curve(dataset, tmp_path, speed):
    # Uncached, with image augmentation: data order, augmentation, dropout and noise must all resume exactly.
    common = ["--steps", 8, "--save-every", 2, *speed]
    _, full = train(args(dataset, tmp_path / "a", *common))
    _, first = train(args(dataset, tmp_path / "b", *common, "--stop-at-step", 5))
    assert first.stopped_early and first.checkpoint.name == "checkpoint-000005"
    _, resumed = train(args(dataset, tmp_path / "b", *common))
    a, b = losses(full.run_dir), losses(resumed.run_dir)
    assert sorted(b) == list(range(1, 9))
    for step in range(1, 9):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step
    # The weights the checkpoints evaluate (the average, with --ema.enabled) resume too.
    full_weights, resumed_weights = (read_weights(r.checkpoint / "model.safetensors") for r in (full, resumed))
    for name, tensor in full_weights.items():
        assert torch.allclose(resumed_weights[name], tensor, rtol=1e-5, atol=1e-6), name


@pytest.mark.skipif(not workspace_module.has_cpp_compiler(), reason="torch.compile on CPU needs a C++ compiler")
def test_a_compiled_head_trains_like_the_eager_one(dataset, tmp_path):
    common = ["--steps", 4, "--save-every", 4]
    eager, _ = train(args(dataset, tmp_path / "eager", *common))
    compiled, _ = train(args(dataset, tmp_path / "compiled", *common, "--compile", "true"))
    assert compiled.model.head.dit._compiled_call_impl is not None
    a, b = losses(eager.plan.run_dir), losses(compiled.plan.run_dir)
    for step in range(1, 5):
        assert b[step] == pytest.approx(a[step], rel=1e-4), step


def test_compile_without_a_cpp_compiler_warns_and_trains_eager(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(workspace_module.shutil, "which", lambda name: None)
    workspace, result = train(args(dataset, tmp_path, "--steps", 1, "--compile", "true"))
    assert result.step == 1 and workspace.model.head.dit._compiled_call_impl is None
    assert capsys.readouterr().err.count("warning: --compile needs a C++ compiler on CPU") == 1


def test_with_ema_a_checkpoint_evaluates_the_average_and_resumes_from_the_trained_weights(dataset, tmp_path, capsys):
    workspace, result = train(args(dataset, tmp_path, "--steps", 6, "--save-every", 3, "--ema.enabled", "true",
                                   "--ema.power", "0.5"))
    saved = read_weights(result.checkpoint / "model.safetensors")
    trained = read_training_state(result.checkpoint)["trained_weights.pt"]
    assert set(trained) == set(workspace.ema.names) and set(trained) <= set(saved)
    assert all(torch.equal(trained[n], p.detach()) for n, p in workspace.model.named_parameters() if n in trained)
    assert all(torch.equal(saved[n], workspace.ema.state_dict()[n]) for n in trained)
    assert any(not torch.equal(saved[n], trained[n]) for n in trained)  # the average is not the last weights
    assert all(torch.equal(saved[n], load_policy_checkpoint(result.checkpoint)[0].state_dict()[n]) for n in trained)
    assert "moving average" in (result.checkpoint / "README.md").read_text()
    # Resuming a run with the other setting would evaluate or continue from the wrong weights: refused in one line.
    err = one_line_error(args(dataset, tmp_path, "--steps", 8), capsys)
    assert "it was trained with --ema.enabled true; resume with the same setting" in err
    _, plain = train(args(dataset, tmp_path / "plain", "--steps", 2, "--save-every", 2))
    assert "trained_weights.pt" not in read_training_state(plain.checkpoint)
    err = one_line_error(args(dataset, tmp_path / "plain", "--steps", 4, "--ema.enabled", "true"), capsys)
    assert "it was trained with --ema.enabled false; resume with the same setting" in err


@pytest.mark.parametrize("cache", [False, True], ids=["images", "cached-features"])
def test_the_same_demos_stored_in_another_order_train_the_same_run(dataset, tmp_path, cache):
    # Parallel collection stores episodes as they finish; the run must not depend on that order.
    reordered = tmp_path / "reordered"
    with DatasetWriter(reordered, ObservationSpec(image_size=64), source="synthetic") as writer:
        for i in (2, 0, 1):
            writer.add_episode(learnable_episode(i))
    common = ["--steps", 6, "--cache-dir", tmp_path / "cache", *(["--cache-features"] if cache else [])]
    _, stored = train(args(dataset, tmp_path / "a", *common))
    _, other = train(args(reordered, tmp_path / "b", *common))
    a, b = losses(stored.run_dir), losses(other.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step


def test_balance_tasks_draws_every_task_equally_often(tmp_path, monkeypatch, capsys):
    # Episodes of unequal length (20, 40, 60 frames): in proportion to frames the third task would get half the draws.
    uneven = tmp_path / "uneven"
    with DatasetWriter(uneven, ObservationSpec(image_size=64), source="synthetic") as writer:
        for i in range(3):
            writer.add_episode(synthetic_episode(20 * (i + 1), seed=i, image_size=64, task_name=TASKS[i]))
    samplers = []
    monkeypatch.setattr(workspace_module, "StepBatchSampler",
                        lambda *a, **kw: samplers.append(StepBatchSampler(*a, **kw)) or samplers[-1])
    train(args(uneven, tmp_path / "run", "--steps", 2, "--cache-features", "--cache-dir", tmp_path / "cache",
               "--data.balance-tasks", "true"))
    sampler = samplers[-1]
    drawn = [sampler.groups[i] for step in range(sampler.steps_per_epoch) for i, _ in sampler.batch_at(step)]
    assert sorted(np.unique(sampler.groups, return_counts=True)[1]) == [20, 40, 60]  # one label per sample
    assert {drawn.count(task) for task in TASKS} == {40}  # 120 draws per epoch, a third each
    # Resuming with the other setting would draw other batches than the run that never stopped: refused.
    err = one_line_error(args(uneven, tmp_path / "run", "--steps", 4, "--cache-features", "--cache-dir",
                              tmp_path / "cache"), capsys)
    assert "it was trained with --data.balance-tasks true; resume with the same setting" in err
    _, plain = train(args(uneven, tmp_path / "plain", "--steps", 2, "--cache-features", "--cache-dir",
                          tmp_path / "cache"))
    err = one_line_error(args(uneven, tmp_path / "plain", "--steps", 4, "--cache-features", "--cache-dir",
                              tmp_path / "cache", "--data.balance-tasks", "true"), capsys)
    assert "it was trained with --data.balance-tasks false; resume with the same setting" in err


def test_a_run_that_builds_the_feature_cache_trains_like_one_that_finds_it(dataset, tmp_path):
    common = ["--steps", 4, "--cache-features", "--cache-dir", tmp_path / "cache"]
    _, building = train(args(dataset, tmp_path / "a", *common))
    _, finding = train(args(dataset, tmp_path / "b", *common))
    assert losses(finding.run_dir) == losses(building.run_dir)


def test_sigkill_mid_run_then_same_command_resumes_exactly(dataset, tmp_path):
    cmd = [sys.executable, str(REPO / "train_vla.py"),
           *args(dataset, tmp_path / "killed", "--steps", 14, "--save-every", 3, "--cache-features")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    run_dir = None
    while time.time() < deadline and proc.poll() is None:
        runs = list((tmp_path / "killed").glob("*/metrics.jsonl"))
        if runs and max((r["step"] for r in read_metrics(runs[0].parent)), default=0) >= 8:
            run_dir = runs[0].parent
            break
        time.sleep(0.05)
    assert run_dir is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "too slow"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list_checkpoints(run_dir)[-1].name in ("checkpoint-000006", "checkpoint-000009", "checkpoint-000012")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stdout and "python rollout.py --task all --checkpoint" in done.stdout
    _, full = train(args(dataset, tmp_path / "full", "--steps", 14, "--save-every", 3, "--cache-features"))
    a, b = losses(full.run_dir), losses(run_dir)
    assert sorted(b) == list(range(1, 15))
    for step in range(1, 15):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step


def one_line_error(argv, capsys):
    capsys.readouterr()  # drop output of earlier calls
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_before_training(dataset, tmp_path, capsys):
    out = tmp_path / "runs"
    assert "does not exist" in one_line_error(args(tmp_path / "missing", out), capsys)
    (tmp_path / "empty").mkdir()
    assert "is empty" in one_line_error(args(tmp_path / "empty", out), capsys)
    (tmp_path / "junk" / "meta").mkdir(parents=True)
    (tmp_path / "junk" / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    assert "codebase_version" in one_line_error(args(tmp_path / "junk", out), capsys)
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert "not Qwen3-VL" in one_line_error(args(dataset, out, "--backbone", tmp_path / "llama"), capsys)
    assert "did you mean 'steps'" in one_line_error(args(dataset, out, "--stesp", 3), capsys)
    assert "--attention must be auto or math; got 'flash'" in one_line_error(args(dataset, out, "--attention",
                                                                                   "flash"), capsys)
    assert "--compile expects bool; got 'maybe'" in one_line_error(args(dataset, out, "--compile", "maybe"), capsys)
    assert "--ema.power must be > 0, got 0.0" in one_line_error(args(dataset, out, "--ema.power", 0), capsys)
    assert "backbone_lr_scale must be > 0, got -1.0" in one_line_error(args(dataset, out, "--optim.backbone-lr-scale",
                                                                            -1), capsys)
    assert "state_dropout must be in [0, 1), got 1.5" in one_line_error(args(dataset, out, "--model.head.state-dropout",
                                                                             1.5), capsys)
    assert "unknown prompt_order 'question-last'; valid: auto, views-first, instruction-first" in one_line_error(
        args(dataset, out, "--model.backbone.prompt-order", "question-last"), capsys)
    mismatch = one_line_error(args(dataset, out, "--backbone", instruction_first_copy(tmp_path),
                                   "--model.backbone.prompt-order", "views-first"), capsys)
    assert "was trained on instruction-first prompts, not views-first: leave --model.backbone.prompt-order at auto" \
        in mismatch
    # zero demos to collect used to pass silently and train on whatever data/demos held
    zero_demos = one_line_error(args(dataset, out, "--collect.episodes", 0), capsys)
    assert "--collect.episodes must be >= 1, got 0" in zero_demos
    assert not out.exists()  # nothing was written by any of the above


def test_resume_with_a_different_model_is_refused(dataset, tmp_path, capsys):
    _, done = train(args(dataset, tmp_path, "--steps", 2, "--save-every", 2, "--cache-features"))
    err = one_line_error(args(dataset, tmp_path, "--steps", 4, "--resume", done.checkpoint,
                              "--model.head.num-layers", 3), capsys)
    assert "model config differs" in err and "head.num_layers: 2 != 3" in err
    (done.checkpoint / "training_state" / "state.json").unlink()
    assert "no training_state" in one_line_error(args(dataset, tmp_path, "--resume", done.checkpoint), capsys)
    with pytest.raises(CheckpointError, match="incomplete"):
        (done.checkpoint / "normalizer.json").unlink()
        load_policy_checkpoint(done.checkpoint)


def test_a_checkpoint_saved_before_a_model_field_existed_resumes_with_its_default(dataset, tmp_path):
    _, done = train(args(dataset, tmp_path, "--steps", 2, "--save-every", 2, "--cache-features",
                         "--cache-dir", tmp_path / "c"))
    config_path = done.checkpoint / "config.json"
    config = json.loads(config_path.read_text())
    del config["model"]["head"]["state_dropout"]  # as written before the field was added
    config_path.write_text(json.dumps(config))
    _, resumed = train(args(dataset, tmp_path, "--steps", 3, "--cache-features", "--cache-dir", tmp_path / "c"))
    assert resumed.step == 3 and resumed.checkpoint.name == "checkpoint-000003"


def test_auto_resume_of_a_run_trained_on_other_demos_is_refused(dataset, tmp_path, capsys):
    # The default run name ignores the task filter and the demo count, so the same command on other demos would
    # otherwise continue (or declare finished) a run that never saw them.
    train(args(dataset, tmp_path, "--steps", 2, "--save-every", 2, "--cache-features", "--cache-dir", tmp_path / "c"))
    err = one_line_error(args(dataset, tmp_path, "--steps", 4, "--data.tasks", "TurnOffMicrowave"), capsys)
    assert "trained on other demos" in err and "CoffeePressButton 1" in err and "--run-name" in err
    assert plan_run(*parse_args(args(dataset, tmp_path, "--steps", 4))).resume_from is not None  # same demos


def test_the_default_demos_are_topped_up_when_short(dataset, tmp_path):
    copy = tmp_path / "demos"
    shutil.copytree(dataset, copy)
    assert not _demos_short(copy, CollectConfig(episodes=1))  # one demo per task, as asked
    assert _demos_short(copy, CollectConfig(episodes=2))  # e.g. a first run killed while collecting: resume it
    assert _demos_short(tmp_path / "missing", CollectConfig(episodes=1))
    assert not _demos_short(copy, CollectConfig(episodes=1, tasks="PnPCabToCounter"))
    (copy / SIDECAR_PATH).unlink()  # demos made elsewhere (no simulator seeds): never topped up with ours
    assert not _demos_short(copy, CollectConfig(episodes=2))


def test_a_frozen_random_backbone_is_warned_about_in_one_line(dataset, tmp_path):
    frozen = plan_run(*parse_args(args(dataset, tmp_path)))
    warning = learning_warning(frozen)
    assert warning is not None and "\n" not in warning and "tiny-grounded" in warning
    tuned = plan_run(*parse_args(args(dataset, tmp_path, "--model.backbone.tune-visual", "true")))
    assert learning_warning(tuned) is None


def test_backbone_files_and_depth_are_checked_before_anything_runs(dataset, tmp_path, capsys):
    out = tmp_path / "runs"
    qwen = fake_qwen_dir(tmp_path / "qwen", layers=28)
    err = one_line_error(args(dataset, out, "--backbone", qwen, "--model.backbone.select-layer", 40), capsys)
    assert "--model.backbone.select-layer 40 exceeds" in err and "28 LLM layers; choose 1..28" in err
    (qwen / "tokenizer.json").unlink()
    assert "no tokenizer (tokenizer.json" in one_line_error(args(dataset, out, "--backbone", qwen), capsys)
    (qwen / "model.safetensors").unlink()
    err = one_line_error(args(dataset, out, "--backbone", qwen), capsys)
    assert "no weights (model.safetensors" in err and "no tokenizer" in err and "hf download" in err
    assert not out.exists()


def test_backbone_given_twice_must_agree(tmp_path, capsys):
    out = tmp_path / "runs"
    err = one_line_error(args("data", out, "--backbone", "tiny", "--model.backbone.name-or-path", "tiny-grounded"),
                         capsys)
    assert err == "error: --backbone tiny and --model.backbone.name-or-path tiny-grounded disagree; give one of them"
    assert "disagree" in one_line_error(args("data", out, "--data.root", "other"), capsys)
    # The same backbone by name and by hub id is fine, and the model field alone chooses the backbone.
    train, _ = parse_args(args("data", out, "--backbone", "qwen3-vl-2b",
                               "--model.backbone.name-or-path", "Qwen/Qwen3-VL-2B-Instruct"))
    assert train.backbone == "qwen3-vl-2b"
    train, model = parse_args(["--preset", "small", "--model.backbone.name-or-path", "tiny"])
    assert train.backbone == "tiny" and model is None
    assert not out.exists()


def test_a_preset_deeper_than_its_backbone_is_cut_with_a_note(capsys):
    model = compose_model_config("groot-n1.5", resolve_backbone("tiny"))
    assert model.backbone.select_layer == 4
    assert capsys.readouterr().out == (
        "note: preset 'groot-n1.5' select_layer 12 > the 4 LLM layers of backbone 'tiny'; using 4\n")
    compose_model_config("small", resolve_backbone("tiny"))
    assert capsys.readouterr().out == ""  # as deep as the backbone: nothing to say


def tree_digest(root: Path) -> dict:
    """{relative path: sha256} of every file under root (a new, changed or removed file changes it)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_training_leaves_a_read_only_dataset_untouched(dataset, tmp_path, capsys):
    # A dataset made by another tool: GR00T's action order, no statistics file of ours, read-only.
    root = Path(shutil.copytree(dataset, tmp_path / "groot-order"))
    store_action_as(root, GR00T_ACTION)
    (root / "meta" / "norm_stats.json").unlink()
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = tree_digest(root)
    try:
        capsys.readouterr()
        assert main(args(root, tmp_path / "runs", "--steps", 2, "--save-every", 2,
                         "--cache-dir", tmp_path / "cache")) == 0
        printed = capsys.readouterr().out.splitlines()
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert tree_digest(root) == before  # nothing written, changed or removed (root ignores chmod: hashes decide)
    assert sum("reordered by name" in line for line in printed) == 1
    checkpoint = find_latest(tmp_path / "runs")
    saved = json.loads((checkpoint / "normalizer.json").read_text())["stats"]["action"]
    original = json.loads((dataset / "meta" / "norm_stats.json").read_text())["action"]
    np.testing.assert_allclose(saved["max"], original["max"], rtol=1e-6)  # statistics in our order, beside the run


def test_math_attention_keeps_the_training_step_off_the_flash_kernel():
    q = torch.randn(2, 4, 25, 16, requires_grad=True)

    def kernels(choice):
        with torch.profiler.profile() as prof, attention_kernel(choice):
            torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
        return {event.key for event in prof.key_averages()}

    assert any("flash" in name for name in kernels("auto"))  # the kernel torch picks on CPU by itself
    assert not any("flash" in name for name in kernels("math"))


def test_bf16_on_a_cpu_without_native_bf16_trains_in_fp32_with_one_warning(dataset, tmp_path, monkeypatch, capsys):
    train_cfg, model_cfg = parse_args(args(dataset, tmp_path, *FAST_STEP))
    assert Workspace(plan_run(train_cfg, model_cfg)).cpu_bf16 == workspace_module.cpu_has_native_bf16()
    capsys.readouterr()
    monkeypatch.setattr(workspace_module, "cpu_has_native_bf16", lambda: False)
    assert not Workspace(plan_run(train_cfg, model_cfg)).cpu_bf16
    assert capsys.readouterr().err == ("warning: this CPU has no native bf16 arithmetic; training in fp32 instead of "
                                       "--mixed-precision bf16\n")
