"""Exact normalization statistics (min, max, mean, std, q01, q99) for state and action, stored in meta/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vla.data.schema import NORM_STATS_PATH
from vla.files import atomic_write_json
from vla.embodiments import ACTION_KEY, STATE_KEY

STAT_NAMES = ("min", "max", "mean", "std", "q01", "q99")
NUMERIC_KEYS = (STATE_KEY, ACTION_KEY)


def compute_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension statistics of an (N, D) array, as JSON-ready lists."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"statistics need a non-empty (N, D) array, got shape {values.shape}")
    q01, q99 = np.quantile(values, [0.01, 0.99], axis=0)
    out = {
        "min": values.min(0),
        "max": values.max(0),
        "mean": values.mean(0),
        "std": values.std(0),
        "q01": q01,
        "q99": q99,
    }
    stats = {k: v.astype(np.float64).tolist() for k, v in out.items()}
    stats["count"] = int(len(values))
    return stats


def read_numeric_columns(root: Path, keys=NUMERIC_KEYS) -> dict[str, np.ndarray]:
    """State/action/episode_index columns of every data file, without touching the image columns."""
    paths = sorted((Path(root) / "data").glob("*/*.parquet"))
    if not paths:
        raise ValueError(f"{root}: no data files under data/; is this a LeRobot v3.0 dataset?")
    cols = list(keys) + ["episode_index", "frame_index"]
    parts = [pq.read_table(p, columns=cols) for p in paths]
    out = {}
    for key in cols:
        chunks = [t.column(key).combine_chunks() for t in parts]
        if key in keys:
            out[key] = np.concatenate([np.asarray(c.flatten(), dtype=np.float32).reshape(len(c), -1) for c in chunks])
        else:
            out[key] = np.concatenate([np.asarray(c) for c in chunks])
    return out


def dataset_stats(root: Path) -> dict:
    """Statistics of state and action over every frame of the dataset on disk."""
    cols = read_numeric_columns(root)
    return {key: compute_stats(cols[key]) for key in NUMERIC_KEYS}


def write_norm_stats(root: Path, stats: dict) -> None:
    """Store statistics as meta/norm_stats.json (atomically)."""
    atomic_write_json(Path(root) / NORM_STATS_PATH, stats)


def load_norm_stats(root: Path, expected_frames: int | None = None) -> dict:
    """Read meta/norm_stats.json, recomputing it when missing or stale (frame count differs)."""
    path = Path(root) / NORM_STATS_PATH
    stats = None
    if path.exists():
        try:
            stats = json.loads(path.read_text())
        except json.JSONDecodeError:
            stats = None
    fresh = stats is not None and all(k in stats for k in NUMERIC_KEYS)
    if fresh and expected_frames is not None:
        fresh = all(stats[k].get("count") == expected_frames for k in NUMERIC_KEYS)
    if not fresh:
        stats = dataset_stats(root)
        write_norm_stats(root, stats)
    return stats
