"""Resumable data position: seeded, rank-sharded batches whose position is part of the checkpoint.

Each epoch draws one permutation from ``torch.Generator().manual_seed(seed + epoch)``; a *global* batch
of ``batch_size * world_size`` consecutive indices is split into contiguous per-rank slices, so two
ranks with batch B see exactly the samples one process with batch 2B sees (the DDP equivalence the
tests check). The position ``(epoch, batch)`` is saved with the checkpoint and restored on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import default_collate

__all__ = ["DataSource", "ResumableLoader", "SkipAheadIterator"]


@runtime_checkable
class DataSource(Protocol):
    """An endless batch iterator that can save and restore its position."""

    def __next__(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ResumableLoader:
    """Endless shuffled batches of a map-style dataset (``len`` + ``__getitem__``), sharded by rank."""

    def __init__(self, dataset: Any, *, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1,
                 collate: Callable[[list], Any] = default_collate) -> None:
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"ResumableLoader: batch_size={batch_size} must be >= 1 and rank={rank} "
                             f"must lie in [0, world_size={world_size})")
        self.global_batch = batch_size * world_size
        if len(dataset) < self.global_batch:
            raise ValueError(f"dataset has {len(dataset)} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} ranks); lower batch_size or add data")
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.rank, self.collate = rank, collate
        self.batches_per_epoch = len(dataset) // self.global_batch  # the ragged tail is dropped
        self.epoch, self.batch = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.dataset))
        return torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        start = self.batch * self.global_batch + self.rank * self.batch_size
        indices = self._order[start:start + self.batch_size].tolist()
        self.batch += 1
        return self.collate([self.dataset[i] for i in indices])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"data state was saved with seed {state['seed']} but this loader uses "
                             f"{self.seed}; resume with the same seed")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._order = self._permutation(self.epoch)


class SkipAheadIterator:
    """Wraps a plain iterable: its position is the number of batches consumed; resume re-reads and skips.

    Exact only when the iterable is deterministic (same seed, same order); prefer :class:`ResumableLoader`.
    """

    def __init__(self, iterable: Any) -> None:
        self.iterable, self.consumed = iterable, 0
        self._it = iter(iterable)

    def __next__(self) -> Any:
        try:
            item = next(self._it)
        except StopIteration:  # loop over epochs of a finite loader
            self._it = iter(self.iterable)
            item = next(self._it)
        self.consumed += 1
        return item

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._it, self.consumed = iter(self.iterable), 0
        for _ in range(int(state["consumed"])):
            next(self)
