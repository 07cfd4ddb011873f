"""The trainer's view of vla.data.TrainingDataset, made fast enough for CPU training.

lerobot 0.4.4 answers the 16-step action query with `hf_dataset[key][rows]`; under datasets 4.x that raises and it
falls back to `hf_dataset[rows][key]`, which decodes every image column of all 16 future rows (51 PNG decodes per
sample instead of 3). Answering the query from an in-memory copy of the numeric columns gives identical samples
(tests/test_train_data.py checks) at a fraction of the cost. Belongs in vla/data once the data owner takes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch


def training_dataset(data_cfg, root: str | Path, normalizer, train: bool = True):
    """TrainingDataset over `root` whose action-chunk query reads numeric columns from memory."""
    from vla.data.dataset import TrainingDataset

    dataset = TrainingDataset(dataclasses.replace(data_cfg, root=str(root)), normalizer, train=train)
    lerobot = dataset.lerobot
    lerobot._ensure_hf_dataset_loaded()
    delta_keys = list((lerobot.delta_indices or {}).keys())
    if not delta_keys:
        return dataset
    numeric = lerobot.hf_dataset.select_columns(delta_keys).with_format("numpy")
    columns = {key: torch.from_numpy(np.asarray(numeric[key], dtype=np.float32)) for key in delta_keys}

    def query(query_indices: dict[str, list[int]]) -> dict:
        out = {}
        for key, rows in query_indices.items():
            if key in lerobot.meta.video_keys:
                continue
            if lerobot._absolute_to_relative_idx is not None:
                rows = [lerobot._absolute_to_relative_idx[i] for i in rows]
            out[key] = columns[key][rows]
        return out

    lerobot._query_hf_dataset = query
    return dataset
