"""Samplers whose order is a function of seed and epoch, so a run can resume mid-epoch.

``DefaultSampler`` shuffles each epoch with ``seed + epoch`` and shards the result
across ranks; ``set_start(n)`` skips the first ``n`` samples of this rank without
touching the data. ``InfiniteSampler`` does the same for iteration-based runs,
reshuffling at each pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Any

import torch
from torch.utils.data import Sampler


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class DefaultSampler(Sampler[int]):
    """Shuffled (or sequential) indices, sharded across ranks.

    Args:
        dataset: any sized dataset.
        shuffle: shuffle with ``seed + epoch``.
        seed: the shuffle seed (the runner passes its own when None).
        round_up: pad so every rank gets the same number of samples.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None, round_up: bool = True) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = 0 if seed is None else int(seed)
        self.round_up = round_up
        self.rank, self.world_size = _rank_and_world()
        self.epoch = 0
        self.start = 0
        total = len(dataset)
        if round_up:
            self.num_samples = math.ceil(total / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((total - self.rank) / self.world_size)
            self.total_size = total

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``: the same every time for a given seed."""
        total = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            indices = torch.randperm(total, generator=generator).tolist()
        else:
            indices = list(range(total))
        if self.round_up and self.total_size > total:
            indices = (indices * math.ceil(self.total_size / total))[: self.total_size]
        return indices[self.rank : self.total_size : self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self.order(self.epoch)
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook`` before each epoch."""
        self.epoch = epoch

    def set_start(self, index: int) -> None:
        """Make the next pass begin at this rank's ``index``-th sample (a mid-epoch resume)."""
        self.start = max(0, min(int(index), self.num_samples))


class InfiniteSampler(Sampler[int]):
    """An endless stream of indices for iteration-based runs, reshuffled at each pass.

    Args:
        dataset: any sized dataset.
        shuffle: shuffle each pass with ``seed + pass number``.
        seed: the shuffle seed (the runner passes its own when None).
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int | None = None) -> None:
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = 0 if seed is None else int(seed)
        self.rank, self.world_size = _rank_and_world()
        self.epoch = 0
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        total = len(self.dataset)
        skip, self.start = self.start, 0
        # Skip whole passes arithmetically, so resuming far into a run costs nothing.
        per_pass = len(range(self.rank, total, self.world_size))
        passes, skip = divmod(skip, per_pass) if per_pass else (0, 0)
        epoch = self.epoch + passes
        while True:
            if self.shuffle:
                generator = torch.Generator()
                generator.manual_seed(self.seed + epoch)
                indices = torch.randperm(total, generator=generator).tolist()
            else:
                indices = list(range(total))
            yield from indices[self.rank :: self.world_size][skip:]
            skip = 0
            epoch += 1

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, index: int) -> None:
        """Make the next stream begin after ``index`` samples of this rank."""
        self.start = max(0, int(index))


def pseudo_collate(batch: Sequence[Any]) -> Any:
    """MMEngine's ``pseudo_collate``: a batch's samples regrouped field by field, never stacked.

    Dicts become a dict of lists, tuples a list of fields (a named tuple stays one), lists a
    list of fields; tensors, numbers and strings stay the list of samples.
    """
    first = batch[0]
    if isinstance(first, (str, bytes)):
        return batch
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(pseudo_collate(list(field)) for field in zip(*batch, strict=True)))
    if isinstance(first, Mapping):
        return type(first)({key: pseudo_collate([sample[key] for sample in batch]) for key in first})
    if isinstance(first, Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("each sample of a batch must have the same number of fields")
        fields = [pseudo_collate(list(field)) for field in zip(*batch, strict=True)]
        if isinstance(first, tuple):
            return fields
        try:
            return type(first)(fields)
        except TypeError:
            return fields
    return batch
