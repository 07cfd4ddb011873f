"""Convert a LeRobot v3.0 dataset made by another tool (e.g. GR00T's RoboCasa copies: other camera keys, the action
in GR00T's order with its names, 0/1 binaries) into the project's dataset. State and action are mapped by feature
name (vla.data.names); cameras by key name; images from PNG columns or from the per-file MP4s."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from contract.embodiments import ACTION_KEY, FPS, IMAGE_KEYS, IMAGE_SIZE, STATE_KEY
from contract.spec import ObservationSpec
from vla.data.convert_groot import decode_video, match_cameras, to_pm1
from vla.data.convert_robocasa import resize_frames
from vla.data.names import column_orders
from vla.data.schema import read_sidecar
from vla.data.stats import numeric_table_columns, read_parquet
from vla.data.writer import DatasetWriter, Episode

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def _episode_rows(src: Path) -> list[dict]:
    """meta/episodes rows, by episode index."""
    paths = sorted((src / "meta" / "episodes").glob("*/*.parquet"))
    if not paths:
        raise ValueError(f"{src}: no meta/episodes/*/*.parquet; expected a LeRobot v3.0 dataset")
    return sorted((row for p in paths for row in read_parquet(p).to_pylist()), key=lambda r: r["episode_index"])


def _decode_png_column(column) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB")) for cell in column.to_pylist()])


class _Frames:
    """Frames of one camera for one episode, from a PNG column or an MP4 shared by several episodes (decoded once)."""

    def __init__(self, src: Path, info: dict):
        self.src, self.info, self._video = src, info, (None, None)

    def episode(self, key: str, row: dict, table, length: int) -> np.ndarray:
        if self.info["features"][key]["dtype"] == "image":
            return _decode_png_column(table.column(key))
        template = self.info.get("video_path") or VIDEO_PATH
        path = self.src / template.format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                          file_index=row[f"videos/{key}/file_index"])
        if self._video[0] != path:
            self._video = (path, decode_video(path))
        frames = self._video[1]
        start = int(round(row[f"videos/{key}/from_timestamp"] * self.info["fps"]))
        if start + length > len(frames):
            raise ValueError(f"{path}: {len(frames)} frames, episode {row['episode_index']} needs {start + length}")
        return frames[start:start + length]


def convert_lerobot_v3(src: str | Path, out: str | Path, image_size: int = IMAGE_SIZE, task: str | None = None,
                       max_episodes: int | None = None, progress=None) -> int:
    """Convert every episode of a LeRobot v3.0 dataset at `src` into `out` (resumable); returns the episode count."""
    src = Path(src)
    info_path = src / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise ValueError(f"{info_path}: codebase_version {info.get('codebase_version')!r}; expected a LeRobot v3.0 "
                         "dataset, or a GR00T v2.x folder with meta/modality.json")
    if info.get("fps") != FPS:
        raise ValueError(f"{info_path}: fps is {info.get('fps')}, expected {FPS}")
    spec = ObservationSpec(image_size=image_size)
    robot = spec.robot
    for key in (STATE_KEY, ACTION_KEY):
        if key not in info.get("features", {}):
            raise ValueError(f"{info_path}: missing key {key!r}")
    orders = column_orders(info, robot, where=str(info_path))
    visual = [k for k, ft in info["features"].items() if ft.get("dtype") in ("image", "video")]
    cameras = match_cameras(visual, str(info_path))
    frames = _Frames(src, info)
    rows = _episode_rows(src)[:max_episodes]
    tables: dict[Path, object] = {}
    with DatasetWriter(out, spec, source=f"lerobot-v3:{src.name}") as writer:
        done = {e.get("source_episode") for e in read_sidecar(Path(out))["episodes"].values()}
        for row in rows:
            index = row["episode_index"]
            if index in done:
                continue
            path = src / (info.get("data_path") or DATA_PATH).format(chunk_index=row["data/chunk_index"],
                                                                  file_index=row["data/file_index"])
            if path not in tables:
                tables = {path: read_parquet(path)}  # episodes are stored in file order: keep one file at a time
            table = tables[path]
            episode = table.filter(np.asarray(table.column("episode_index")) == index).sort_by("frame_index")
            numeric = numeric_table_columns(episode.select([STATE_KEY, ACTION_KEY]), orders=orders)
            length = len(episode)
            if length == 0:
                raise ValueError(f"{path}: no rows of episode {index}")
            images = {ours: resize_frames(frames.episode(theirs, row, episode, length), image_size)
                      for ours, theirs in zip(IMAGE_KEYS, cameras)}
            writer.add_episode(Episode(
                images=images, state=numeric[STATE_KEY], action=to_pm1(numeric[ACTION_KEY], robot),
                instruction=row["tasks"][0], task_name=task or src.name, info={"source_episode": index},
            ))
            if progress:
                progress(index)
        return writer.num_episodes
