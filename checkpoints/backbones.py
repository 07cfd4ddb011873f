"""Named backbone presets and the check that a backbone reference points at a usable Qwen3-VL."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vla.embodiments import did_you_mean

TINY = "tiny"
# Trained tiny backbones shipped with the repository (compact format, vla/tiny_qwen.py; ~4 MB each).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

# name -> hub id, a shipped directory, or TINY (a random-weight Qwen3-VL built offline from a config)
BACKBONES: dict[str, str] = {
    "tiny": TINY,
    # the tiny Qwen3-VL pretrained on simulator grounding questions (scripts/pretrain_backbone.py)
    "tiny-grounded": str(PRETRAINED_DIR / "tiny-grounded"),
    "qwen3-vl-2b": "Qwen/Qwen3-VL-2B-Instruct",
    "qwen3-vl-2b-xvr": "Jaehwisong/Qwen3-VL-2B-XVR",
}


class BackboneError(ValueError):
    """A backbone name or path that cannot be used."""


@dataclass(frozen=True)
class BackboneRef:
    """Where a backbone comes from: `name` as the user gave it, `source` = TINY, a hub id or a local directory."""

    name: str
    source: str

    @property
    def is_tiny(self) -> bool:
        return self.source == TINY

    @property
    def is_local(self) -> bool:
        return not self.is_tiny and Path(self.source).is_dir()


def _qwen3_vl_config_error(config_path: Path) -> str | None:
    """Why `config_path` is not a Qwen3-VL config, or None when it is."""
    if not config_path.is_file():
        return f"{config_path.parent} has no config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"{config_path} is not valid JSON ({err})"
    model_type = str(config.get("model_type", ""))
    architectures = " ".join(config.get("architectures") or [])
    if model_type.startswith("qwen3_vl") or "Qwen3VL" in architectures:
        return None
    return f"{config_path} is a {model_type or 'model of unknown type'!r} config, not Qwen3-VL (model_type qwen3_vl)"


def resolve_backbone(name_or_path: str) -> BackboneRef:
    """A preset name, local Qwen3-VL directory or hub id -> BackboneRef; fails with one line when it cannot load."""
    name = str(name_or_path)
    source = BACKBONES.get(name, name)
    if source == TINY:
        return BackboneRef(name, TINY)
    path = Path(os.path.expanduser(source))
    looks_like_path = path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1
    if looks_like_path:
        if not path.exists():
            raise BackboneError(
                f"unknown backbone {name!r}{did_you_mean(name, BACKBONES)}: not a preset "
                f"({', '.join(BACKBONES)}), a local directory or a hub id"
            )
        problem = _qwen3_vl_config_error(path / "config.json")
        if problem:
            raise BackboneError(f"backbone {name!r} is not a Qwen3-VL checkpoint: {problem}")
        return BackboneRef(name, str(path.resolve()))
    # A hub id: usable if its config is cached locally, or the hub may be reached.
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        problem = _qwen3_vl_config_error(Path(cached))
        if problem:
            raise BackboneError(f"backbone {name!r} is not a Qwen3-VL checkpoint: {problem}")
    elif os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise BackboneError(
            f"backbone {name!r} ({source}) is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"download it (`hf download {source}`) or pass a local directory"
        )
    return BackboneRef(name, source)
