"""Convert a GR00T-style LeRobot folder (single_panda_gripper.<Task>: parquet + mp4, meta/modality.json) into ours."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from contract.embodiments import IMAGE_KEYS, IMAGE_SIZE
from contract.spec import ObservationSpec
from vla.data.convert_robocasa import resize_frames
from vla.data.schema import read_sidecar
from vla.data.writer import DatasetWriter, Episode

# Our state parts <- GR00T modality.json state sub-keys (RoboCasa PandaOmron).
STATE_FROM = (
    (("base_pos",), "base_position"),
    (("base_quat",), "base_rotation"),
    (("eef_pos_rel_base",), "end_effector_position_relative"),
    (("eef_quat_rel_base",), "end_effector_rotation_relative"),
    (("gripper_qpos",), "gripper_qpos"),
)
# Our action parts <- GR00T action sub-keys; base_motion holds base velocity (3) then torso (1).
ACTION_FROM = (
    (("eef_delta_pos",), "end_effector_position"),
    (("eef_delta_rot",), "end_effector_rotation"),
    (("gripper",), "gripper_close"),
    (("base_vel", "torso"), "base_motion"),
    (("base_mode",), "control_mode"),
)
# Which GR00T video key is which of our cameras: first name fragment that matches.
CAMERA_HINTS = {"left": ("agentview_left", "left"), "right": ("agentview_right", "right"),
                "wrist": ("eye_in_hand", "wrist", "hand")}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _remap(vector: np.ndarray, modality: dict, table, layout, what: str) -> np.ndarray:
    """Reorder GR00T's concatenated vector into our layout by sub-key name."""
    width = layout[-1].stop
    out = np.zeros((len(vector), width), dtype=np.float32)
    by_name = {p.name: p for p in layout}
    for ours, theirs in table:
        if theirs not in modality:
            raise ValueError(f"meta/modality.json {what}: missing {theirs!r}; have {sorted(modality)}")
        span = modality[theirs]
        src = vector[:, span["start"]:span["end"]]
        start, stop = by_name[ours[0]].start, by_name[ours[-1]].stop
        if src.shape[1] != stop - start:
            raise ValueError(f"{what}.{theirs} has width {src.shape[1]}, expected {stop - start} for {ours}")
        out[:, start:stop] = src
    return out


def _to_pm1(values: np.ndarray) -> np.ndarray:
    """Binary channels stored as {0, 1} become our {-1, +1}; already-signed data is kept."""
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        return np.where(values > 0.5, 1.0, -1.0).astype(np.float32)
    return values


def match_cameras(keys, where: str) -> list[str]:
    """The source's image keys in our camera order (left, right, wrist), by name fragment."""
    keys, chosen = list(keys), []
    for cam, hints in CAMERA_HINTS.items():
        match = next((k for h in hints for k in keys if h in k and k not in chosen), None)
        if match is None:
            raise ValueError(f"{where}: no key for camera {cam!r} (looked for {hints}); have {sorted(keys)}")
        chosen.append(match)
    return chosen


def _camera_keys(video_modality: dict) -> list[str]:
    """GR00T's original video keys in our camera order (left, right, wrist)."""
    originals = [spec.get("original_key", f"observation.images.{name}") for name, spec in video_modality.items()]
    return match_cameras(originals, "meta/modality.json video")


def _task_name(src: Path) -> str:
    """GR00T names its folders single_panda_gripper.<Task>."""
    return src.name.split(".", 1)[1] if src.name.startswith("single_panda_gripper.") else src.name


def to_pm1(action: np.ndarray, robot) -> np.ndarray:
    """The binary parts (gripper, base mode) of an (N, 12) action in our -1/+1 convention (GR00T stores 0/1)."""
    action = action.copy()
    for part in ("gripper", "base_mode"):
        sl = robot.action_slice(part)
        action[:, sl.start:sl.stop] = _to_pm1(action[:, sl.start:sl.stop])
    return action


def decode_video(path: Path) -> np.ndarray:
    """All frames of an mp4 as (T, H, W, 3) uint8 (PyAV)."""
    if not path.exists():
        raise ValueError(f"missing video {path}")
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def convert_groot_lerobot(src: str | Path, out: str | Path, image_size: int = IMAGE_SIZE, task: str | None = None,
                          max_episodes: int | None = None, progress=None) -> int:
    """Convert a GR00T LeRobot folder, v2.x (modality.json, episodes.jsonl) or LeRobot v3.0 (feature names), into a
    dataset at `out` (resumable); returns the episode count."""
    src = Path(src)
    if (src / "meta/info.json").is_file() and not (src / "meta/modality.json").exists():
        from vla.data.convert_lerobot_v3 import convert_lerobot_v3  # lazy: it imports this module

        return convert_lerobot_v3(src, out, image_size=image_size, task=task or _task_name(src),
                                  max_episodes=max_episodes, progress=progress)
    for rel in ("meta/info.json", "meta/modality.json", "meta/episodes.jsonl", "meta/tasks.jsonl"):
        if not (src / rel).exists():
            raise ValueError(f"{src}: missing {rel}; expected a GR00T LeRobot folder")
    info = json.loads((src / "meta/info.json").read_text())
    if info.get("fps", 20) != 20:
        raise ValueError(f"{src}: fps is {info.get('fps')}, expected 20")
    modality = json.loads((src / "meta/modality.json").read_text())
    for part in ("state", "action", "video"):
        if part not in modality:
            raise ValueError(f"{src}/meta/modality.json: missing {part!r}")
    tasks = {t["task_index"]: t["task"] for t in _jsonl(src / "meta/tasks.jsonl")}
    episodes = sorted(_jsonl(src / "meta/episodes.jsonl"), key=lambda e: e["episode_index"])[:max_episodes]
    cameras = _camera_keys(modality["video"])
    task_name = task or _task_name(src)
    chunks = info.get("chunks_size", 1000)
    data_tpl = info.get("data_path", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet")
    video_tpl = info.get("video_path", "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
    annotation = next((f"annotation.{k}" for k in modality.get("annotation", {})), None)
    robot = ObservationSpec().robot

    with DatasetWriter(out, ObservationSpec(image_size=image_size), source=f"groot-lerobot:{src.name}") as writer:
        done = {e.get("source_episode") for e in read_sidecar(Path(out))["episodes"].values()}
        for ep in episodes:
            idx = ep["episode_index"]
            if idx in done:
                continue
            fmt = {"episode_chunk": idx // chunks, "episode_index": idx}
            table = pq.read_table(src / data_tpl.format(**fmt))
            for col in ("observation.state", "action"):
                if col not in table.column_names:
                    raise ValueError(f"{src / data_tpl.format(**fmt)}: missing column {col!r}")
            state_raw = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
            action_raw = np.stack(table.column("action").to_numpy(zero_copy_only=False)).astype(np.float32)
            state = _remap(state_raw, modality["state"], STATE_FROM, robot.state_layout, "state")
            action = to_pm1(_remap(action_raw, modality["action"], ACTION_FROM, robot.action_layout, "action"), robot)
            if annotation and annotation in table.column_names:
                instruction = tasks[int(table.column(annotation)[0].as_py())]
            else:
                instruction = ep["tasks"][0] if ep.get("tasks") else tasks[int(table.column("task_index")[0].as_py())]
            images = {}
            for ours, theirs in zip(IMAGE_KEYS, cameras):
                frames = decode_video(src / video_tpl.format(video_key=theirs, **fmt))
                if len(frames) < len(action):
                    raise ValueError(f"{theirs} episode {idx}: {len(frames)} video frames for {len(action)} rows")
                images[ours] = resize_frames(frames[: len(action)], image_size)
            writer.add_episode(Episode(images=images, state=state, action=action, instruction=instruction,
                                       task_name=task_name, info={"source_episode": idx}))
            if progress:
                progress(idx)
        return writer.num_episodes
