"""Backbone-feature cache: with a frozen backbone and un-augmented images, every sample's features are the same
each epoch, so encode them once, store them on disk, and train the head from the store.

Layout of one cache (a directory named by its key, written to a temp name then renamed):
  tokens.bin   every sample's valid tokens back to back, (total_tokens, D), in the features' own dtype
  image_mask.npy  (total_tokens,) bool; offsets.npy (N + 1,) int64 token offsets per sample
  state.npy (N, state_dim), action.npy (N, H, action_dim), action_is_pad.npy (N, H)
  episode_index.npy, frame_index.npy (N,) int64: which frame each sample is (for the canonical training order)
  meta.json    shapes, dtype and the key's inputs; written last
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vla.data.dataset import TrainingDataset, collate

META_FILE = "meta.json"
_DTYPES = {"float32": (torch.float32, np.float32), "bfloat16": (torch.bfloat16, np.int16),
           "float16": (torch.float16, np.float16)}
# Per-sample arrays kept as the loader gives them: batch key (also the file's stem) -> stored dtype.
_PER_SAMPLE = {"state": np.float32, "action": np.float32, "action_is_pad": bool, "episode_index": np.int64,
               "frame_index": np.int64}


def dataset_fingerprint(root: str | Path) -> str:
    """Hash of a dataset's metadata and its data files' names, sizes and modification times."""
    root = Path(root).resolve()
    h = hashlib.sha256(str(root).encode())
    for path in sorted(list(root.glob("meta/**/*")) + list(root.glob("data/**/*")) + list(root.glob("images/**/*"))):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cache_key(parts: dict) -> str:
    """Stable short hash of the JSON-able inputs that determine the cached features."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def is_complete(path: str | Path) -> bool:
    """A cache directory whose meta.json (written last) exists."""
    return (Path(path) / META_FILE).is_file()


@torch.no_grad()
def build_cache(path: str | Path, encode, loader, num_samples: int, key_parts: dict, progress=None) -> Path:
    """Encode every sample from `loader` (un-augmented, in index order) with `encode(images, instructions)`.

    `encode` returns a BackboneOutput-like object (features, attention_mask, image_mask). The cache appears at
    `path` only when complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        offsets, image_masks = [0], []
        per_sample = {key: [] for key in _PER_SAMPLE}
        dtype_name, width = None, None
        with open(tmp / "tokens.bin", "wb") as tokens:
            for batch in loader:
                out = encode(batch["images"], batch["instruction"])
                feats, valid = out.features.detach(), out.attention_mask.bool()
                if dtype_name is None:
                    dtype_name = str(feats.dtype).removeprefix("torch.")
                    if dtype_name not in _DTYPES:
                        raise ValueError(f"cannot cache features of dtype {feats.dtype}")
                    width = feats.shape[-1]
                for i in range(feats.shape[0]):
                    keep = valid[i]
                    sample = feats[i][keep].cpu().contiguous()
                    # bfloat16 has no numpy dtype: store its bits as int16 (lossless).
                    raw = sample.view(torch.int16) if dtype_name == "bfloat16" else sample
                    tokens.write(raw.numpy().tobytes())
                    image_masks.append(out.image_mask[i][keep].cpu().numpy())
                    offsets.append(offsets[-1] + int(keep.sum()))
                for key, arrays in per_sample.items():
                    # A copy: a tensor from a loader worker lives in shared memory held open by a file descriptor,
                    # so keeping the tensors themselves runs out of descriptors after a few thousand batches.
                    arrays.append(batch[key].numpy().copy())
                if progress is not None:
                    progress(feats.shape[0])
        if len(offsets) - 1 != num_samples:
            raise RuntimeError(f"feature cache saw {len(offsets) - 1} samples, expected {num_samples}")
        np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        np.save(tmp / "image_mask.npy", np.concatenate(image_masks).astype(bool))
        for key, dtype in _PER_SAMPLE.items():
            np.save(tmp / f"{key}.npy", np.concatenate(per_sample[key]).astype(dtype))
        meta = {"num_samples": num_samples, "total_tokens": offsets[-1], "width": width, "dtype": dtype_name,
                "key": key_parts}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


class CachedFeatures(torch.utils.data.Dataset):
    """Training samples from a feature cache: backbone tokens instead of images and instruction."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not is_complete(path):
            raise FileNotFoundError(f"no complete feature cache at {path}")
        self.meta = json.loads((path / META_FILE).read_text())
        torch_dtype, np_dtype = _DTYPES[self.meta["dtype"]]
        self.torch_dtype = torch_dtype
        self.tokens = np.memmap(path / "tokens.bin", dtype=np_dtype, mode="r",
                                shape=(self.meta["total_tokens"], self.meta["width"]))
        self.offsets = np.load(path / "offsets.npy")
        self.image_mask = np.load(path / "image_mask.npy")
        self.state = np.load(path / "state.npy")
        self.action = np.load(path / "action.npy")
        self.action_is_pad = np.load(path / "action_is_pad.npy")
        self.episode_index = np.load(path / "episode_index.npy")
        self.frame_index = np.load(path / "frame_index.npy")

    def __len__(self) -> int:
        return int(self.meta["num_samples"])

    def sample_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(episode_index, frame_index) of every sample, in index order."""
        return self.episode_index, self.frame_index

    def __getitem__(self, idx: int) -> dict:
        lo, hi = int(self.offsets[idx]), int(self.offsets[idx + 1])
        feats = torch.from_numpy(np.array(self.tokens[lo:hi]))
        if self.torch_dtype == torch.bfloat16:
            feats = feats.view(torch.bfloat16)
        return {
            "backbone_features": feats,
            "image_mask": torch.from_numpy(self.image_mask[lo:hi].copy()),
            "state": torch.from_numpy(self.state[idx]),
            "action": torch.from_numpy(self.action[idx]),
            "action_is_pad": torch.from_numpy(self.action_is_pad[idx]),
        }


def collate_cached(samples: list[dict]) -> dict:
    """Right-pad token sequences to the longest in the batch, with attention masks."""
    longest = max(s["backbone_features"].shape[0] for s in samples)
    width = samples[0]["backbone_features"].shape[1]
    dtype = samples[0]["backbone_features"].dtype
    feats = torch.zeros(len(samples), longest, width, dtype=dtype)
    mask = torch.zeros(len(samples), longest, dtype=torch.bool)
    image_mask = torch.zeros(len(samples), longest, dtype=torch.bool)
    for i, s in enumerate(samples):
        n = s["backbone_features"].shape[0]
        feats[i, :n], mask[i, :n], image_mask[i, :n] = s["backbone_features"], True, s["image_mask"]
    return {
        "backbone_features": feats,
        "backbone_attention_mask": mask,
        "backbone_image_mask": image_mask,
        "state": torch.stack([s["state"] for s in samples]),
        "action": torch.stack([s["action"] for s in samples]),
        "action_is_pad": torch.stack([s["action_is_pad"] for s in samples]),
    }


def ensure_feature_cache(*, dataset_root: Path, data_cfg, spec, model, normalizer, cache_dir: str | Path,
                         backbone_fp: str, batch_size: int, num_workers: int, accelerator) -> CachedFeatures:
    """Open the cache for (dataset, backbone weights, image transform), building it first on the main process."""
    augment = data_cfg.augment
    key_parts = {
        "layout": 2,  # 2: with episode_index.npy and frame_index.npy
        "dataset": dataset_fingerprint(dataset_root),
        "backbone": backbone_fp,
        "backbone_config": model.config.backbone.__dict__ if hasattr(model, "config") else None,
        "transform": {**augment.__dict__, "train": False},
        "embodiment": data_cfg.embodiment,
        "tasks": data_cfg.tasks,
        "episodes_per_task": data_cfg.episodes_per_task,
        "action_horizon": spec.action_horizon,
        "normalizer": normalizer.to_dict(),
    }
    path = Path(cache_dir) / cache_key(key_parts)
    if accelerator.is_main_process and not is_complete(path):
        # Un-augmented (centre-crop) images: what the policy sees at evaluation, and the same every epoch.
        dataset = TrainingDataset(dataclasses.replace(data_cfg, root=str(dataset_root)), normalizer, train=False,
                                  spec=spec)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                                             num_workers=num_workers)
        device = accelerator.device
        encoder = model.to(device)
        # Forked RNG: a run that builds the cache must train exactly like one that finds it (iterating a loader
        # draws from the global generator).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                tqdm(total=len(dataset), desc="caching backbone features", unit="sample", mininterval=1.0) as bar:
            build_cache(path, lambda images, text: encoder.encode_observations(images.to(device), text), loader,
                        len(dataset), key_parts, progress=bar.update)
    accelerator.wait_for_everyone()
    return CachedFeatures(path)
