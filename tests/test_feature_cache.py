"""The feature cache: what it stores, and that building it does not hold one file descriptor per batch."""

import resource
import types
from pathlib import Path

import numpy as np
import torch

from vla.train.feature_cache import CachedFeatures, build_cache

NUM_SAMPLES = 400
WIDTH, TOKENS, HORIZON = 4, 3, 2


class _Samples(torch.utils.data.Dataset):
    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, i):
        return {"images": torch.full((1, 2, 2), float(i)), "instruction": f"task {i % 3}",
                "state": torch.full((2,), float(i)), "action": torch.full((HORIZON, 2), float(i)),
                "action_is_pad": torch.zeros(HORIZON, dtype=torch.bool),
                "episode_index": torch.tensor(i // 10), "frame_index": torch.tensor(i % 10)}


def _encode(images, instructions):
    n = images.shape[0]
    features = images.reshape(n, 1, -1)[:, :, :1].expand(n, TOKENS, WIDTH).float()
    return types.SimpleNamespace(features=features, attention_mask=torch.ones(n, TOKENS, dtype=torch.bool),
                                 image_mask=torch.ones(n, TOKENS, dtype=torch.bool))


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_building_the_cache_from_a_worker_loader_does_not_keep_a_descriptor_per_batch(tmp_path):
    # 200 batches from a loader worker: keeping each batch's shared-memory tensors would need ~1000 descriptors
    # (the 98,607-sample cache of 200 demos per task ran out of 20,000 this way); the limit allows 150 more.
    loader = torch.utils.data.DataLoader(_Samples(), batch_size=2, num_workers=1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_open_descriptors() + 150, hard))
    try:
        path = build_cache(tmp_path / "cache", _encode, loader, NUM_SAMPLES, {"test": 1})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    cached = CachedFeatures(path)
    assert len(cached) == NUM_SAMPLES
    sample = cached[123]
    assert torch.equal(sample["state"], torch.full((2,), 123.0))
    assert torch.equal(sample["action"], torch.full((HORIZON, 2), 123.0))
    assert torch.equal(sample["backbone_features"], torch.full((TOKENS, WIDTH), 123.0))
    episodes, frames = cached.sample_keys()
    assert np.array_equal(episodes, np.arange(NUM_SAMPLES) // 10)
    assert np.array_equal(frames, np.arange(NUM_SAMPLES) % 10)
