"""The tiny Qwen3-VL: its config, a seeded build, and a compact directory format for trained copies.

The tiny model keeps Qwen3-VL's real vocabulary, so its token embedding (151,936 x 128, 78 MB in float32) is
almost all of its weights. Trained copies never change it (pretraining freezes it; the output layer is tied to
it), so a trained tiny backbone is stored as a directory of
  config.json        the full Qwen3VLConfig (model_type qwen3_vl)
  model.safetensors  every weight except the embedding, Qwen3VLModel names (~4 MB)
  tiny_backbone.json the seed that rebuilds the embedding, the image size it was trained at, how it was made
and rebuilt by building the seeded model and loading the stored weights over it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from contract.files import atomic_write_json
from vla.tokenizer import IMAGE_TOKEN_ID, VOCAB_SIZE

MANIFEST = "tiny_backbone.json"
WEIGHTS = "model.safetensors"
EMBEDDING = "language_model.embed_tokens.weight"
# the shipped tiny backbone's vision tower: blocks, width (other sizes: scripts/pretrain_backbone.py --sft.vision-*)
VISION_DEPTH, VISION_WIDTH = 2, 64


def tiny_qwen3vl_config(vision_depth: int = VISION_DEPTH, vision_width: int = VISION_WIDTH):
    """A small random-weight Qwen3-VL with the real vocabulary and special-token ids (REFERENCE.md section 4).

    The vision tower is `vision_depth` blocks `vision_width` wide (the default, 2 x 64, is the shipped backbone's);
    its two deepstack features come from the middle and the last block, as [0, 1] does for two blocks.
    """
    from transformers import Qwen3VLConfig  # lazy, as below: transformers' model code takes seconds to import

    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, max_position_embeddings=4096, tie_word_embeddings=True,
            rope_parameters=dict(rope_type="default", rope_theta=5_000_000.0, mrope_section=[8, 4, 4], mrope_interleaved=True),
        ),
        vision_config=dict(
            depth=vision_depth, hidden_size=vision_width, intermediate_size=2 * vision_width, num_heads=4,
            patch_size=16, temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=128,
            num_position_embeddings=256, deepstack_visual_indexes=[vision_depth // 2 - 1, vision_depth - 1],
        ),
        image_token_id=IMAGE_TOKEN_ID, tie_word_embeddings=True,
    )


def build_seeded(model_class, seed: int, config=None, attn_implementation: str = "sdpa"):
    """A randomly initialised tiny model whose weights depend only on `seed` (callers' RNG streams untouched)."""
    config = config if config is not None else tiny_qwen3vl_config()
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def is_tiny_dir(path: str | os.PathLike) -> bool:
    """Whether a directory holds a trained tiny backbone in the compact format."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
    """tiny_backbone.json of a compact tiny directory, checked for the fields a rebuild needs."""
    manifest_path = Path(path) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{manifest_path} is unreadable: {err}") from None
    for key in ("seed",):
        if key not in manifest:
            raise ValueError(f"{manifest_path} lacks {key!r}; it cannot rebuild the embedding")
    if not (Path(path) / WEIGHTS).is_file():
        raise ValueError(f"tiny backbone {path} has no {WEIGHTS}")
    return manifest


def load_tiny_dir(path: str | os.PathLike, attn_implementation: str = "sdpa"):
    """(Qwen3VLModel, manifest) from a compact tiny directory."""
    from transformers import Qwen3VLConfig, Qwen3VLModel

    path = Path(path)
    manifest = read_manifest(path)
    config = Qwen3VLConfig.from_pretrained(path)
    model = build_seeded(Qwen3VLModel, int(manifest["seed"]), config, attn_implementation)
    try:
        weights = load_file(str(path / WEIGHTS))
    except Exception as err:  # safetensors raises its own types for truncated or foreign files
        raise ValueError(f"{path / WEIGHTS} is not a readable safetensors file ({err})") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k != EMBEDDING]
    if missing or unexpected:
        raise ValueError(f"{path / WEIGHTS} does not fit its config.json: {len(missing)} missing, "
                         f"{len(unexpected)} unexpected (e.g. {(missing + unexpected)[0]})")
    return model, manifest


def save_tiny_dir(model, path: str | os.PathLike, manifest: dict) -> Path:
    """Write a tiny Qwen3VLModel in the compact format (replacing `path` atomically)."""
    if "seed" not in manifest:
        raise ValueError("manifest needs the seed the embedding was built from")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != EMBEDDING}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        model.config.save_pretrained(tmp)
        atomic_write_json(tmp / MANIFEST, manifest)
        for item in tmp.iterdir():
            item.chmod(0o644)
        tmp.chmod(0o755)  # mkdtemp makes it private
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
