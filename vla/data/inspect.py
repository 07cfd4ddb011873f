"""Look at a dataset: counts, tasks, per-dimension statistics, a contact sheet of frames and a short video."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pandas as pd

from contract.embodiments import ACTION_KEY, IMAGE_KEYS, STATE_KEY
from vla.data.schema import read_sidecar
from vla.data.stats import load_norm_stats


def _frame_images(ds, idx: int) -> list[np.ndarray]:
    item = ds[idx]
    return [(item[k] * 255).round().byte().permute(1, 2, 0).numpy() for k in IMAGE_KEYS]


def summary(root: str | Path) -> str:
    """Episodes, frames, tasks and a per-dimension statistics table as text."""
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    stats = load_norm_stats(root, info["total_frames"])
    side = info["features"][IMAGE_KEYS[0]]["shape"]
    sidecar = read_sidecar(root)
    lines = [f"{root}: {info['total_episodes']} episodes, {info['total_frames']} frames, fps {info['fps']}, "
             f"images {tuple(side)}, robot {info.get('robot_type')}",
             f"size on disk: {sum(p.stat().st_size for p in root.rglob('*') if p.is_file()) / 2**20:.1f} MiB"]
    names = Counter(e["task_name"] for e in sidecar["episodes"].values())
    if names:
        lines.append("tasks: " + ", ".join(f"{t} ({n})" for t, n in names.items()))
    if sidecar.get("rejected"):
        lines.append(f"rejected attempts: {len(sidecar['rejected'])}")
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    lines.append("instructions: " + "; ".join(map(str, tasks.index)))
    for key in (STATE_KEY, ACTION_KEY):
        dim_names = info["features"][key].get("names") or [str(i) for i in range(len(stats[key]["min"]))]
        lines.append(f"\n{key} ({stats[key]['count']} frames)")
        lines.append(f"{'dim':<24}" + "".join(f"{s:>10}" for s in ("min", "max", "mean", "std", "q01", "q99")))
        for i, name in enumerate(dim_names):
            lines.append(f"{name:<24}" + "".join(f"{stats[key][s][i]:>10.4f}"
                                                 for s in ("min", "max", "mean", "std", "q01", "q99")))
    return "\n".join(lines)


def contact_sheet(ds, path: Path, columns: int = 6) -> Path:
    """PNG grid: one row per camera, `columns` frames spread over the whole dataset."""
    picks = np.linspace(0, len(ds) - 1, columns).round().astype(int)
    per_frame = [_frame_images(ds, int(i)) for i in picks]
    rows = [np.concatenate([views[c] for views in per_frame], axis=1) for c in range(len(IMAGE_KEYS))]
    imageio.imwrite(path, np.concatenate(rows, axis=0))
    return path


def episode_video(ds, path: Path, episode: int = 0, fps: int = 20) -> Path:
    """MP4 of one episode with the three cameras side by side."""
    ep = ds.meta.episodes[episode]
    start, stop = ep["dataset_from_index"], ep["dataset_to_index"]
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=16, quality=7) as out:
        for idx in range(start, stop):
            out.append_data(np.concatenate(_frame_images(ds, idx), axis=1))
    return path
