"""Convert RoboCasa v0.x robomimic HDF5 demos (data/demo_N/{actions, obs/*}) into the project's LeRobot dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from contract.embodiments import IMAGE_KEYS, IMAGE_SIZE
from contract.spec import ObservationSpec
from vla.data.schema import read_sidecar
from vla.data.writer import DatasetWriter, Episode

# robomimic observation names for our three cameras, in IMAGE_KEYS order (left, right, wrist).
CAMERA_OBS = ("robot0_agentview_left_image", "robot0_agentview_right_image", "robot0_eye_in_hand_image")
# Proprio keys concatenated into the 16-D state, in the embodiment's state_layout order.
STATE_OBS = (
    ("robot0_base_pos", 3),
    ("robot0_base_quat", 4),
    ("robot0_base_to_eef_pos", 3),
    ("robot0_base_to_eef_quat", 4),
    ("robot0_gripper_qpos", 2),
)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) with bilinear filtering (no-op when already that size)."""
    if frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames)
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def _attr_json(attrs, name: str) -> dict:
    raw = attrs.get(name)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode()
    return json.loads(raw)


def _demo_order(names) -> list[str]:
    return sorted(names, key=lambda n: int(re.sub(r"\D", "", n) or 0))


def read_demo(f, name: str, image_size: int, task_name: str) -> Episode:
    """One robomimic demo as an Episode; a missing key is an error naming it."""
    group = f["data"][name]
    where = f"data/{name}"
    for key in ("actions", "obs"):
        if key not in group:
            raise ValueError(f"{where}: missing {key!r}; expected actions (N, 12) and obs/*")
    obs = group["obs"]
    for key in CAMERA_OBS + tuple(k for k, _ in STATE_OBS):
        if key not in obs:
            raise ValueError(f"{where}/obs: missing {key!r}; expected {', '.join(CAMERA_OBS + tuple(k for k, _ in STATE_OBS))}")
    actions = np.asarray(group["actions"], dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 12:
        raise ValueError(f"{where}/actions has shape {actions.shape}, expected (N, 12)")
    parts = []
    for key, width in STATE_OBS:
        value = np.asarray(obs[key], dtype=np.float32).reshape(len(actions), -1)
        if value.shape[1] != width:
            raise ValueError(f"{where}/obs/{key} has width {value.shape[1]}, expected {width}")
        parts.append(value)
    images = {ik: resize_frames(np.asarray(obs[ok]), image_size) for ik, ok in zip(IMAGE_KEYS, CAMERA_OBS)}
    ep_meta = _attr_json(group.attrs, "ep_meta")
    instruction = ep_meta.get("lang") or task_name
    return Episode(images=images, state=np.concatenate(parts, 1), action=actions, instruction=instruction,
                   task_name=task_name, info={"source_demo": name})


def convert_robocasa_hdf5(src: str | Path, out: str | Path, image_size: int = IMAGE_SIZE, task: str | None = None,
                          max_episodes: int | None = None, progress=None) -> int:
    """Convert every demo of `src` into a dataset at `out` (resumable: converted demos are skipped); returns episodes."""
    src = Path(src)
    if not src.is_file():
        raise ValueError(f"{src}: no such HDF5 file")
    with h5py.File(src, "r") as f:
        if "data" not in f:
            raise ValueError(f"{src}: missing group 'data'; expected robomimic layout data/demo_N/...")
        env_args = _attr_json(f["data"].attrs, "env_args")
        task_name = task or env_args.get("env_name") or src.stem
        names = _demo_order(f["data"].keys())[:max_episodes]
        with DatasetWriter(out, ObservationSpec(image_size=image_size), source=f"robocasa-hdf5:{src.name}") as writer:
            done = {e.get("source_demo") for e in read_sidecar(Path(out))["episodes"].values()}
            for name in names:
                if name not in done:
                    writer.add_episode(read_demo(f, name, image_size, task_name))
                if progress:
                    progress(name)
            return writer.num_episodes
