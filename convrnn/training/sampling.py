"""The training epoch's image order and augmentation randomness, both pure functions of (seed, epoch, image), so
that an epoch resumed from the middle loads only the images not yet trained on and draws the same crops and flips
for them as an uninterrupted run.

* ``EpochOrder``: torch's ``DistributedSampler`` (shuffled by seed + epoch, the tail that does not divide among the
  ranks dropped) whose ``set_epoch(epoch, skip=k)`` starts the epoch after its first ``k`` indices on this rank,
  yielding ``(epoch, index)`` keys.
* ``SeededSamples``: a dataset wrapper whose ``[(epoch, index)]`` seeds python's ``random``, numpy and torch from
  ``(seed, epoch, index)`` (``numpy.random.SeedSequence``) for that one image's transform (in the training process,
  without loading workers, it then puts the process's random states back). The draws therefore depend neither on how far a loading worker's random stream had run, nor
  on the number of workers or processes.
"""
from __future__ import annotations

import itertools
import random
from typing import Iterator, List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, get_worker_info


class EpochOrder(DistributedSampler):
    """``DistributedSampler`` yielding ``(epoch, index)``, from position ``skip`` of this rank's epoch order."""

    skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        if not 0 <= skip <= self.num_samples:
            raise ValueError(f"skip {skip}: expected 0..{self.num_samples} (this rank's images per epoch)")
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return ((self.epoch, index) for index in itertools.islice(super().__iter__(), self.skip, None))

    def indices(self, start: int, stop: int) -> List[int]:
        """The dataset indices at positions ``start`` to ``stop - 1`` of this rank's order of the current epoch, from
        its beginning (``skip`` aside): those of a batch, to name its images."""
        return list(itertools.islice(super().__iter__(), start, stop))

    def __len__(self) -> int:
        return self.num_samples - self.skip


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed for image ``index`` in ``epoch`` of a run seeded ``seed`` (``SeedSequence`` mixes the three)."""
    high, low = np.random.SeedSequence([seed % 2**64, epoch, index]).generate_state(2)
    return (int(high) << 32) | int(low)


class SeededSamples(Dataset):
    """``dataset[index]`` under random states seeded by ``sample_seed(seed, epoch, index)``, keyed ``(epoch, index)``."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        epoch, index = key
        if get_worker_info() is not None:  # a loading worker's streams serve only its images
            return self._seeded(sample_seed(self.seed, epoch, index), index)
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            return self._seeded(sample_seed(self.seed, epoch, index), index)
        finally:  # the training process's streams (no workers) go on as if untouched: the model's draws stay the same
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])

    def _seeded(self, seed: int, index: int):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)  # the CPU stream, what transforms draw from (torch.manual_seed
        return self.dataset[index]  # seeds every accelerator too: 0.6 ms an image)
