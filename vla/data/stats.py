"""Exact normalization statistics (min, max, mean, std, q01, q99) for state and action, stored in meta/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.embodiments import ACTION_KEY, STATE_KEY
from contract.files import atomic_write_json
from vla.data.schema import NORM_STATS_PATH

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


def data_files(root: Path) -> list[Path]:
    """The dataset's data/*/*.parquet files in order; a one-line error when there are none."""
    paths = sorted((Path(root) / "data").glob("*/*.parquet"))
    if not paths:
        raise ValueError(f"{root}: no data files under data/; is this a LeRobot v3.0 dataset?")
    return paths


def read_parquet(path: Path, columns=None) -> pa.Table:
    """A parquet table; a file cut short or not parquet is a one-line ValueError naming it."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        text = str(err).strip()
        reason = "no parquet footer" if "magic bytes" in text else (text.splitlines() or [type(err).__name__])[0][:120]
        raise ValueError(f"{path}: unreadable parquet file, cut short or corrupt ({reason}); "
                         "restore it from a good copy or rewrite the dataset") from None


def numeric_table_columns(table: pa.Table, keys=NUMERIC_KEYS, orders: dict | None = None) -> dict[str, np.ndarray]:
    """Vector columns of one table as (N, D) float32 (in the embodiment's order when `orders` maps them),
    index columns as 1-D arrays."""
    out = {}
    for key in table.column_names:
        column = table.column(key).combine_chunks()
        if key in keys:
            values = np.asarray(column.flatten(), dtype=np.float32).reshape(len(column), -1)
            out[key] = orders[key].apply(values) if orders and key in orders else values
        else:
            out[key] = np.asarray(column)
    return out


def read_numeric_columns(root: Path, keys=NUMERIC_KEYS, orders: dict | None = None) -> dict[str, np.ndarray]:
    """State/action/episode_index columns of every data file, without touching the image columns.

    `orders` ({key: ColumnOrder}, vla.data.names) puts state and action into the embodiment's order.
    """
    cols = list(keys) + ["episode_index", "frame_index"]
    parts = [numeric_table_columns(read_parquet(p, cols), keys, orders) for p in data_files(root)]
    return {key: np.concatenate([part[key] for part in parts]) for key in cols}


def dataset_stats(root: Path, orders: dict | None = None) -> dict:
    """Statistics of state and action over every frame of the dataset on disk."""
    cols = read_numeric_columns(root, orders=orders)
    return {key: compute_stats(cols[key]) for key in NUMERIC_KEYS}


def write_norm_stats(root: Path, stats: dict) -> None:
    """Store statistics as meta/norm_stats.json (atomically)."""
    atomic_write_json(Path(root) / NORM_STATS_PATH, stats)


def load_norm_stats(root: Path, expected_frames: int | None = None, orders: dict | None = None) -> dict:
    """Statistics of a dataset without writing into it: its meta/norm_stats.json when that is ours and current,
    else computed in memory (inputs stay read-only; the run keeps what it used in each checkpoint).

    The file is trusted only when the columns are stored in the embodiment's order, since it was computed by
    position; `expected_frames` rejects a stale one.
    """
    path = Path(root) / NORM_STATS_PATH
    in_our_order = not orders or all(o.index is None for o in orders.values())
    stats = None
    if path.exists() and in_our_order:
        try:
            stats = json.loads(path.read_text())
        except json.JSONDecodeError:
            stats = None
    fresh = isinstance(stats, dict) and all(k in stats for k in NUMERIC_KEYS)
    if fresh and expected_frames is not None:
        fresh = all(stats[k].get("count") == expected_frames for k in NUMERIC_KEYS)
    return stats if fresh else dataset_stats(root, orders)
