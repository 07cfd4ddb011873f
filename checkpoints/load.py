"""Rebuild a trained policy from a checkpoint: the one entry point rollouts, the policy server and the bridge use."""

from __future__ import annotations

from pathlib import Path

import torch

from checkpoints.backbones import BackboneError
from checkpoints.format import CheckpointError, read_normalizer, read_weights, resolve_checkpoint, validate_checkpoint
from vla.data.normalize import Normalizer
from vla.data.transforms import ImageAugConfig, ImageTransform
from vla.model import VLA, saved_model_config
from vla.weights import load_saved_weights


def eval_image_transform(config: dict):
    """The evaluation image transform recorded in a checkpoint's config (centre crop + resize, no jitter)."""
    aug = dict(config["transforms"]["image_aug"])
    return ImageTransform(ImageAugConfig(**aug), train=False)


def load_policy_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, config dict, Normalizer) from a checkpoint dir, a run dir (its newest) or 'latest'.

    A partial checkpoint, weights that do not fit the recorded model config, or a backbone whose weights differ
    from the ones the head was trained on are one-line CheckpointErrors.
    """
    path = resolve_checkpoint(path)
    config = resolve_checkpoint_config(path)
    try:
        model_config = saved_model_config(config["model"], f"checkpoint {path}")
        normalizer = Normalizer.from_dict(read_normalizer(path))
    except BackboneError as err:
        raise CheckpointError(str(err)) from None
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: config or normalizer does not fit this code ({err})") from None
    model = VLA(model_config)
    try:
        load_saved_weights(model, read_weights(path / "model.safetensors"), config, where=f"checkpoint {path}")
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    return model.to(device).eval(), config, normalizer


def resolve_checkpoint_config(path: Path) -> dict:
    """config.json of a validated checkpoint (kept separate so callers can inspect without loading weights)."""
    return validate_checkpoint(path)
