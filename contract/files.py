"""Atomic file writes: a crash leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # per process: concurrent writers never share one
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | Path, data) -> Path:
    """atomic_write_text of indented JSON."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")
