"""Mapping the contract's 12-D action (RoboCasa layout) onto a robosuite composite controller's own order."""

from __future__ import annotations

import numpy as np

from contract.embodiments import ROBOCASA_PANDA_OMRON

# Contract part -> robosuite composite-controller part (HYBRID_MOBILE_BASE puts the base/arm mode flag last).
_PARTS = {"eef_delta_pos": ("right", 0), "eef_delta_rot": ("right", 3), "gripper": ("right_gripper", 0),
          "base_vel": ("base", 0), "torso": ("torso", 0)}


def robosuite_permutation(split: dict[str, tuple[int, int]]) -> np.ndarray:
    """Index array p with robosuite_action = contract_action[p], built from the controller's action split."""
    dim = ROBOCASA_PANDA_OMRON.action_dim
    perm = np.full(dim, -1)
    for part in ROBOCASA_PANDA_OMRON.action_layout:
        if part.name == "base_mode":
            perm[dim - 1] = part.start
            continue
        rs_part, offset = _PARTS[part.name]
        start = split[rs_part][0] + offset
        perm[start:start + part.width] = np.arange(part.start, part.stop)
    if sorted(perm.tolist()) != list(range(dim)):
        raise RuntimeError(f"robosuite action split {split} does not cover the {dim}-D contract action")
    return perm
