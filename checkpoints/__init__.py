"""Checkpoint format (save, load, resume, validate), named backbone presets, and the local store (runs/)."""

from checkpoints.backbones import BACKBONES, BackboneError, resolve_backbone
from checkpoints.format import CheckpointError, find_latest, resolve_checkpoint, validate_checkpoint

__all__ = [
    "BACKBONES", "BackboneError", "CheckpointError", "find_latest", "load_policy_checkpoint", "resolve_backbone",
    "resolve_checkpoint", "validate_checkpoint",
]


def load_policy_checkpoint(path, device="cpu"):
    """(model, config dict, normalizer) from a checkpoint dir, a run dir (its newest) or 'latest'."""
    # Here, not at the top: checkpoints.load imports the model, and the model (vla.backbone) imports checkpoints.
    from checkpoints.load import load_policy_checkpoint as _load

    return _load(path, device=device)
