"""Open-loop action error: a checkpoint's predicted chunks against the demonstrated ones on dataset frames.

The cheap rung of the diagnosis ladder: no simulator, the same frames for every checkpoint. Errors are in the
normalized action space the model is trained in (min-max parts in [-1, 1], binary parts -1/+1), per action part,
over the real (unpadded) steps of each 16-step chunk. By default only episodes the checkpoint did not train on
are used (held-out demos), told apart by their simulator seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.embodiments import ACTION_KEY, IMAGE_KEYS, STATE_KEY
from contract.files import atomic_write_json
from vla.data.dataset import open_dataset
from vla.data.schema import read_sidecar


@dataclass
class OpenLoopError:
    """Mean squared error per action part and overall, with how many frames and episodes were scored."""

    mse: float
    per_part: dict[str, float]
    frames: int
    episodes: int

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.4f}" for k, v in self.per_part.items())
        return f"mse {self.mse:.4f} over {self.frames} frames of {self.episodes} episodes ({parts})"


def held_out_episodes(dataset_root: str | Path, trained_seeds: dict[str, list[int]]) -> list[int]:
    """Episode indices of a dataset whose (task, seed) the checkpoint did not train on."""
    used = {(task, seed) for task, seeds in trained_seeds.items() for seed in seeds}
    episodes = read_sidecar(Path(dataset_root)).get("episodes", {})
    return sorted(int(k) for k, meta in episodes.items() if (meta.get("task_name"), meta.get("seed")) not in used)


@torch.no_grad()
def open_loop_error(policy, dataset_root: str | Path, episodes: list[int] | None = None, stride: int = 8,
                    batch_size: int = 16, max_frames: int = 0) -> OpenLoopError:
    """Score `policy` (a VLAPolicy) on every `stride`-th frame of `episodes` (None: the held-out ones)."""
    if episodes is None:
        episodes = held_out_episodes(dataset_root, policy.demo_seeds)
    if not episodes:
        raise ValueError(f"{dataset_root}: no episodes to score (every one was trained on?)")
    spec = policy.spec  # the chunk the policy predicts, at its control rate
    data = open_dataset(dataset_root, delta_timestamps={ACTION_KEY: [i / spec.fps for i in range(spec.action_horizon)]})
    index = data.hf_dataset.select_columns(["episode_index", "frame_index"]).with_format("numpy")
    wanted = set(episodes)
    rows = [i for i, (ep, frame) in enumerate(zip(index["episode_index"], index["frame_index"]))
            if int(ep) in wanted and int(frame) % stride == 0]
    if max_frames:
        rows = rows[:: max(1, len(rows) // max_frames)][:max_frames]
    robot = policy.embodiment
    norm = policy.normalizer
    sq, counts = np.zeros(robot.action_dim), 0.0
    per_dim = np.zeros(robot.action_dim)
    for start in range(0, len(rows), batch_size):
        items = [data[i] for i in rows[start:start + batch_size]]
        obs = {f"observation.images.{key.rsplit('.', 1)[-1]}":
               np.stack([(it[key] * 255).round().byte().permute(1, 2, 0).numpy() for it in items]) for key in IMAGE_KEYS}
        obs[STATE_KEY] = np.stack([it[STATE_KEY].numpy() for it in items])
        obs["task"] = [it["task"] for it in items]
        predicted = policy.predict_action_chunk(obs)  # (B, H, A) raw
        truth = np.stack([it[ACTION_KEY].numpy() for it in items])
        real = ~np.stack([it[f"{ACTION_KEY}_is_pad"].numpy() for it in items])  # (B, H)
        diff = np.asarray(norm.normalize_action(predicted)) - np.asarray(norm.normalize_action(truth))
        per_dim += (diff ** 2 * real[..., None]).sum((0, 1))
        counts += real.sum()
    per_dim /= max(counts, 1)
    # Dims that never change in the demos (the unused base, the torso) normalize to a constant: leave them out.
    varying = norm.varying_action_dims()
    per_part = {p.name: float(per_dim[p.start:p.stop].mean()) for p in robot.action_layout
                if varying[p.start:p.stop].any()}
    return OpenLoopError(float(per_dim[varying].mean()), per_part, len(rows), len(episodes))


def save_error(result: OpenLoopError, path: str | Path) -> None:
    atomic_write_json(Path(path), {"mse": result.mse, "per_part": result.per_part, "frames": result.frames,
                                   "episodes": result.episodes})


def load_error(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
