"""Bring a LeRobot dataset left by a killed writer back to its last complete episode."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.files import atomic_write_json
from contract.spec import ObservationSpec
from vla.data.schema import SIDECAR_PATH, lerobot_features, read_sidecar
from vla.data.stats import dataset_stats, write_norm_stats

log = logging.getLogger(__name__)


def _read(path: Path) -> pa.Table | None:
    """A parquet table, or None when the file is unreadable (no footer: its writer was killed)."""
    try:
        return pq.read_table(path)
    except Exception:  # noqa: BLE001 - any reader error means the file never completed
        return None


def _readable_parquet(folder: Path, what: str) -> dict:
    """{path: table} of the complete parquet files under folder/*/; unfinished ones are removed."""
    tables = {}
    for path in sorted(folder.glob("*/*.parquet")):
        table = _read(path)
        if table is None:
            log.warning("removing unfinished %s file %s", what, path)
            path.unlink()
        else:
            tables[path] = table
    return tables


def _keep_rows(path: Path, table: pa.Table, keep: set[int]) -> None:
    """Rewrite `path` with only the rows of kept episodes, or delete it when none remain."""
    mask = np.isin(np.asarray(table.column("episode_index")), sorted(keep))
    if mask.all():
        return
    if not mask.any():
        path.unlink()
        return
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table.filter(pa.array(mask)), tmp)
    tmp.replace(path)


def repair_dataset(root: Path, spec: ObservationSpec) -> int:
    """Drop unfinished work; rebuild info.json, tasks, stats and the sidecar from complete episodes."""
    # lazy: lerobot imports torch; this module does not
    from lerobot.datasets.compute_stats import aggregate_stats
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION
    from lerobot.datasets.utils import DEFAULT_FEATURES, create_empty_dataset_info, unflatten_dict, write_stats

    shutil.rmtree(root / "images", ignore_errors=True)  # PNGs of the episode in progress

    # 1. Episode rows from every readable metadata file.
    meta_files = _readable_parquet(root / "meta" / "episodes", "metadata")
    rows = sorted((r for t in meta_files.values() for r in t.to_pylist()), key=lambda r: r["episode_index"])

    # 2. Data files that are complete, with the episodes they hold.
    data_files = _readable_parquet(root / "data", "data")
    frames_per_file = {}
    for path, table in data_files.items():
        eps, counts = np.unique(np.asarray(table.column("episode_index")), return_counts=True)
        rel = path.relative_to(root / "data")
        frames_per_file[rel] = dict(zip(eps.tolist(), counts.tolist()))

    # 3. The longest prefix of episodes 0..k-1 whose rows chain up and whose frames are all on disk.
    kept, expected_from = [], 0
    for i, row in enumerate(rows):
        rel = Path(f"chunk-{row['data/chunk_index']:03d}") / f"file-{row['data/file_index']:03d}.parquet"
        ok = (
            row["episode_index"] == i
            and row["dataset_from_index"] == expected_from
            and frames_per_file.get(rel, {}).get(i) == row["length"]
        )
        if not ok:
            break
        kept.append(row)
        expected_from = row["dataset_to_index"]
    keep = {r["episode_index"] for r in kept}
    if len(kept) < len(rows):
        log.warning("dropping %d unfinished episode(s) after episode %d", len(rows) - len(kept), len(kept) - 1)
    for path, table in {**meta_files, **data_files}.items():
        _keep_rows(path, table, keep)

    # 4. Rebuild the small metadata files from what survived.
    sidecar_path = root / SIDECAR_PATH
    sidecar = read_sidecar(root) if sidecar_path.exists() else {"episodes": {}, "rejected": []}
    sidecar["episodes"] = {k: v for k, v in sidecar["episodes"].items() if int(k) in keep}
    atomic_write_json(sidecar_path, sidecar)
    if not kept:
        return 0

    task_of_index = {}
    for path, table in data_files.items():
        if path.exists():
            t = pq.read_table(path, columns=["episode_index", "task_index"])
            ep_idx, task_idx = np.asarray(t.column("episode_index")), np.asarray(t.column("task_index"))
            for r in kept:
                sel = task_idx[ep_idx == r["episode_index"]]
                if len(sel):
                    task_of_index[int(sel[0])] = r["tasks"][0]
    order = sorted(task_of_index)
    tasks = pd.DataFrame({"task_index": order}, index=[task_of_index[i] for i in order])
    tmp = root / "meta" / "tasks.parquet.tmp"
    tasks.to_parquet(tmp)
    tmp.replace(root / "meta" / "tasks.parquet")

    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        info = create_empty_dataset_info(
            CODEBASE_VERSION, spec.fps, {**lerobot_features(spec), **DEFAULT_FEATURES}, False, spec.embodiment
        )
    info["total_episodes"] = len(kept)
    info["total_frames"] = int(kept[-1]["dataset_to_index"])
    info["total_tasks"] = len(tasks)
    info["splits"] = {"train": f"0:{len(kept)}"}
    atomic_write_json(root / "meta" / "info.json", info)

    episode_stats = []
    for r in kept:
        flat = {k[len("stats/"):]: np.asarray(v) for k, v in r.items() if k.startswith("stats/") and v is not None}
        episode_stats.append(unflatten_dict(flat))
    write_stats(aggregate_stats(episode_stats), root)
    write_norm_stats(root, dataset_stats(root))
    return len(kept)
