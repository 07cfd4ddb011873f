"""The trainer's fast dataset view yields exactly the samples of vla.data.TrainingDataset."""

import torch

from vla.data.dataset import DataConfig, TrainingDataset
from vla.data.synthetic import write_synthetic_dataset
from vla.train.data import training_dataset


def test_fast_chunk_query_gives_identical_samples(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", num_episodes=2, length=20, image_size=32)
    cfg = DataConfig(root=str(root))
    slow = TrainingDataset(cfg, train=False)
    fast = training_dataset(cfg, root, slow.normalizer, train=False)
    for i in (0, 7, 19, 20, 33, len(slow) - 1):  # episode starts, ends (padded chunks) and middles
        a, b = slow[i], fast[i]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], (i, key)
    assert fast[len(slow) - 1]["action_is_pad"].sum() == 15
