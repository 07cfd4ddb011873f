"""Fine-tuning a Qwen3-VL on visual questions: answer-only labels, a loss that falls, the compact tiny format."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from vla.backbone import load_backbone
from vla.config import BackboneConfig
from vla.tiny_qwen import load_tiny_dir
from vla.vqa.format import read_split
from vla.vqa.grounding import GroundingConfig, generate, score
from vla.vqa.sft import SFTConfig, answer_labels, encode, evaluate, load_images, load_vlm, spread, train

SIZE = 64


@pytest.fixture(scope="module")
def grounding(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounding")
    cfg = GroundingConfig(out=str(root), task="CoffeePressButton", episodes=1, eval_episodes=1, image_size=SIZE,
                          frame_stride=12, workers=1)
    generate(cfg, log=lambda *_: None)
    return root, read_split(root, "train"), read_split(root, "eval")


def test_labels_cover_the_answer_and_end_of_turn_only(grounding):
    root, train_rows, _ = grounding
    model = load_vlm("tiny", SIZE)
    samples = train_rows[:3]
    batch = encode(model.processor, samples, [load_images(root, s, SIZE) for s in samples], with_answers=True)
    tok = model.processor.tokenizer
    for row, sample in enumerate(samples):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tok.decode(labelled) == sample.answer + "<|im_end|>"
    assert answer_labels(batch["input_ids"], batch["attention_mask"], tok).equal(batch["labels"])


def test_training_lowers_the_loss_and_saves_a_compact_backbone(grounding, tmp_path):
    root, train_rows, eval_rows = grounding
    cfg = SFTConfig(data=str(root), out=str(tmp_path / "tiny-g"), steps=30, batch_size=8, lr=2e-3, image_size=SIZE,
                    eval_every=30, eval_samples=8, log_every=5, num_workers=0)
    out = train(cfg, train_rows, eval_rows, log=lambda *_: None, scorer=score)
    history = json.loads((out / "sft_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.6 * losses[0], losses
    assert any("eval" in h for h in history)
    manifest = json.loads((out / "tiny_backbone.json").read_text())
    assert manifest["seed"] == 0 and manifest["answer_vocab"]
    assert (out / "model.safetensors").stat().st_size < 8_000_000  # the 78 MB embedding is not stored

    # The stored backbone answers exactly as the trained one did, and the policy backbone loads it.
    reloaded = load_vlm(str(out), SIZE)
    first = evaluate(reloaded, root, eval_rows[:4], SIZE)
    again = evaluate(load_vlm(str(out), SIZE), root, eval_rows[:4], SIZE)
    assert first.accuracy == again.accuracy
    backbone = load_backbone(BackboneConfig(name_or_path=str(out), select_layer=4, image_size=SIZE))
    images = torch.from_numpy(np.stack(load_images(root, eval_rows[0], SIZE)))[None]
    features = backbone.encode(images, ["press the button"]).features
    assert features.shape[-1] == 128 and torch.isfinite(features).all()
    trained = dict(reloaded.trunk.visual.named_parameters())
    for name, p in backbone.model.visual.named_parameters():
        assert torch.equal(p, trained[name]), name


def test_a_damaged_compact_backbone_is_one_line(grounding, tmp_path):
    root, train_rows, eval_rows = grounding
    cfg = SFTConfig(data=str(root), out=str(tmp_path / "tiny-g"), steps=2, batch_size=2, image_size=SIZE,
                    eval_every=100, eval_samples=0, num_workers=0)
    out = train(cfg, train_rows[:4], [], log=lambda *_: None)
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        load_tiny_dir(out)
    (out / "tiny_backbone.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks 'seed'"):
        load_tiny_dir(out)


def test_a_larger_vision_tower_trains_saves_and_feeds_the_policy_backbone(grounding, tmp_path):
    root, train_rows, _ = grounding
    cfg = SFTConfig(data=str(root), out=str(tmp_path / "tiny-g4"), steps=2, batch_size=2, image_size=SIZE,
                    eval_samples=0, num_workers=0, vision_depth=4, vision_width=96)
    out = train(cfg, train_rows[:4], [], log=lambda *_: None)
    model, _ = load_tiny_dir(out)
    vision = model.config.vision_config
    assert (vision.depth, vision.hidden_size, vision.deepstack_visual_indexes) == (4, 96, [1, 3])
    assert len(model.visual.blocks) == 4
    backbone = load_backbone(BackboneConfig(name_or_path=str(out), select_layer=4, image_size=SIZE))
    images = torch.from_numpy(np.stack(load_images(root, train_rows[0], SIZE)))[None]
    features = backbone.encode(images, ["press the button"]).features
    assert features.shape[-1] == 128 and torch.isfinite(features).all()


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        dataclasses.replace(SFTConfig(), steps=0)
    with pytest.raises(ValueError, match="--tasks is empty"):
        dataclasses.replace(SFTConfig(), tasks=())
    with pytest.raises(ValueError, match="size the seeded tiny backbone's tower; --backbone some/dir brings its own"):
        dataclasses.replace(SFTConfig(), backbone="some/dir", vision_depth=4)
    with pytest.raises(ValueError, match=r"--vision-width a multiple of 16 \(4 heads\); got 2, 100"):
        dataclasses.replace(SFTConfig(), vision_width=100)


def test_spread_draws_every_question_type_even_when_the_list_repeats_with_a_period():
    # 6 questions per frame (3 target, 1 offset, 2 point), 1,226 frames: a stride of len // 300 = 24 would pick
    # the first question of every 4th frame only
    from vla.vqa.format import VQASample, text_block

    kinds = ["target", "target", "target", "offset", "point", "point"]
    rows = [VQASample(f"f{f}-q{q}", kind, (text_block("?"),), "x") for f in range(1226) for q, kind in enumerate(kinds)]
    picked = spread(rows, 300)
    assert len(picked) == len({r.sample_id for r in picked}) == 300
    share = {k: sum(r.task == k for r in picked) / 300 for k in set(kinds)}
    assert 0.4 < share["target"] < 0.6 and 0.1 < share["offset"] < 0.25 and 0.25 < share["point"] < 0.42
    assert [r.sample_id for r in spread(rows, 300)] == [r.sample_id for r in picked]  # the same draw every call
    assert spread(rows[:10], 300) == rows[:10] and spread(rows, 0) == []


def test_tasks_picks_the_question_types_trained_and_refuses_a_type_the_data_lacks(grounding, tmp_path):
    from vla.vqa.sft import select_tasks

    root, train_rows, _ = grounding
    kinds = sorted({r.task for r in train_rows})
    assert len(kinds) > 1
    picked = select_tasks(train_rows, (kinds[0],), "here")
    assert picked and {r.task for r in picked} == {kinds[0]}
    cfg = SFTConfig(data=str(root), out=str(tmp_path / "x"), steps=1, batch_size=2, image_size=SIZE,
                    eval_samples=0, num_workers=0, tasks=(kinds[0], "point_correspondence"))
    with pytest.raises(ValueError, match=r"^--tasks point_correspondence: no such questions in .* train \(it has: "):
        train(cfg, train_rows, [], log=lambda *_: None)
    lines = []
    out = train(dataclasses.replace(cfg, tasks=(kinds[0],)), train_rows, [], log=lines.append)
    assert f"--tasks {kinds[0]}: training on {len(picked)} of {len(train_rows)} questions" in lines
    assert json.loads((out / "tiny_backbone.json").read_text())["config"]["tasks"] == [kinds[0]]
