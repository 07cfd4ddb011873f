"""Data order that is a pure function of (seed, step): resuming at step k yields exactly the batches a run that was
never stopped would have seen, on any number of processes and data-loader workers."""

from __future__ import annotations

import random

import numpy as np
import torch


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


def balanced_epoch(groups: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """One epoch's sample order in which every group (task) fills the same share of the draws.

    The epoch keeps its usual length (all samples, rounded down to a multiple of the number of groups); a group
    with fewer samples than its share repeats them, each shuffled pass used whole before the next begins, so within
    a group the counts differ by at most one; a larger group gives up a different subset each epoch.
    """
    rng = np.random.default_rng([seed, epoch, 1])
    names = np.unique(groups)
    share = len(groups) // len(names)
    parts = []
    for name in names:
        members = np.flatnonzero(groups == name)
        passes = -(-share // len(members))
        parts.append(np.concatenate([rng.permutation(members) for _ in range(passes)])[:share])
    return rng.permutation(np.concatenate(parts))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's batches of `(sample index, augmentation seed)` from global step `start_step` onwards.

    Every global step takes `batch_size * world_size` samples from the epoch's permutation (the ragged tail of an
    epoch is dropped); rank r takes its contiguous share. The sampler never ends: the training loop counts steps.
    With `groups` (a label per sample, e.g. its task) each epoch draws every group equally often (balanced_epoch).
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_step: int = 0,
                 world_size: int = 1, rank: int = 0, groups: np.ndarray | None = None):
        self.global_batch = batch_size * world_size
        if groups is not None and len(groups) != num_samples:
            raise ValueError(f"groups has {len(groups)} labels for {num_samples} samples")
        epoch_len = num_samples if groups is None else num_samples - num_samples % len(np.unique(groups))
        if epoch_len < self.global_batch:
            raise ValueError(
                f"dataset has {num_samples} samples, fewer than one global batch ({batch_size} x {world_size}); "
                f"lower --batch-size or add data"
            )
        self.num_samples, self.batch_size, self.seed, self.groups = num_samples, batch_size, seed, groups
        self.start_step, self.world_size, self.rank = start_step, world_size, rank
        self.steps_per_epoch = epoch_len // self.global_batch
        self._epoch_order: tuple[int, np.ndarray] | None = None  # the last epoch's order: a balanced one costs ~9 ms

    def _order(self, epoch: int) -> np.ndarray:
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            order = (epoch_permutation(self.num_samples, self.seed, epoch) if self.groups is None
                     else balanced_epoch(self.groups, self.seed, epoch))
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def batch_at(self, step: int) -> list[tuple[int, int]]:
        """This rank's batch of the global step `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = self._order(epoch)
        start = within * self.global_batch + self.rank * self.batch_size
        # Seeds per (step, slot) so augmentation does not depend on which worker or process draws the sample.
        return [(int(order[start + i]), _sample_seed(self.seed, step, self.rank * self.batch_size + i))
                for i in range(self.batch_size)]

    def __iter__(self):
        step = self.start_step
        while True:
            yield self.batch_at(step)
            step += 1

    def __len__(self) -> int:  # DataLoader asks; the loop never relies on it
        return 2**31 - 1


def _sample_seed(seed: int, step: int, slot: int) -> int:
    return int(np.random.default_rng([seed, step, slot, 7919]).integers(2**31 - 1))


class SeededSamples(torch.utils.data.Dataset):
    """Wraps a dataset so item `(index, seed)` draws its random augmentation from `seed` alone.

    `order` (optional) maps the sampler's index to the dataset's: the dataset's canonical order, so the batches do
    not depend on how its episodes happen to be stored. The global RNG states are forked around the call, so
    loading in the training process does not disturb the RNG that drives dropout and flow-matching noise.
    """

    def __init__(self, dataset, order: np.ndarray | None = None):
        if order is not None and len(order) != len(dataset):
            raise ValueError(f"order has {len(order)} entries for a dataset of {len(dataset)} samples")
        self.dataset, self.order = dataset, order

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed)
                return self.dataset[index if self.order is None else int(self.order[index])]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
