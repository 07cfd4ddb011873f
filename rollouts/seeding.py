"""Episode seeds: episode i of task T under base seed S always gets the same seed, in any process or run."""

from __future__ import annotations

import hashlib


def episode_seed(base_seed: int, task: str, index: int) -> int:
    """A 31-bit seed derived from (base seed, task, episode index); stable across Python processes and versions."""
    # Python's hash() is salted per process, so a cryptographic digest is used to keep seeds reproducible.
    digest = hashlib.sha256(f"{int(base_seed)}/{task}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
