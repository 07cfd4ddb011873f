"""The checkpoint directory: write atomically, validate, find the newest, read back.

A checkpoint is `<run>/checkpoint-<step>/` holding config.json, model.safetensors, normalizer.json, a model card
(README.md) and, for resuming, training_state/. It appears under its final name only once complete (written to a
hidden temp directory, then renamed), so any `checkpoint-*` directory is whole unless someone copied it in parts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from checkpoints.backbones import safetensors_problem

FORMAT = "xvr-vla-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZER_FILE = "normalizer.json"
CARD_FILE = "README.md"
TRAINING_STATE_DIR = "training_state"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE)
DEFAULT_ROOT = Path(__file__).resolve().parent / "runs"
_STEP_DIR = re.compile(r"^checkpoint-(\d+)$")
_ALIASES_KEY = "aliases"


class CheckpointError(ValueError):
    """A checkpoint that is missing, partial, or does not match what is asked of it."""


@dataclass
class CheckpointContents:
    """Everything one checkpoint holds, in memory.

    `training_state` maps file names inside training_state/ to objects: `*.json` are written as JSON, `*.pt` with
    torch.save (tensors and plain containers only, so they load with weights_only=True).
    """

    config: dict
    weights: dict[str, torch.Tensor]
    normalizer: dict
    card: str = ""
    training_state: dict[str, Any] | None = None


def step_dir_name(step: int) -> str:
    """`checkpoint-000120`: zero-padded so names sort by step."""
    return f"checkpoint-{step:06d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dedupe_shared(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that alias an earlier one (tied embeddings): safetensors refuses shared storage."""
    seen: dict[tuple, str] = {}
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in weights.items():
        tensor = tensor.detach()
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = tensor.to("cpu").contiguous().clone()
    return unique, aliases


def write_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Save a state dict as safetensors, recording tied tensors as aliases in the metadata."""
    unique, aliases = _dedupe_shared(weights)
    save_file(unique, str(path), metadata={"format": "pt", _ALIASES_KEY: json.dumps(aliases)})


def read_weights(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict written by write_weights, restoring tied tensors."""
    weights = load_file(str(path), device=str(device))
    with safe_open(str(path), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get(_ALIASES_KEY, "{}"))
    for name, target in aliases.items():
        weights[name] = weights[target]
    return weights


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_checkpoint(directory: str | Path, contents: CheckpointContents) -> Path:
    """Write a checkpoint directory atomically (temp dir, then rename); an existing one is replaced whole."""
    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = parent / f".tmp-{directory.name}-{tag}"
    tmp.mkdir()
    try:
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "saved_at": time.time(), **contents.config}
        written = [tmp / CONFIG_FILE, tmp / WEIGHTS_FILE, tmp / NORMALIZER_FILE, tmp / CARD_FILE]
        _write_json(tmp / CONFIG_FILE, config)
        write_weights(tmp / WEIGHTS_FILE, contents.weights)
        _write_json(tmp / NORMALIZER_FILE, contents.normalizer)
        (tmp / CARD_FILE).write_text(contents.card)
        if contents.training_state is not None:
            state_dir = tmp / TRAINING_STATE_DIR
            state_dir.mkdir()
            for name, obj in contents.training_state.items():
                if name.endswith(".json"):
                    _write_json(state_dir / name, obj)
                else:
                    torch.save(obj, state_dir / name)
                written.append(state_dir / name)
            _fsync_dir(state_dir)
        # Durable before visible: a crash after the rename must not expose files still in the page cache only.
        for path in written:
            _fsync_file(path)
        _fsync_dir(tmp)
        old = None
        if directory.exists():
            old = parent / f".old-{directory.name}-{tag}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The `checkpoint-<step>` directories of a run, oldest step first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints of a run (0 or less keeps all); returns the deleted."""
    if keep_last <= 0:
        return []
    doomed = list_checkpoints(run_dir)[:-keep_last]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def remove_stale_temp_dirs(run_dir: str | Path) -> list[Path]:
    """Delete temp directories left by a save that was killed midway."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    stale = [p for p in run_dir.iterdir() if p.is_dir() and p.name.startswith((".tmp-", ".old-"))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def validate_checkpoint(path: str | Path, *, need_training_state: bool = False) -> dict:
    """The parsed config.json of a complete checkpoint; a one-line CheckpointError otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is not a directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is incomplete: missing {', '.join(missing)} (interrupted copy or not a checkpoint)"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        json.loads((path / NORMALIZER_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} has an unreadable JSON file: {err}") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: config.json is not an {FORMAT} config (format={config.get('format')!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: {CONFIG_FILE} has format version {config['format_version']}, newer than this code "
            f"reads (up to {FORMAT_VERSION}); update xvr-vla to load it"
        )
    problem = safetensors_problem(path / WEIGHTS_FILE)
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}; copy it again or use another checkpoint")
    try:
        with safe_open(str(path / WEIGHTS_FILE), framework="pt") as f:
            f.keys()
    except Exception as err:  # safetensors raises its own error types for truncated files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_FILE} is unreadable ({first})") from None
    if need_training_state and not (path / TRAINING_STATE_DIR / "state.json").is_file():
        raise CheckpointError(f"checkpoint {path} has no {TRAINING_STATE_DIR}/ (saved without training state?)")
    return config


def _is_complete(path: Path) -> bool:
    try:
        validate_checkpoint(path)
    except CheckpointError:
        return False
    return True


def _saved_at(path: Path) -> float:
    try:
        return float(json.loads((path / CONFIG_FILE).read_text()).get("saved_at"))
    except (OSError, ValueError, TypeError, json.JSONDecodeError):
        return (path / CONFIG_FILE).stat().st_mtime


def find_latest(root: str | Path = DEFAULT_ROOT) -> Path:
    """The most recently saved complete checkpoint under `root` (a runs directory, a run, or a checkpoint)."""
    root = Path(root)
    if (root / CONFIG_FILE).is_file():
        validate_checkpoint(root)
        return root
    if not root.is_dir():
        raise CheckpointError(f"no checkpoints: {root} does not exist")
    candidates = [p.parent for p in root.glob(f"checkpoint-*/{CONFIG_FILE}")]
    candidates += [p.parent for p in root.glob(f"*/checkpoint-*/{CONFIG_FILE}")]
    complete = [p for p in candidates if _STEP_DIR.match(p.name) and _is_complete(p)]
    if not complete:
        raise CheckpointError(f"no complete checkpoint under {root}")
    return max(complete, key=lambda p: (_saved_at(p), p.name))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint, a run directory (its newest) or 'latest' (newest in checkpoints/runs)."""
    if str(path) in ("latest", "auto"):
        return find_latest(DEFAULT_ROOT)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if (path / CONFIG_FILE).exists():
        validate_checkpoint(path)
        return path
    return find_latest(path)


def read_config(path: str | Path) -> dict:
    """config.json of a validated checkpoint."""
    return validate_checkpoint(path)


def read_normalizer(path: str | Path) -> dict:
    """normalizer.json of a checkpoint, as a dict."""
    return json.loads((Path(path) / NORMALIZER_FILE).read_text())


def read_training_state(path: str | Path) -> dict[str, Any]:
    """Every file in training_state/, parsed (JSON or weights-only torch.load)."""
    state_dir = Path(path) / TRAINING_STATE_DIR
    if not (state_dir / "state.json").is_file():
        raise CheckpointError(f"checkpoint {path} has no {TRAINING_STATE_DIR}/state.json; it cannot be resumed")
    out: dict[str, Any] = {}
    for file in sorted(state_dir.iterdir()):
        try:
            if file.suffix == ".json":
                out[file.name] = json.loads(file.read_text())
            else:
                out[file.name] = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # torch.load raises many types for a truncated file
            raise CheckpointError(f"checkpoint {path}: {TRAINING_STATE_DIR}/{file.name} is unreadable ({err})") from None
    return out


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested JSON-like configs: ['head.width: 256 != 512', ...]."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            name = f"{prefix}{key}"
            if key not in a:
                out.append(f"{name}: (absent) != {b[key]!r}")
            elif key not in b:
                out.append(f"{name}: {a[key]!r} != (absent)")
            else:
                out += config_differences(a[key], b[key], prefix=f"{name}.")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} != {b!r}"]
