"""Data order and learning-rate schedule: pure functions of the step, so a resumed run sees the same batches."""

from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch

from vla.train.sampling import SeededSamples, StepBatchSampler, balanced_epoch
from vla.train.schedule import lr_factor


def test_resuming_at_step_k_yields_the_same_batches():
    full = list(islice(iter(StepBatchSampler(50, 4, seed=3)), 30))
    resumed = list(islice(iter(StepBatchSampler(50, 4, seed=3, start_step=17)), 13))
    assert resumed == full[17:]


def test_every_epoch_is_a_permutation_and_ranks_split_each_global_batch():
    ranks = [StepBatchSampler(50, 4, seed=0, world_size=2, rank=r) for r in range(2)]
    assert ranks[0].steps_per_epoch == 6  # 50 // 8: the ragged tail is dropped
    epoch = [i for step in range(6) for r in ranks for i, _ in r.batch_at(step)]
    assert len(set(epoch)) == 48
    assert [i for i, _ in ranks[0].batch_at(6)] != [i for i, _ in ranks[0].batch_at(0)]  # reshuffled next epoch


def test_too_small_a_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StepBatchSampler(3, 4, seed=0)


GROUPS = np.array(["short"] * 10 + ["middle"] * 30 + ["long"] * 60)


def test_a_balanced_epoch_gives_every_group_the_same_share():
    order = balanced_epoch(GROUPS, seed=0, epoch=0)
    assert len(order) == 99 and Counter(GROUPS[order]) == {"short": 33, "middle": 33, "long": 33}
    # A small group repeats whole shuffled passes (each sample 3 or 4 times); a large one never repeats a sample.
    assert set(Counter(order[GROUPS[order] == "short"]).values()) == {3, 4}
    assert len(set(order[GROUPS[order] == "long"])) == 33
    assert not np.array_equal(order, balanced_epoch(GROUPS, seed=0, epoch=1))


def test_a_balanced_sampler_resumes_at_step_k_with_the_same_batches():
    full = list(islice(iter(StepBatchSampler(100, 4, seed=3, groups=GROUPS)), 60))
    resumed = list(islice(iter(StepBatchSampler(100, 4, seed=3, start_step=37, groups=GROUPS)), 23))
    assert resumed == full[37:]
    drawn = Counter(GROUPS[i] for batch in full[:24] for i, _ in batch)  # one epoch: 24 steps x 4, its tail of 3 left
    assert set(drawn) == {"short", "middle", "long"} and all(30 <= n <= 33 for n in drawn.values())
    with pytest.raises(ValueError, match="groups has 99 labels for 100 samples"):
        StepBatchSampler(100, 4, seed=0, groups=GROUPS[:99])


def test_augmentation_seed_is_per_sample_and_leaves_the_global_rng_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.rand(())

    data = SeededSamples(Noisy())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert data[(1, 42)] == data[(7, 42)] and data[(1, 42)] != data[(1, 43)]
    assert torch.equal(torch.get_rng_state(), before)


def test_warmup_then_cosine_to_zero():
    factors = [lr_factor(s, 100, 0.05) for s in range(100)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factors[5] == pytest.approx(1.0) and factors[-1] < 0.001
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
