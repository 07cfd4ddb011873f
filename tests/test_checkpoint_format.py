import json
import os
import time

import pytest
import torch
from safetensors.torch import save_file

from checkpoints.backbones import BackboneError, resolve_backbone
from checkpoints.format import (
    CheckpointContents,
    CheckpointError,
    config_differences,
    find_latest,
    list_checkpoints,
    prune_checkpoints,
    read_training_state,
    read_weights,
    remove_stale_temp_dirs,
    resolve_checkpoint,
    save_checkpoint,
    step_dir_name,
    validate_checkpoint,
)


def contents(value: float = 1.0, with_state: bool = True) -> CheckpointContents:
    shared = torch.full((4, 3), value)
    return CheckpointContents(
        config={"model": {"head": {"width": 8}}, "step": int(value)},
        weights={"embed.weight": shared, "lm_head.weight": shared, "bias": torch.arange(3.0)},
        normalizer={"embodiment": "robocasa_panda_omron", "stats": {}},
        card="# test\n",
        training_state={"state.json": {"step": int(value)}, "optimizer.pt": {"lr": torch.tensor(0.1)}}
        if with_state else None,
    )


def test_save_then_read_back_everything(tmp_path):
    path = save_checkpoint(tmp_path / "run" / step_dir_name(5), contents(5.0))
    assert path.name == "checkpoint-000005"
    config = validate_checkpoint(path, need_training_state=True)
    assert config["model"] == {"head": {"width": 8}} and config["format_version"] == 1
    weights = read_weights(path / "model.safetensors")
    assert torch.equal(weights["lm_head.weight"], torch.full((4, 3), 5.0))  # tied tensors survive safetensors
    state = read_training_state(path)
    assert state["state.json"] == {"step": 5} and float(state["optimizer.pt"]["lr"]) == pytest.approx(0.1)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_partial_checkpoint_is_a_one_line_error(tmp_path):
    path = save_checkpoint(tmp_path / "run" / step_dir_name(1), contents())
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"incomplete: missing model.safetensors") as err:
        validate_checkpoint(path)
    assert "\n" not in str(err.value)


def test_truncated_weights_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "run" / step_dir_name(1), contents())
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors (is truncated|has (an unreadable|no) safetensors header)"):
        validate_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        validate_checkpoint(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    for name in ("config.json", "normalizer.json", "model.safetensors"):
        (tmp_path / "x" / name).write_text("{}")
    with pytest.raises(CheckpointError, match="not an xvr-vla-checkpoint config"):
        validate_checkpoint(tmp_path / "x")


def test_resaving_a_step_replaces_it_whole(tmp_path):
    target = tmp_path / "run" / step_dir_name(3)
    save_checkpoint(target, contents(1.0))
    save_checkpoint(target, contents(2.0, with_state=False))
    assert read_weights(target / "model.safetensors")["bias"].tolist() == [0.0, 1.0, 2.0]
    assert not (target / "training_state").exists()


def test_find_latest_skips_incomplete_and_picks_newest(tmp_path):
    save_checkpoint(tmp_path / "a" / step_dir_name(10), contents(10.0))
    time.sleep(0.01)
    newest = save_checkpoint(tmp_path / "b" / step_dir_name(2), contents(2.0))
    time.sleep(0.01)
    broken = save_checkpoint(tmp_path / "a" / step_dir_name(20), contents(20.0))
    (broken / "normalizer.json").unlink()
    assert find_latest(tmp_path) == newest
    assert find_latest(tmp_path / "a") == tmp_path / "a" / step_dir_name(10)
    assert resolve_checkpoint(tmp_path / "b") == newest
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_latest(tmp_path / "empty")


def test_prune_keeps_the_newest_and_stale_temp_dirs_go(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3, 10):
        save_checkpoint(run / step_dir_name(step), contents(float(step), with_state=False))
    (run / ".tmp-checkpoint-000011-123-abc").mkdir()
    prune_checkpoints(run, keep_last=2)
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-000003", "checkpoint-000010"]
    assert [p.name for p in remove_stale_temp_dirs(run)] == [".tmp-checkpoint-000011-123-abc"]


def test_config_differences_name_the_fields():
    a = {"head": {"width": 8, "layers": 2}, "cams": ["l", "r"]}
    b = {"head": {"width": 16, "layers": 2}, "cams": ("l", "r")}
    assert config_differences(a, b) == ["head.width: 8 != 16"]


def test_backbone_presets_and_bad_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a hub id is then accepted without a download
    assert resolve_backbone("tiny").is_tiny
    assert resolve_backbone("qwen3-vl-2b-xvr").source == "Jaehwisong/Qwen3-VL-2B-XVR"
    with pytest.raises(BackboneError, match=r"did you mean 'qwen3-vl-2b'"):
        resolve_backbone("qwen3-vl-2")
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BackboneError, match="not Qwen3-VL"):
        resolve_backbone(str(tmp_path / "llama"))
    with pytest.raises(BackboneError, match="has no config.json"):
        resolve_backbone(str(tmp_path))
    assert resolve_backbone(str(fake_qwen_dir(tmp_path / "qwen"))).is_local


def fake_qwen_dir(folder, layers=28, weights=("model.safetensors",)):
    """A Qwen3-VL directory with every file a load needs (weights are a few bytes: only the layout matters)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "qwen3_vl", "text_config": {"hidden_size": 2048, "num_hidden_layers": layers}}))
    for name in weights:
        save_file({"w": torch.zeros(2)}, str(folder / name))
    if len(weights) > 1:
        index = {"metadata": {}, "weight_map": {f"w{i}": name for i, name in enumerate(weights)}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.json"):
        (folder / name).write_text("{}")
    return folder


def test_incomplete_backbone_dirs_name_every_missing_file_in_one_line(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    with pytest.raises(BackboneError) as err:
        resolve_backbone(str(bare))
    line = str(err.value)
    assert "\n" not in line and "is incomplete" in line and "hf download" in line
    for what in ("no weights (model.safetensors", "no tokenizer (tokenizer.json", "no image processor config",
                 "no chat template"):
        assert what in line, what

    shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert resolve_backbone(str(fake_qwen_dir(tmp_path / "sharded", weights=shards))).is_local
    (tmp_path / "sharded" / shards[1]).unlink()
    with pytest.raises(BackboneError, match="missing weight shard.*model-00002-of-00002.safetensors"):
        resolve_backbone(str(tmp_path / "sharded"))

    cut = fake_qwen_dir(tmp_path / "cut")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[:-3])
    with pytest.raises(BackboneError, match=r"model.safetensors is truncated"):
        resolve_backbone(str(cut))

    no_tokenizer = fake_qwen_dir(tmp_path / "no-tok", weights=("pytorch_model.bin",))
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(BackboneError) as err:
        resolve_backbone(str(no_tokenizer))
    assert "no tokenizer" in str(err.value) and "weights" not in str(err.value).split("incomplete:")[1]


def test_uncached_hub_backbone_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", os.devnull + "-nonexistent")
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache"):
        resolve_backbone("someone/not-cached-model")
