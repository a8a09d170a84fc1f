"""WindowDataset: a streaming, sharded, shuffled and resumable IterableDataset of AV windows.

How a stream is defined (the same on every rank and worker, for a given seed):
1. the source is planned once (:mod:`~avtok.media_io.window_plan`): units of <= ``chunk_windows``
   consecutive windows of one file (or one shard);
2. each epoch permutes the units (``seed``, ``epoch``); global worker ``g = rank * num_workers +
   worker_id`` of ``total = world_size * num_workers`` takes units ``g, g + total, ...`` of that order,
   so (rank, worker) streams are disjoint and together cover every window once per epoch;
3. a worker decodes its units lazily, in order (one seek + one read per unit), into a shuffle buffer of
   ``buffer_size`` windows, and emits a window picked by a counter-based hash of
   ``(seed, epoch, g, k)`` for the k-th pick.

Because the picks depend only on those numbers and on the window counts (not on decoded data; a window
that fails to decode still takes its pick and is skipped), the position of worker g is just
``(epoch, k)``: resuming replays the buffer's bookkeeping without decoding, decodes only the windows
still in the buffer, and continues with exactly the windows an uninterrupted run would have given.
Batches carry the positions of their windows, so the process that consumes them (not the worker that
made them) knows the position; :class:`WindowLoader` records it and gives ``state_dict()``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from avtok.media_io.errors import MediaError
from avtok.media_io.shards import check_shard_config, read_shard_windows
from avtok.media_io.sources import Source, list_media, parse_source
from avtok.media_io.window_plan import (
    DataStats,
    Split,
    WindowConfig,
    no_windows_error,
    plan_media,
    plan_shards,
)
from avtok.media_io.windows import UnitReader, WindowBatch, WindowSample, collate_windows

__all__ = ["WindowDataset", "WindowLoader", "list_media"]

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _pick(seed: int, epoch: int, worker: int, k: int, n: int) -> int:
    return _mix(_mix(_mix(_mix(seed) ^ epoch) ^ worker) ^ k) % n


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        rank, world_size = rank or 0, world_size or 1
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = 0, 1
    if not 0 <= rank < world_size:
        raise MediaError(f"rank={rank} must be in [0, world_size={world_size}); fix: pass a valid rank")
    return rank, world_size


def _nbytes(sample: WindowSample | None) -> int:
    if sample is None:
        return 0
    tensors = (sample.video, sample.audio, sample.mel)
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class _Entry:
    unit: int  # ordinal of the unit in this worker's list
    window: int  # window index inside the unit
    sample: WindowSample | None = None  # None: failed (or, while resuming, not decoded yet)


class WindowDataset(IterableDataset):
    """Windows of ``source`` (see :func:`~avtok.media_io.sources.parse_source`) as
    :class:`~avtok.media_io.windows.WindowSample`; batch with :class:`WindowLoader` (or a DataLoader with
    ``collate_fn=collate_windows``).

    Args:
        config: the window format (fps, size, window_frames, audio, mel, hold-out); or pass its fields
            as keyword arguments.
        split: "train" (default; the held-out part removed), "heldout" (only it, for evaluation) or "all".
        seed, shuffle: the stream order (units permuted per epoch, plus the shuffle buffer).
        buffer_size: windows in each worker's shuffle buffer (memory ~ buffer_size decoded windows).
        chunk_windows: consecutive windows decoded in one read and assigned together.
        repeat: continue with the next epoch when one ends (an endless stream for step-based training).
        rank, world_size: default from torch.distributed (when initialised), else 0 / 1.
        cache_mb: keep up to this many MB of decoded windows per worker, so later epochs of a small
            dataset skip decoding (0: off). Units are cached in the order first read until the budget is
            full and never evicted: memory stays bounded however large the dataset, and a dataset larger
            than the budget still streams the rest. Cached windows equal freshly decoded ones.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path] | Source,
        *,
        config: WindowConfig | None = None,
        split: Split = "train",
        seed: int = 0,
        shuffle: bool = True,
        buffer_size: int = 64,
        chunk_windows: int = 16,
        repeat: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        cache_mb: float = 0.0,
        **window_kwargs,
    ) -> None:
        super().__init__()
        if config is not None and window_kwargs:
            raise MediaError(f"pass config= or window fields {sorted(window_kwargs)}, not both")
        self.cfg = config or WindowConfig(**window_kwargs)
        if split not in ("train", "heldout", "all") or buffer_size < 1 or chunk_windows < 1 or cache_mb < 0:
            raise MediaError(
                f"split={split!r}, buffer_size={buffer_size}, chunk_windows={chunk_windows}, "
                f"cache_mb={cache_mb}: "
                "fix: split train/heldout/all, positive sizes, a cache budget >= 0"
            )
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, list[WindowSample | None]] = {}  # unit -> decoded windows (this process's)
        self._cached_bytes = 0
        self.source = source if isinstance(source, Source) else parse_source(source)
        self.split, self.seed, self.shuffle, self.repeat = split, int(seed), shuffle, repeat
        self.buffer_size, self.epoch = (buffer_size if shuffle else 1), 0
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        self.positions: dict[int, tuple[int, int]] = {}  # global worker -> (epoch, picks); set by resume
        self._resume_total: int | None = None  # readers (world x workers) the positions were saved with
        if self.source.kind == "shards":
            check_shard_config(self.source.shard_config, self.cfg, self.source.spec)
            self.plan, self.stats = plan_shards(self.source, split=split, chunk_windows=chunk_windows)
        else:
            self.plan, self.stats = plan_media(
                self.source.items, self.cfg, split=split, chunk_windows=chunk_windows
            )
        if self.stats.skipped:
            lines = "\n".join(f"  {p}: {r}" for p, r in list(self.stats.skipped.items())[:20])
            warnings.warn(f"WindowDataset skipped {self.stats.files_skipped} file(s):\n{lines}", stacklevel=2)
        if self.plan.num_windows == 0:
            raise no_windows_error(self.source, split, self.stats)

    @property
    def num_windows(self) -> int:
        """Windows in one epoch, over all ranks and workers."""
        return self.plan.num_windows

    @property
    def labels(self) -> list[str]:
        return self.plan.labels

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (call on every rank before iterating); a new epoch starts at its beginning."""
        if int(epoch) != self.epoch:
            self.positions.clear()
        self.epoch = int(epoch)

    def worker_units(self, worker: int, total: int, epoch: int) -> np.ndarray:
        """Unit indices read by global worker ``worker`` of ``total`` in ``epoch``, in reading order."""
        n = len(self.plan.units)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=gen).numpy()
        else:
            order = np.arange(n)
        return order[worker::total]

    def _read_unit(self, reader: UnitReader, unit: int) -> list[WindowSample | None]:
        """The unit's windows (None where one failed): from the cache when it holds them, else decoded."""
        cached = self._cache.get(unit)
        if cached is None:
            decoded = self._decode_unit(reader, unit)
            size = sum(_nbytes(s) for s in decoded) if self.cache_bytes else 0
            if not self.cache_bytes or self._cached_bytes + size > self.cache_bytes:
                return decoded  # not kept: the stream may annotate these very samples
            self._cache[unit] = cached = decoded
            self._cached_bytes += size
        # copies of kept samples: the stream sets position/counters on the samples it yields
        return [None if s is None else dataclasses.replace(s) for s in cached]

    def _decode_unit(self, reader: UnitReader, unit: int) -> list[WindowSample | None]:
        i, k0, n = (int(v) for v in self.plan.units[unit])
        if self.plan.kind == "shards":
            try:
                return read_shard_windows(self.plan.shards[i], k0, n, self.cfg, self.plan.labels)
            except (MediaError, OSError, KeyError, ValueError) as exc:
                reader.counters["windows_failed"] += n
                warnings.warn(
                    f"{self.plan.shards[i].path}: skipping {n} unreadable samples: {exc}", stacklevel=2
                )
                return [None] * n
        return reader.read(self.plan.items[i], float(self.plan.first[i]), k0, n)

    def iter_worker(
        self, worker: int, total: int, *, epoch: int | None = None, start: int = 0
    ) -> Iterator[WindowSample]:
        """The stream of global worker ``worker`` of ``total`` for one epoch, from pick ``start`` on."""
        epoch = self.epoch if epoch is None else epoch
        units = self.worker_units(worker, total, epoch)
        reader = UnitReader(self.cfg, self.plan.labels)
        counts = self.plan.units[units, 2].tolist() if len(units) else []
        buf: list[_Entry] = []
        cursor, k = 0, 0

        def fill(decode: bool) -> None:
            nonlocal cursor
            while len(buf) < self.buffer_size and cursor < len(units):
                samples = self._read_unit(reader, int(units[cursor])) if decode else [None] * counts[cursor]
                buf.extend(_Entry(cursor, w, s) for w, s in enumerate(samples))
                cursor += 1

        def take() -> _Entry:
            if not self.shuffle:
                return buf.pop(0)
            j = _pick(self.seed, epoch, worker, k, len(buf))
            buf[j], buf[-1] = buf[-1], buf[j]
            return buf.pop()

        while k < start:  # resume: replay the bookkeeping without decoding
            fill(decode=False)
            if not buf:
                return
            take()
            k += 1
        self._decode_pending(reader, units, buf)
        while True:
            fill(decode=True)
            if not buf:
                return
            entry = take()
            k += 1
            if entry.sample is not None:
                reader.counters["windows_yielded"] += 1
                entry.sample.position = (worker, epoch, k)
                entry.sample.counters = dict(reader.counters)
                yield entry.sample

    def _decode_pending(self, reader: UnitReader, units: np.ndarray, buf: list[_Entry]) -> None:
        """After a replay: decode the windows still in the buffer (one read per unit)."""
        for ordinal in sorted({e.unit for e in buf}):
            samples = self._read_unit(reader, int(units[ordinal]))
            for entry in buf:
                if entry.unit == ordinal:
                    entry.sample = samples[entry.window]

    def __iter__(self) -> Iterator[WindowSample]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        g, total = self.rank * num_workers + worker_id, self.world_size * num_workers
        self._check_total(total)
        epoch, start = self.positions.get(g, (self.epoch, 0))
        while True:
            yield from self.iter_worker(g, total, epoch=epoch, start=start)
            if not self.repeat:
                return
            epoch, start = epoch + 1, 0

    def _check_total(self, total: int) -> None:
        expected = self._resume_total
        if expected is not None and self.positions and expected != total:
            raise MediaError(
                f"the data position was saved with world_size x num_workers = {expected} readers, this run "
                f"has {total}; fix: resume with the same world size and num_workers"
            )

    def loader(self, batch_size: int, *, num_workers: int = 0, **kwargs) -> WindowLoader:
        return WindowLoader(self, batch_size=batch_size, num_workers=num_workers, **kwargs)


class WindowLoader:
    """A DataLoader over a :class:`WindowDataset` that tracks the stream position and the read counts.

    ``state_dict()`` holds, per global worker, the (epoch, picks) of the last window consumed, so a
    resumed run (same seed, world size and num_workers) continues with the next window of each worker.
    With torch.distributed initialised, ``state_dict()`` gathers every rank's positions (a collective:
    call it on all ranks). ``stats()`` adds the workers' read counts to the planning counts.
    """

    def __init__(
        self,
        dataset: WindowDataset,
        *,
        batch_size: int,
        num_workers: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        multiprocessing_context=None,
    ) -> None:
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self._kwargs = dict(
            drop_last=drop_last,
            pin_memory=pin_memory,
            prefetch_factor=prefetch_factor,
            multiprocessing_context=multiprocessing_context,
        )
        self._counts: dict[int, dict[str, int]] = {}  # this iteration's latest counts per worker
        self._done: dict[str, int] = {}  # counts of finished iterations

    @property
    def total_workers(self) -> int:
        return self.dataset.world_size * max(1, self.num_workers)

    def __iter__(self) -> Iterator[WindowBatch]:
        self._fold_counts()
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_windows,
            **self._kwargs,
        )
        batches = 0
        for batch in loader:
            for worker, epoch, k in batch.positions:
                self.dataset.positions[worker] = (epoch, k)
            self._counts.update(batch.counters)
            batches += 1
            yield batch
        self._fold_counts()
        self.dataset.positions.clear()  # the epoch is complete: iterating again replays it
        if batches == 0:
            stats = self.stats()
            raise MediaError(
                f"{self.dataset.source.spec}: no window could be decoded ({stats.windows_failed} failed in "
                f"{stats.files_failed} files); fix: check the files (see the warnings above)"
            )

    def _fold_counts(self) -> None:
        for counts in self._counts.values():
            for key, value in counts.items():
                self._done[key] = self._done.get(key, 0) + value
        self._counts = {}

    def stats(self) -> DataStats:
        """Planning counts plus what this loader's workers read, failed and found truncated so far."""
        totals = dict(self._done)
        for counts in self._counts.values():
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
        return self.dataset.stats.plus(totals)

    def state_dict(self) -> dict:
        positions = dict(self.dataset.positions)
        dist = torch.distributed
        if self.dataset.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, positions)
            positions = {g: p for part in gathered for g, p in part.items()}
        return {
            "format": "avtok-window-stream-v1",
            "seed": self.dataset.seed,
            "epoch": self.dataset.epoch,
            "readers": self.total_workers,
            "positions": {str(g): list(p) for g, p in sorted(positions.items())},
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != "avtok-window-stream-v1" or state["seed"] != self.dataset.seed:
            raise MediaError(
                f"data state (format {state.get('format')!r}, seed {state.get('seed')}) does not match this "
                f"dataset (seed {self.dataset.seed}); fix: resume with the same seed"
            )
        self.dataset.epoch = int(state["epoch"])
        self.dataset.positions = {int(g): (int(p[0]), int(p[1])) for g, p in state["positions"].items()}
        self.dataset._resume_total = int(state["readers"])
        if state["readers"] != self.total_workers:
            raise MediaError(
                f"the data position was saved with {state['readers']} readers (world size x num_workers), "
                f"this loader has {self.total_workers}; fix: resume with the same world size and num_workers"
            )
