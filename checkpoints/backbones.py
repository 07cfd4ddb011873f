"""Named backbone presets and the check that a backbone reference points at a usable Qwen3-VL."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from contract.lookup import did_you_mean

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


# What a Qwen3-VL directory needs beside config.json, as alternatives: any one complete set is enough.
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
TINY_MANIFEST = "tiny_backbone.json"  # vla/tiny_qwen.py's compact tiny directories (tokenizer from a package)


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be read whole (from its header and size; no tensor is loaded), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length <= 0 or length > 100_000_000:
                return f"{path.name} has no safetensors header (empty, cut short or another format)"
            header = json.loads(f.read(length))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{path.name} has an unreadable safetensors header ({type(err).__name__})"
    size = path.stat().st_size
    if size < 8 + length + end:
        return f"{path.name} is truncated ({size} of {8 + length + end} bytes)"
    return None


def _weights_problem(folder: Path) -> str | None:
    """Why `folder` has no complete set of weights, else None."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as err:
                return f"{name} is unreadable ({type(err).__name__}); re-download it"
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                return f"missing weight shard(s) {', '.join(missing)} listed in {name}"
            checked = [folder / s for s in shards if s.endswith(".safetensors")]
        else:
            checked = [path] if name.endswith(".safetensors") else []
        for shard in checked:
            problem = safetensors_problem(shard)
            if problem:
                return problem
        return None
    return f"no weights ({', '.join(WEIGHT_FILES)})"


def _has_chat_template(folder: Path) -> bool:
    if any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    for name in ("tokenizer_config.json", "processor_config.json"):
        try:
            if "chat_template" in json.loads((folder / name).read_text()):
                return True
        except (OSError, ValueError):
            continue
    return False


def backbone_dir_problems(folder: Path) -> list[str]:
    """What a local Qwen3-VL directory lacks to load (weights, tokenizer, processor, chat template); [] when whole."""
    folder = Path(folder)
    if (folder / TINY_MANIFEST).is_file():
        problem = _weights_problem(folder) if (folder / "model.safetensors").is_file() else "no model.safetensors"
        return [problem] if problem else []
    problems = []
    weights = _weights_problem(folder)
    if weights:
        problems.append(weights)
    if not any(all((folder / name).is_file() for name in names) for names in TOKENIZER_FILES):
        problems.append("no tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if not any((folder / name).is_file() for name in PROCESSOR_FILES):
        problems.append(f"no image processor config ({' or '.join(PROCESSOR_FILES)})")
    if not _has_chat_template(folder):
        problems.append(f"no chat template ({' or '.join(CHAT_TEMPLATE_FILES)}, or in tokenizer_config.json)")
    return problems


def check_backbone_dir(name: str, folder: Path) -> None:
    """One BackboneError line naming everything a local backbone directory lacks, and how to get it."""
    problems = backbone_dir_problems(folder)
    if problems:
        where = f"backbone {name!r}" if Path(name) == Path(folder) else f"backbone {name!r} ({folder})"
        raise BackboneError(
            f"{where} is incomplete: {'; '.join(problems)}; copy the missing files from the model's hub repository "
            f"(e.g. hf download Qwen/Qwen3-VL-2B-Instruct --local-dir {folder})"
        )


def locate_recorded_backbone(recorded: str, where: str) -> str:
    """A checkpoint's recorded backbone source, as found on this machine.

    Training records a local backbone by its absolute path, so a checkpoint copied to another machine or checkout
    (trained on a workstation, served from a GPU box) points at a folder that is not there. A backbone shipped with
    the repository is then taken from this checkout's copy (the loader still checks its weights' fingerprint);
    any other missing folder is one line naming it.
    """
    path = Path(recorded)
    if not path.is_absolute() or path.exists():
        return recorded
    shipped = PRETRAINED_DIR / path.name
    if path.parent.name == PRETRAINED_DIR.name and shipped.is_dir():
        return str(shipped)
    raise BackboneError(f"{where}: its backbone {recorded} is not on this machine; copy that folder to the same path "
                        "(the weights are checked against the fingerprint the head was trained on)")


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
        check_backbone_dir(name, path)
        return BackboneRef(name, str(path.resolve()))
    # A hub id: usable if its config is cached locally, or the hub may be reached.
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
