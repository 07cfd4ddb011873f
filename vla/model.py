"""The VLA: Qwen3-VL backbone features + flow-matching action head, with batch checks and model-only save/load."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from checkpoints.backbones import locate_recorded_backbone
from checkpoints.format import CONFIG_FILE, FORMAT as CHECKPOINT_FORMAT, WEIGHTS_FILE, read_weights, write_weights
from contract.embodiments import Embodiment, get_embodiment
from contract.files import atomic_write_json
from vla.action_head import FlowMatchingActionHead
from vla.backbone import BackboneOutput, load_backbone
from vla.config import VLAConfig
from vla.weights import load_saved_weights, weights_fingerprint, weights_to_save

MODEL_TYPE = "xvr_vla"


class VLA(nn.Module):
    """Policy network. Batch: images uint8 (B, V, H, W, 3) + instruction list[str] (or backbone_features +
    backbone_attention_mask from a feature cache), state (B, state_dim), action (B, horizon, action_dim),
    action_is_pad (B, horizon) bool, embodiment str. State and action are already normalized."""

    def __init__(self, config: VLAConfig, device: torch.device | str = "cpu"):
        super().__init__()
        self.config = config
        self.backbone = load_backbone(config.backbone, device)
        if self.backbone.hidden_size != config.head.backbone_dim:
            raise ValueError(
                f"head.backbone_dim={config.head.backbone_dim} but backbone {config.backbone.name_or_path!r} has "
                f"hidden size {self.backbone.hidden_size}; set head.backbone_dim (and vl_heads * vl_head_dim) to match"
            )
        self.head = FlowMatchingActionHead(config.head).to(device)

    # ---- batch checks (the model's boundary) ----

    def embodiment(self, batch: dict) -> Embodiment:
        """The batch's embodiment, validated against the registry and the head's slots."""
        name = batch.get("embodiment")
        if not isinstance(name, str):
            raise ValueError(f"batch['embodiment'] must be one embodiment name (str) per batch, got {type(name).__name__}")
        emb = get_embodiment(name)
        if emb.id >= self.config.head.num_embodiments:
            raise ValueError(f"embodiment {name!r} has id {emb.id}, but the head has {self.config.head.num_embodiments} slots")
        return emb

    def _features(self, batch: dict, emb: Embodiment) -> tuple[torch.Tensor, torch.Tensor]:
        if "backbone_features" in batch:
            features = batch["backbone_features"]
            if features.ndim != 3 or features.shape[-1] != self.config.head.backbone_dim:
                raise ValueError(
                    f"backbone_features must be (B, S, {self.config.head.backbone_dim}), got {tuple(features.shape)}"
                )
            mask = batch.get("backbone_attention_mask")
            if mask is None:
                mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
            if tuple(mask.shape) != tuple(features.shape[:2]):
                raise ValueError(f"backbone_attention_mask must be {tuple(features.shape[:2])}, got {tuple(mask.shape)}")
            return features.to(self.device), mask.to(self.device).bool()
        for key in ("images", "instruction"):
            if key not in batch:
                raise ValueError(f"batch needs 'images' and 'instruction' (or 'backbone_features'); missing {key!r}")
        self.backbone.validate_images(batch["images"], len(emb.cameras))
        out = self.encode_observations(batch["images"], batch["instruction"])
        return out.features, out.attention_mask

    def _state(self, batch: dict, emb: Embodiment) -> torch.Tensor:
        state = _float_tensor(batch, "state", 2)
        if state.shape[-1] != emb.state_dim:
            raise ValueError(f"state has width {state.shape[-1]}, embodiment {emb.name!r} expects {emb.state_dim}")
        return _pad_last(state.to(self.device), self.config.head.max_state_dim)

    def _action(self, batch: dict, emb: Embodiment) -> tuple[torch.Tensor, torch.Tensor]:
        action = _float_tensor(batch, "action", 3)
        horizon = self.config.head.action_horizon
        if action.shape[1:] != (horizon, emb.action_dim):
            raise ValueError(
                f"action must be (B, {horizon}, {emb.action_dim}) for {emb.name!r}, got {tuple(action.shape)}"
            )
        is_pad = batch.get("action_is_pad")
        if is_pad is None:
            is_pad = torch.zeros(action.shape[:2], dtype=torch.bool)
        if tuple(is_pad.shape) != tuple(action.shape[:2]):
            raise ValueError(f"action_is_pad must be {tuple(action.shape[:2])}, got {tuple(is_pad.shape)}")
        padded = _pad_last(action.to(self.device), self.config.head.max_action_dim)
        mask = torch.zeros_like(padded, dtype=torch.bool)
        mask[..., : emb.action_dim] = True
        return padded, mask & ~is_pad.to(self.device).bool()[..., None]

    # ---- the policy API ----

    @property
    def device(self) -> torch.device:
        return self.head.future_tokens.weight.device

    def encode_observations(self, images: torch.Tensor, instructions: list[str]) -> BackboneOutput:
        """Backbone features for views + instructions (what a feature cache stores)."""
        return self.backbone.encode(images, instructions)

    def forward(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss on the batch and its metrics."""
        emb = self.embodiment(batch)
        state = self._state(batch, emb)
        action, action_mask = self._action(batch, emb)
        features, mask = self._features(batch, emb)
        if features.shape[0] != state.shape[0]:
            raise ValueError(f"batch sizes differ: features {features.shape[0]}, state {state.shape[0]}")
        loss = self.head.compute_loss(features, mask, state, action, action_mask, emb.id, generator=generator)
        return loss, {"loss": loss.item(), "action_steps": float(action_mask[..., 0].sum().item())}

    @property
    def noise_shape(self) -> tuple[int, int]:
        """One sample's initial flow-matching noise, for callers that draw it themselves (predict_action_chunk)."""
        return self.head.noise_shape

    @torch.no_grad()
    def predict_action_chunk(
        self, batch: dict, steps: int | None = None, generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, horizon, action_dim) normalized actions for the embodiment's real dims.

        The flow starts from `noise` (B, *noise_shape) when given, else from noise drawn with `generator`.
        """
        emb = self.embodiment(batch)
        state = self._state(batch, emb)
        features, mask = self._features(batch, emb)
        chunk = self.head.sample(features, mask, state, emb.id, steps=steps, generator=generator, noise=noise)
        return chunk[..., : emb.action_dim].float()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer should see (the head, plus any backbone parts the config unfroze)."""
        return [p for p in self.parameters() if p.requires_grad]

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The action head's weights only."""
        return self.head.state_dict()

    # ---- model-only save / load ----

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write config.json + model.safetensors into directory (each file replaced atomically).

        The weights are chosen and written as a training checkpoint's (vla/weights.py), so the two files agree.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        weights, includes_backbone = weights_to_save(self, self.state_dict())
        config = {
            "model_type": MODEL_TYPE,
            "model": self.config.to_dict(),
            "backbone": {"source": self.config.backbone.name_or_path,
                         "fingerprint": weights_fingerprint(self.backbone)},
            "weights": {"includes_backbone": includes_backbone},
        }
        weights_tmp = out / f".{WEIGHTS_FILE}.tmp"
        write_weights(weights_tmp, weights)
        # weights first: a config.json never points at weights that were not fully written
        os.replace(weights_tmp, out / WEIGHTS_FILE)
        atomic_write_json(out / CONFIG_FILE, config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu") -> VLA:
        """Rebuild from save_pretrained output (or a training checkpoint's model); missing files or mismatched
        weights are one-line errors."""
        path = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (path / name).is_file():
                raise ValueError(f"{path} is not a saved VLA model: missing {name}")
        saved = json.loads((path / CONFIG_FILE).read_text())
        if saved.get("model_type") != MODEL_TYPE and saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path / CONFIG_FILE} is not a VLA config (model_type != {MODEL_TYPE!r})")
        if "model" not in saved:
            # Saved before save_pretrained followed the checkpoint rule: the model config at the top level, and for a
            # tiny backbone every weight, for any other only the head and the tuned parts (no fingerprint to check).
            saved = {"model": saved, "weights": {"includes_backbone": VLAConfig.from_dict(saved).backbone.is_tiny}}
        model = cls(saved_model_config(saved["model"], str(path)), device=device)
        load_saved_weights(model, read_weights(path / WEIGHTS_FILE), saved, where=str(path / WEIGHTS_FILE))
        return model


def saved_model_config(model: dict, where: str) -> VLAConfig:
    """The model config a checkpoint records, its backbone located on this machine (the checkpoint may come from
    another: checkpoints/backbones.py's locate_recorded_backbone)."""
    config = VLAConfig.from_dict(model)
    source = locate_recorded_backbone(config.backbone.name_or_path, where)
    return dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, name_or_path=source))


def _float_tensor(batch: dict, key: str, ndim: int) -> torch.Tensor:
    if key not in batch:
        raise ValueError(f"batch is missing {key!r}")
    value = batch[key]
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.ndim != ndim:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"batch[{key!r}] must be a float tensor with {ndim} dims, got {shape}")
    if not torch.isfinite(value).all():
        raise ValueError(f"batch[{key!r}] contains NaN or inf")
    return value


def _pad_last(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the last dimension to width (the head's shared max state/action size)."""
    if x.shape[-1] > width:
        raise ValueError(f"width {x.shape[-1]} exceeds the head's maximum {width}")
    return torch.nn.functional.pad(x, (0, width - x.shape[-1]))
