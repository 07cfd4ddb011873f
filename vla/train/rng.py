"""Capture and restore every random stream training draws from (python, numpy, torch CPU and CUDA)."""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng() -> dict:
    """This process's RNG states as tensors and plain containers (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "python": _py_state_to_plain(random.getstate()),
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of capture_rng."""
    random.setstate(_py_state_from_plain(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_plain(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_plain(plain) -> tuple:
    version, internal, gauss = plain
    return (int(version), tuple(int(x) for x in internal), gauss)
