"""Rebuild a trained policy from a checkpoint: the one entry point rollouts, the policy server and the bridge use."""

from __future__ import annotations

from pathlib import Path

import torch

from checkpoints.format import CheckpointError, read_normalizer, read_weights, resolve_checkpoint, validate_checkpoint
from vla.config import VLAConfig
from vla.data.normalize import Normalizer
from vla.data.transforms import ImageAugConfig, ImageTransform
from vla.model import VLA
from vla.train.weights import backbone_prefixes, find_backbone, weights_fingerprint


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
        model_config = VLAConfig.from_dict(config["model"])
        normalizer = Normalizer.from_dict(read_normalizer(path))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: config or normalizer does not fit this code ({err})") from None
    model = VLA(model_config)
    weights = read_weights(path / "model.safetensors")
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # size mismatches: name the first one only
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise CheckpointError(f"checkpoint {path} does not match its model config: {detail}") from None
    if not config.get("weights", {}).get("includes_backbone", True):
        prefixes = backbone_prefixes(model)
        missing = [k for k in missing if not any(k.startswith(p) for p in prefixes)]
    if missing or unexpected:
        example = (missing + unexpected)[0]
        raise CheckpointError(
            f"checkpoint {path} does not match its model config: {len(missing)} missing and {len(unexpected)} "
            f"unexpected weights (e.g. {example})"
        )
    expected_fp = config.get("backbone", {}).get("fingerprint")
    backbone = find_backbone(model)
    if expected_fp and backbone is not None and not config["weights"].get("includes_backbone", True):
        actual = weights_fingerprint(backbone)
        if actual != expected_fp:
            raise CheckpointError(
                f"checkpoint {path}: backbone {config['backbone']['source']!r} has different weights from the ones "
                f"the head was trained on (fingerprint {actual} != {expected_fp})"
            )
    return model.to(device).eval(), config, normalizer


def resolve_checkpoint_config(path: Path) -> dict:
    """config.json of a validated checkpoint (kept separate so callers can inspect without loading weights)."""
    return validate_checkpoint(path)
