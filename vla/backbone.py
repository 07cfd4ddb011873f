"""Qwen3-VL backbone cut at `select_layer`: camera views + instruction -> pre-final-norm hidden states of the sequence."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from checkpoints.backbones import check_backbone_dir
from vla.config import BackboneConfig
from vla.tiny_qwen import build_seeded, is_tiny_dir, load_tiny_dir, read_manifest
from vla.tokenizer import build_processor, load_qwen_tokenizer

log = logging.getLogger(__name__)


@dataclass
class BackboneOutput:
    """Features of the whole sequence (system, image and instruction tokens); masks are True on real/image tokens."""

    features: torch.Tensor  # (B, S, D)
    attention_mask: torch.Tensor  # (B, S) bool, False on padding
    image_mask: torch.Tensor  # (B, S) bool, True on image tokens


def resolve_dtype(name: str, device: torch.device | str = "cpu") -> torch.dtype:
    """'auto' is bfloat16 on CUDA and float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return getattr(torch, name)


def _check_qwen3vl_path(name_or_path: str) -> None:
    """Fail early and in one line when a local path is not a Qwen3-VL checkpoint."""
    path = Path(name_or_path).expanduser()
    looks_local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1
    if not looks_local:
        return  # a hub id; transformers reports a missing one (and HF_HUB_OFFLINE) itself
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"backbone {name_or_path!r} is not a Qwen3-VL checkpoint: no {config}; pass 'tiny' or a Qwen3-VL directory / hub id")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type != "qwen3_vl":
        raise ValueError(f"backbone {name_or_path!r} has model_type {model_type!r}, expected 'qwen3_vl'")
    check_backbone_dir(name_or_path, path)  # weights, tokenizer and processor files, before transformers reads any


def resize_views(flat: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) views -> uint8 (N, 3, size, size), bilinear with antialiasing (unchanged if already so)."""
    if flat.shape[-2:] == (size, size):
        return flat
    small = F.interpolate(flat.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return small.round().clamp(0, 255).to(torch.uint8)


class QwenVLBackbone(nn.Module):
    """Truncated Qwen3VLModel plus its processor; frozen parts run without autograd."""

    def __init__(self, model, processor, cfg: BackboneConfig, prompt_order: str = "views-first"):
        super().__init__()
        self.cfg = cfg
        self.prompt_order = prompt_order  # resolved: "views-first" or "instruction-first"
        self.model = model
        self.processor = processor
        self.processor.tokenizer.padding_side = "right"  # real tokens first: features do not depend on batch padding
        self.image_token_id = model.config.image_token_id
        self._truncate(cfg.select_layer)
        self._set_trainable(cfg)

    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.model.language_model.layers)

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def _truncate(self, select_layer: int) -> None:
        layers = self.model.language_model.layers
        if select_layer > len(layers):
            raise ValueError(f"select_layer {select_layer} exceeds the backbone's {len(layers)} LLM layers")
        # Dropped layers are deleted so they cost neither memory nor time; the final norm goes too (pre-norm features).
        del layers[select_layer:]
        self.model.language_model.norm = nn.Identity()
        self.model.config.text_config.num_hidden_layers = select_layer

    def _set_trainable(self, cfg: BackboneConfig) -> None:
        self.requires_grad_(False)
        if cfg.tune_visual:
            self.model.visual.requires_grad_(True)
        if cfg.tune_llm:
            self.model.language_model.requires_grad_(True)
        elif cfg.tune_top_llm_layers:
            for layer in self.model.language_model.layers[-cfg.tune_top_llm_layers :]:
                layer.requires_grad_(True)

    def train(self, mode: bool = True):
        # A frozen backbone stays in eval mode whatever the trainer does to the parent module.
        return super().train(mode and not self.frozen)

    def validate_images(self, images: torch.Tensor, num_views: int) -> None:
        """One-line errors for anything but uint8 (B, V, H, W, 3) with the expected number of views."""
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor uint8 (B, V, H, W, 3), got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (B, V, H, W, 3) in 0..255, got dtype {images.dtype}")
        if images.ndim != 5 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (B, V, H, W, 3), got {tuple(images.shape)}")
        if images.shape[1] != num_views:
            raise ValueError(f"expected {num_views} camera views (left, right, wrist order), got {images.shape[1]}")
        if min(images.shape[2:4]) < 16:
            raise ValueError(f"images must be at least 16x16 (one vision patch), got {images.shape[2]}x{images.shape[3]}")

    def preprocess(self, images: torch.Tensor, instructions: list[str]) -> dict[str, torch.Tensor]:
        """Chat-template the views (in the given order) and the instruction, in `prompt_order`; CPU model inputs."""
        if isinstance(instructions, str) or len(instructions) != images.shape[0]:
            raise ValueError(f"instructions must be a list of {images.shape[0]} strings, one per sample")
        batch, views = images.shape[:2]
        flat = resize_views(images.reshape(batch * views, *images.shape[2:]).permute(0, 3, 1, 2), self.cfg.image_size)
        view_blocks = [{"type": "image"}] * views
        instruction_first = self.prompt_order == "instruction-first"
        texts = []
        for text in instructions:
            instruction = [{"type": "text", "text": str(text)}]
            content = instruction + view_blocks if instruction_first else view_blocks + instruction
            texts.append(self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                            add_generation_prompt=True))
        return dict(self.processor(text=texts, images=list(flat.cpu()), padding=True, return_tensors="pt"))

    def forward_features(self, inputs: dict[str, torch.Tensor]) -> BackboneOutput:
        """Run the truncated model on preprocessed inputs."""
        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                pixel_values=inputs["pixel_values"].to(dtype),
                image_grid_thw=inputs["image_grid_thw"],
                mm_token_type_ids=inputs["mm_token_type_ids"],
                use_cache=False,
            )
        return BackboneOutput(
            features=out.last_hidden_state,
            attention_mask=inputs["attention_mask"].bool(),
            image_mask=inputs["input_ids"] == self.image_token_id,
        )

    def encode(self, images: torch.Tensor, instructions: list[str]) -> BackboneOutput:
        """uint8 (B, V, H, W, 3) views + B instructions -> BackboneOutput."""
        self.validate_images(images, images.shape[1] if images.ndim == 5 else -1)
        return self.forward_features(self.preprocess(images, instructions))


def _build_tiny(cfg: BackboneConfig):
    from transformers import Qwen3VLModel  # lazy, as below: transformers' model code takes seconds to import

    model = build_seeded(Qwen3VLModel, cfg.seed, attn_implementation=cfg.attn_implementation)
    return model, build_processor(cfg.image_size, load_qwen_tokenizer())


def _load_tiny_dir(cfg: BackboneConfig):
    """A trained tiny backbone (compact directory: weights over the seeded embedding), with the tiny processor."""
    model, _ = load_tiny_dir(cfg.name_or_path, cfg.attn_implementation)
    layers = model.config.text_config.num_hidden_layers
    if cfg.select_layer > layers:
        raise ValueError(f"select_layer {cfg.select_layer} exceeds the backbone's {layers} LLM layers")
    return model, build_processor(cfg.image_size, load_qwen_tokenizer())


def _load_pretrained(cfg: BackboneConfig, dtype: torch.dtype):
    from transformers import AutoConfig, AutoProcessor, Qwen3VLModel

    _check_qwen3vl_path(cfg.name_or_path)
    config = AutoConfig.from_pretrained(cfg.name_or_path)
    if config.model_type != "qwen3_vl":
        raise ValueError(f"backbone {cfg.name_or_path!r} has model_type {config.model_type!r}, expected 'qwen3_vl'")
    total = config.text_config.num_hidden_layers
    if cfg.select_layer > total:
        raise ValueError(f"select_layer {cfg.select_layer} exceeds the backbone's {total} LLM layers")
    # Build only the kept layers: the weights of the others are never materialized.
    config.text_config.num_hidden_layers = cfg.select_layer
    model = Qwen3VLModel.from_pretrained(
        cfg.name_or_path, config=config, dtype=dtype, attn_implementation=cfg.attn_implementation
    )
    processor = AutoProcessor.from_pretrained(cfg.name_or_path)
    pixels = cfg.image_size * cfg.image_size
    processor.image_processor.size = {"shortest_edge": pixels, "longest_edge": pixels}  # one token budget per view
    return model, processor


def resolve_prompt_order(cfg: BackboneConfig) -> str:
    """"views-first" or "instruction-first": what a tiny backbone directory was pretrained with (its manifest; an
    explicit other order is refused in one line), else cfg.prompt_order, auto meaning views-first."""
    if not cfg.is_tiny and is_tiny_dir(cfg.name_or_path):
        trained = read_manifest(cfg.name_or_path).get("prompt_order", "views-first")
        if cfg.prompt_order not in ("auto", trained):
            raise ValueError(f"backbone {cfg.name_or_path} was trained on {trained} prompts, not {cfg.prompt_order}: "
                             "leave --model.backbone.prompt-order at auto")
        return trained
    return "views-first" if cfg.prompt_order == "auto" else cfg.prompt_order


def load_backbone(cfg: BackboneConfig, device: torch.device | str = "cpu") -> QwenVLBackbone:
    """Build the tiny backbone or load a Qwen3-VL checkpoint (local dir works offline), cut at cfg.select_layer."""
    dtype = resolve_dtype(cfg.dtype, device)
    prompt_order = resolve_prompt_order(cfg)
    if cfg.is_tiny:
        model, processor = _build_tiny(cfg)
    elif is_tiny_dir(cfg.name_or_path):
        model, processor = _load_tiny_dir(cfg)
    else:
        model, processor = _load_pretrained(cfg, dtype)
    backbone = QwenVLBackbone(model, processor, cfg, prompt_order).to(device=device, dtype=dtype)
    return backbone.train(False)
