"""Crash-safe episode writer for LeRobot v3.0 datasets (image mode) through lerobot's LeRobotDataset.

lerobot 0.4.4 keeps one parquet writer open across episodes for data/ and for meta/episodes/, and parquet files
are unreadable until their footer is written on close; info.json and stats.json are rewritten in place. A kill
mid-collection would therefore lose every episode of the open file. So each complete episode (buffered in
memory, never streamed) is written to its own data and metadata file and both are closed before the next one
starts; on reopening, `repair` drops what a kill left behind (unreadable files, files no episode row points to,
an episode without its data, temporary PNGs) and rebuilds info.json, tasks.parquet and the stats from the
surviving episodes.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from contract.embodiments import ACTION_KEY, IMAGE_KEYS, STATE_KEY
from contract.files import atomic_write_json
from contract.spec import ObservationSpec
from vla.data.repair import repair_dataset
from vla.data.schema import (
    DEFAULT_REPO_ID,
    SIDECAR_PATH,
    lerobot_features,
    read_sidecar,
)
from vla.data.stats import NUMERIC_KEYS, compute_stats, read_numeric_columns, write_norm_stats

# lerobot maps every saved episode through `datasets`, whose per-call bars would bury the collection progress bar.
datasets.disable_progress_bars()

log = logging.getLogger(__name__)

_OUR_DIRS = {"meta", "data", "images"}


@dataclass(frozen=True)
class Episode:
    """One complete demonstration held in memory: T frames of images, state and action, and its instruction."""

    images: dict  # image key -> (T, H, W, 3) uint8
    state: np.ndarray  # (T, state_dim) float32
    action: np.ndarray  # (T, action_dim) float32
    instruction: str
    task_name: str
    seed: int | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.action)


def check_episode(ep: Episode, spec: ObservationSpec) -> None:
    """Reject an episode that does not match the contract, naming the key."""
    robot, n = spec.robot, len(ep.action)
    if n == 0:
        raise ValueError("episode has no frames")
    side = spec.image_size
    for key in IMAGE_KEYS:
        if key not in ep.images:
            raise ValueError(f"episode lacks {key!r}; expected uint8 ({n}, {side}, {side}, 3)")
        img = ep.images[key]
        if img.dtype != np.uint8 or img.shape != (n, side, side, 3):
            raise ValueError(f"episode {key!r} is {img.dtype} {img.shape}, expected uint8 ({n}, {side}, {side}, 3)")
    for key, arr, dim in ((STATE_KEY, ep.state, robot.state_dim), (ACTION_KEY, ep.action, robot.action_dim)):
        if arr.shape != (n, dim):
            raise ValueError(f"episode {key!r} has shape {arr.shape}, expected ({n}, {dim})")
        if not np.isfinite(arr).all():
            raise ValueError(f"episode {key!r} contains NaN or inf")
    if not ep.instruction:
        raise ValueError("episode has an empty instruction")


class DatasetWriter:
    """Appends complete episodes to a LeRobot dataset at `root`, creating it or resuming (after repair)."""

    def __init__(self, root: str | Path, spec: ObservationSpec = ObservationSpec(), repo_id: str = DEFAULT_REPO_ID,
                 source: str = "collect"):
        # lazy, here and below: lerobot imports torch; this module, collect and the converters do not
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.root, self.spec, self.repo_id = Path(root), spec, repo_id
        kept = repair(self.root, spec) if (self.root / "meta").exists() else 0
        if kept == 0:
            _wipe_unfinished(self.root)
            self.ds = LeRobotDataset.create(
                repo_id, fps=spec.fps, features=lerobot_features(spec), root=self.root,
                robot_type=spec.embodiment, use_videos=False, metadata_buffer_size=1,
            )
            self.sidecar = {"embodiment": spec.embodiment, "source": source, "image_size": spec.image_size,
                            "episodes": {}, "rejected": []}
            atomic_write_json(self.root / SIDECAR_PATH, self.sidecar)
            self._numeric = {k: [] for k in NUMERIC_KEYS}
        else:
            self.ds = LeRobotDataset(repo_id, root=self.root)
            self.ds.meta.metadata_buffer_size = 1
            self.sidecar = read_sidecar(self.root)
            cols = read_numeric_columns(self.root)
            self._numeric = {k: [cols[k]] for k in NUMERIC_KEYS}

    @property
    def num_episodes(self) -> int:
        return self.ds.meta.total_episodes

    @property
    def num_frames(self) -> int:
        return self.ds.meta.total_frames

    def done_seeds(self) -> set[int]:
        """Seeds already written or rejected, so a resumed collection skips them."""
        seeds = {e["seed"] for e in self.sidecar["episodes"].values() if e.get("seed") is not None}
        return seeds | {r["seed"] for r in self.sidecar["rejected"]}

    def add_episode(self, ep: Episode) -> int:
        """Write one complete episode durably; returns its episode index."""
        check_episode(ep, self.spec)
        index = self.num_episodes
        # The sidecar row goes first: repair truncates rows past the last complete episode, never the reverse.
        self.sidecar["episodes"][str(index)] = {"task_name": ep.task_name, "seed": ep.seed, "length": len(ep),
                                                **ep.info}
        atomic_write_json(self.root / SIDECAR_PATH, self.sidecar)
        state = ep.state.astype(np.float32)
        action = ep.action.astype(np.float32)
        for t in range(len(ep)):
            frame = {key: ep.images[key][t] for key in IMAGE_KEYS}
            frame[STATE_KEY] = state[t]
            frame[ACTION_KEY] = action[t]
            frame["task"] = ep.instruction
            self.ds.add_frame(frame)
        with _thin_image_stats():
            self.ds.save_episode()
        self._seal()
        self._numeric[STATE_KEY].append(state)
        self._numeric[ACTION_KEY].append(action)
        write_norm_stats(self.root, self._stats())
        return index

    def reject(self, seed: int | None, task_name: str, reason: str) -> None:
        """Remember a failed attempt (not written) so a resumed run does not retry the same seed."""
        self.sidecar["rejected"].append({"seed": seed, "task_name": task_name, "reason": reason})
        atomic_write_json(self.root / SIDECAR_PATH, self.sidecar)

    def _seal(self) -> None:
        """Close this episode's data and metadata files so they are complete on disk; the next episode opens new ones."""
        ds = self.ds
        ds._close_writer()
        ds._writer_closed_for_reading = True  # makes lerobot start a new data file for the next episode
        meta = ds.meta
        meta._close_writer()
        if meta.latest_episode is not None:
            from lerobot.datasets.utils import update_chunk_file_indices

            # Point lerobot at the next episodes file instead of letting it reopen (and truncate) this one.
            chunk = meta.latest_episode["meta/episodes/chunk_index"][0]
            file = meta.latest_episode["meta/episodes/file_index"][0]
            chunk, file = update_chunk_file_indices(chunk, file, meta.chunks_size)
            meta.latest_episode["meta/episodes/chunk_index"] = [chunk]
            meta.latest_episode["meta/episodes/file_index"] = [file]

    def _stats(self) -> dict:
        return {k: compute_stats(np.concatenate(v)) for k, v in self._numeric.items()}

    def close(self) -> None:
        """Finish writing (files are already complete; this releases lerobot's handles)."""
        self.ds.finalize()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


IMAGE_STATS_FRAMES = 8


@contextmanager
def _thin_image_stats():
    """Make lerobot's per-episode image statistics look at a few frames instead of all of them.

    They are histogram quantiles over every pixel of every sampled frame and took ~70% of the write time
    (9 of 12.5 s for 100 frames at 256x256); nothing here normalizes images with them. The numbers keep
    lerobot's format, from IMAGE_STATS_FRAMES evenly spaced frames.
    """
    import lerobot.datasets.lerobot_dataset as lds

    original = lds.compute_episode_stats

    def thinned(episode_data, features, *args, **kwargs):
        data = dict(episode_data)
        for key, ft in features.items():
            if ft["dtype"] in ("image", "video") and key in data:
                step = max(1, len(data[key]) // IMAGE_STATS_FRAMES)
                data[key] = data[key][::step]
        return original(data, features, *args, **kwargs)

    lds.compute_episode_stats = thinned
    try:
        yield
    finally:
        lds.compute_episode_stats = original


def _wipe_unfinished(root: Path) -> None:
    """Remove a dataset folder that holds no complete episode (refusing folders that are not ours)."""
    if not root.exists():
        return
    entries = {p.name for p in root.iterdir()}
    if entries - _OUR_DIRS:
        raise ValueError(
            f"{root} exists and is not a dataset this writer made (has {sorted(entries - _OUR_DIRS)}); "
            "choose an empty or new --out"
        )
    shutil.rmtree(root)


def repair(root: Path, spec: ObservationSpec) -> int:
    """Bring a dataset left by a killed writer back to its last complete episode; returns how many remain."""
    return repair_dataset(Path(root), spec)
