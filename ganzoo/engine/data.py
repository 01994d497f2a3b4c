"""Reproducible, resumable, rank-sharded batch order and the DataLoader built on it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ganzoo.data import pass_through
from ganzoo.errors import UsageError


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of one epoch: a permutation drawn from (seed, epoch) alone, cut into global batches of which
    each rank takes its slice, starting at batch `start` (for resuming mid-epoch). Incomplete batches are
    dropped, so every step sees the same batch size on every rank."""

    def __init__(
        self,
        size: int,
        global_batch: int,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.size, self.global_batch, self.seed, self.epoch = size, global_batch, seed, epoch
        self.start, self.rank, self.world = start, rank, world
        self.per_rank = global_batch // world

    def __len__(self) -> int:
        return self.size // self.global_batch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        for batch in range(self.start, self.size // self.global_batch):
            first = batch * self.global_batch + self.rank * self.per_rank
            yield order[first : first + self.per_rank]


class BatchStream:
    """An endless stream of batches over epochs that knows its position (epoch, batch within the epoch)."""

    def __init__(
        self,
        dataset: Dataset,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        size = len(dataset)
        if global_batch % world:
            raise UsageError(f"batch_size={global_batch} must be divisible by the {world} DDP ranks")
        if size < global_batch:
            raise UsageError(f"batch_size={global_batch} is larger than the dataset ({size} samples)")
        self.dataset, self.global_batch, self.seed = dataset, global_batch, seed
        self.rank, self.world, self.num_workers, self.pin_memory = rank, world, num_workers, pin_memory
        self.batches_per_epoch = size // global_batch
        self.epoch = 0
        self.position = 0
        self._iterator: Iterator | None = None

    def seek(self, epoch: int, position: int) -> None:
        self.epoch, self.position, self._iterator = epoch, position, None

    def _loader(self) -> Iterator:
        sampler = EpochBatchSampler(
            len(self.dataset), self.global_batch, self.seed, self.epoch, self.position, self.rank, self.world
        )
        collate = pass_through if hasattr(self.dataset, "__getitems__") else None
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate,
            # The loader seeds its workers from this generator, not from the global RNG, so creating a
            # loader (every epoch, and on resume) leaves the training noise stream untouched.
            generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch),
        )
        return iter(loader)

    def next(self) -> dict[str, torch.Tensor]:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._iterator = self.epoch + 1, 0, None
        if self._iterator is None:
            self._iterator = self._loader()
        batch = next(self._iterator)
        self.position += 1
        return batch
