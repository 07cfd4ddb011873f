"""The whole VLA on the tiny preset: batch contract, feature-cache path, save/load, and bad input."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from contract.embodiments import get_embodiment
from vla.config import VLAConfig
from vla.model import VLA
from vla.presets import get_preset

CONFIG = get_preset("tiny")
PANDA = get_embodiment("franka_panda")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VLA(CONFIG).eval()


def make_batch(batch=2, emb=PANDA, seed=0):
    g = torch.Generator().manual_seed(seed)
    horizon = CONFIG.head.action_horizon
    is_pad = torch.zeros(batch, horizon, dtype=torch.bool)
    is_pad[0, -3:] = True  # episode end: last steps repeat the final action and are masked
    return {
        "images": torch.randint(0, 256, (batch, len(emb.cameras), 64, 64, 3), dtype=torch.uint8, generator=g),
        "instruction": ["press the button on the coffee machine", "pick the mug"][:batch],
        "state": torch.randn(batch, emb.state_dim, generator=g),
        "action": torch.randn(batch, horizon, emb.action_dim, generator=g).clamp(-1, 1),
        "action_is_pad": is_pad,
        "embodiment": emb.name,
    }


def test_forward_gives_a_loss_and_float_metrics(model):
    loss, metrics = model(make_batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert metrics["loss"] == pytest.approx(loss.item()) and metrics["action_steps"] == 2 * 16 - 3
    assert all(isinstance(v, float) for v in metrics.values())


def test_predict_action_chunk_has_the_embodiments_real_dims(model):
    for emb in (PANDA, get_embodiment("robocasa_panda_omron")):
        chunk = model.predict_action_chunk(make_batch(emb=emb))
        assert chunk.shape == (2, CONFIG.head.action_horizon, emb.action_dim) and torch.isfinite(chunk).all()


def test_only_the_head_trains_by_default(model):
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.head.parameters()}
    assert set(model.head_state_dict()) == set(model.head.state_dict())
    model.train()
    assert model.head.training and not model.backbone.training  # frozen backbone stays in eval mode
    model.eval()


def test_an_unfrozen_vision_tower_gets_its_own_learning_rate():
    from vla.train.config import OptimConfig
    from vla.train.schedule import param_groups

    optim = OptimConfig(lr=1e-3, backbone_lr_scale=0.1)
    frozen_model = VLA(CONFIG)
    frozen = param_groups(frozen_model.trainable_parameters(), frozen_model.backbone, optim)
    assert len(frozen) == 1  # the head only; it takes the optimizer's lr
    tuned_config = dataclasses.replace(CONFIG, backbone=dataclasses.replace(CONFIG.backbone, tune_visual=True))
    model = VLA(tuned_config)
    head, tower = param_groups(model.trainable_parameters(), model.backbone, optim)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.head.parameters()} and "lr" not in head
    assert {id(p) for p in tower["params"]} == {id(p) for p in model.backbone.model.visual.parameters()}
    assert tower["lr"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="backbone_lr_scale must be > 0"):
        OptimConfig(backbone_lr_scale=0)


def test_cached_features_give_the_same_loss_and_chunk(model):
    batch = make_batch()
    out = model.encode_observations(batch["images"], batch["instruction"])
    cached = {k: v for k, v in batch.items() if k not in ("images", "instruction")}
    cached |= {"backbone_features": out.features, "backbone_attention_mask": out.attention_mask}
    loss_a, _ = model(batch, generator=torch.Generator().manual_seed(3))
    loss_b, _ = model(cached, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss_a, loss_b)
    chunk_a = model.predict_action_chunk(batch, generator=torch.Generator().manual_seed(4))
    chunk_b = model.predict_action_chunk(cached, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(chunk_a, chunk_b)


def test_a_training_step_reduces_the_loss_on_a_fixed_batch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only contend on a shared CPU
    torch.manual_seed(0)
    model = VLA(CONFIG)
    batch = make_batch()
    out = model.encode_observations(batch["images"], batch["instruction"])
    batch = {k: v for k, v in batch.items() if k not in ("images", "instruction")}
    batch |= {"backbone_features": out.features, "backbone_attention_mask": out.attention_mask}
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)

    def loss():
        return model(batch, generator=torch.Generator().manual_seed(0))[0]

    before = loss().item()
    try:
        for _ in range(10):
            opt.zero_grad()
            loss().backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert loss().item() < 0.7 * before


def test_save_load_roundtrip_gives_identical_outputs(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert VLAConfig.from_dict(saved["model"]) == CONFIG
    loaded = VLA.from_pretrained(tmp_path).eval()
    batch = make_batch()
    a = model.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7))
    b = loaded.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_a_frozen_backbone_is_not_saved_but_fingerprinted(model, tmp_path):
    # The rule training checkpoints follow too: the frozen backbone is rebuilt from its config and checked.
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert set(stored) == {f"head.{k}" for k in model.head.state_dict()}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["weights"] == {"includes_backbone": False}
    saved["backbone"]["fingerprint"] = "0" * 16  # as if the backbone's files had changed since saving
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="has different weights from the ones the head was trained on"):
        VLA.from_pretrained(tmp_path)


def test_a_tuned_backbone_is_saved_whole(tmp_path):
    torch.manual_seed(0)
    tuned = VLA(CONFIG.replace(backbone=dataclasses.replace(CONFIG.backbone, tune_top_llm_layers=1))).eval()
    tuned.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(tuned.state_dict())
    loaded = VLA.from_pretrained(tmp_path).eval()
    batch = make_batch()
    a = tuned.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, loaded.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7)))


def test_loading_partial_or_mismatched_saves_fails_in_one_line(model, tmp_path):
    with pytest.raises(ValueError, match="missing config.json"):
        VLA.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["model"]["head"]["num_layers"] = 4
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match its model config"):
        VLA.from_pretrained(tmp_path)


def test_config_round_trips_through_json_and_presets_suggest_names():
    for name in ("tiny", "small", "groot-n1.5"):
        cfg = get_preset(name)
        assert VLAConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="did you mean 'groot-n1.5'"):
        get_preset("groot-n15")
    with pytest.raises(ValueError, match="did you mean 'select_layer'"):
        VLAConfig.from_dict({"backbone": {"select_layers": 3}})


def test_head_width_must_match_the_backbone():
    head = dataclasses.replace(CONFIG.head, backbone_dim=64, vl_heads=2, vl_head_dim=32)
    with pytest.raises(ValueError, match="hidden size 128"):
        VLA(CONFIG.replace(head=head))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"embodiment": "franka"}, "unknown embodiment 'franka' \\(did you mean 'franka_panda'\\?\\)"),
        ({"embodiment": ["franka_panda"]}, "one embodiment name"),
        ({"images": torch.zeros(2, 2, 64, 64, 3, dtype=torch.uint8)}, "expected 3 camera views"),
        ({"images": torch.zeros(2, 3, 64, 64, 3)}, "must be uint8"),
        ({"images": torch.zeros(2, 3, 3, 64, 64, dtype=torch.uint8)}, r"shape \(B, V, H, W, 3\)"),
        ({"state": torch.zeros(2, 16)}, "state has width 16, embodiment 'franka_panda' expects 9"),
        ({"state": torch.full((2, 9), float("nan"))}, "NaN"),
        ({"action": torch.zeros(2, 16, 12)}, r"action must be \(B, 16, 7\)"),
        ({"action": torch.zeros(2, 8, 7)}, r"action must be \(B, 16, 7\)"),
        ({"action_is_pad": torch.zeros(2, 8, dtype=torch.bool)}, "action_is_pad must be"),
        ({"backbone_features": torch.zeros(2, 5, 64)}, r"backbone_features must be \(B, S, 128\)"),
    ],
)
def test_bad_batches_are_one_line_errors(model, change, match):
    batch = make_batch() | change
    with pytest.raises(ValueError, match=match) as err:
        model(batch)
    assert "\n" not in str(err.value)


def test_a_checkpoint_from_another_checkout_finds_the_shipped_backbone_here(tmp_path):
    """Training records a local backbone by absolute path; a copied checkpoint must still load where it lands."""
    from checkpoints.backbones import PRETRAINED_DIR

    shipped = str(PRETRAINED_DIR / "tiny-grounded")
    config = get_preset("small")
    config = config.replace(backbone=dataclasses.replace(config.backbone, name_or_path=shipped))
    torch.manual_seed(0)
    model = VLA(config).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["model"]["backbone"]["name_or_path"] = "/home/someone/vla/checkpoints/pretrained/tiny-grounded"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = VLA.from_pretrained(tmp_path).eval()
    assert loaded.config.backbone.name_or_path == shipped
    batch = make_batch(emb=get_embodiment("robocasa_panda_omron"))
    batch["images"] = torch.randint(0, 256, (2, 3, 128, 128, 3), dtype=torch.uint8)
    a = model.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, loaded.predict_action_chunk(batch, generator=torch.Generator().manual_seed(7)))

    saved["model"]["backbone"]["name_or_path"] = "/home/someone/models/my-qwen3-vl"  # not one the repo ships
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="its backbone /home/someone/models/my-qwen3-vl is not on this machine"):
        VLA.from_pretrained(tmp_path)
