"""The tokenizer recipes' data path: windows streamed by ``avtok.media_io.WindowDataset`` (the one windowing
implementation), as a resumable runtime ``DataSource``, plus the small held-out set the evaluation scores.

Readers: ``RunConfig.data_readers`` decoding streams over all ranks (default: one per rank). Each rank runs
``readers / world_size`` of them (DataLoader worker processes when more than one, else in the training
process); a rank's batch is one slice per reader, and the global batch is the ranks' batches in rank order.
With the reader count fixed, a run therefore trains on the same global batches under every world size that
divides it (what the torchrun test checks), while every (rank, worker) decodes only its own files.

The stream position (per reader: epoch, windows picked) is this source's ``state_dict``; the runtime saves
it in every checkpoint, so an exact resume continues with the next window of every reader.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from avtok.media_io import AVClip, MediaError
from avtok.media_io.datasets import WindowDataset, WindowLoader
from avtok.media_io.sources import parse_source
from avtok.media_io.window_plan import DataStats, Split, WindowConfig
from avtok.media_io.windows import WindowBatch, WindowSample
from avtok.train import distributed as dist

__all__ = ["WindowStream", "check_data", "heldout_windows", "join_windows", "log_stats", "sample_windows",
           "sample_windows_counted"]

log = logging.getLogger("avtok.tokenizer")


def check_data(data: str) -> None:
    """Fail early (one line naming ``data``) when it names nothing readable or an empty folder."""
    source = parse_source(data)
    if not source.items and not source.shards:
        raise MediaError(f"--data {data!r}: no media files found; fix: pass a folder with video files, a "
                         "manifest, tar shards or sample:<name>")


def _dataset(data: str, config: WindowConfig, *, split: Split, seed: int, shuffle: bool, repeat: bool,
             readers: int, rank: int | None = None, world_size: int | None = None,
             cache_mb: float = 0.0) -> WindowDataset:
    """A WindowDataset whose plan has at least ``readers`` units (smaller units for short sources)."""
    with warnings.catch_warnings():  # the skipped files are reported once, by log_stats
        warnings.simplefilter("ignore")
        ds = WindowDataset(data, config=config, split=split, seed=seed, shuffle=shuffle, repeat=repeat,
                           rank=rank, world_size=world_size, cache_mb=cache_mb)
        if len(ds.plan.units) < readers:
            if ds.num_windows < readers:
                raise MediaError(f"--data {data}: {ds.num_windows} {split} windows for {readers} data readers; "
                                 "fix: use fewer --data-readers or more data")
            chunk = max(1, ds.num_windows // readers)
            ds = WindowDataset(data, config=config, split=split, seed=seed, shuffle=shuffle, repeat=repeat,
                               chunk_windows=chunk, rank=rank, world_size=world_size, cache_mb=cache_mb)
    return ds


def _cat(parts: list[Any]) -> Any:
    if isinstance(parts[0], Tensor):
        return torch.cat(parts)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class WindowStream:
    """An endless, resumable source of ``transform(WindowBatch)`` batches (tensors or dicts of tensors).

    Args:
        batch_size: the global batch (over all ranks); rounded up to a multiple of the reader count.
        readers: decoding streams over all ranks (None: one per rank); must be a multiple of the world size.
        transform: turns each reader's ``WindowBatch`` into the step function's batch (per-window tensors
            are computed here, e.g. the mel).
        cache_mb: decoded windows each reader keeps (``WindowDataset(cache_mb=)``): a dataset that fits
            is decoded once, not once per epoch; a larger one caches that much and streams the rest.
    """

    def __init__(self, data: str, config: WindowConfig, *, batch_size: int, seed: int, readers: int | None,
                 transform: Callable[[WindowBatch], Any], cache_mb: float = 0.0) -> None:
        info = dist.dist_info()
        readers = readers or info.world_size
        if readers % info.world_size:
            raise ValueError(f"--data-readers {readers} is not a multiple of the world size {info.world_size}; "
                             "fix: pass a multiple of the number of processes")
        self.workers = readers // info.world_size  # readers of this rank
        self.dataset = _dataset(data, config, split="train", seed=seed, shuffle=True, repeat=True,
                                readers=readers, rank=info.rank, world_size=info.world_size,
                                cache_mb=cache_mb)
        per_reader = max(1, math.ceil(batch_size / readers))
        self.loader = WindowLoader(self.dataset, batch_size=per_reader,
                                   num_workers=self.workers if self.workers > 1 else 0)
        self.transform, self._it = transform, None

    def __iter__(self) -> WindowStream:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self.loader)
        return _cat([self.transform(next(self._it)) for _ in range(self.workers)])

    def state_dict(self) -> dict[str, Any]:
        """The stream position (a collective under torch.distributed: call it on every rank)."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)
        self._it = None  # the next batch starts a reader at the restored position

    def stats(self) -> DataStats:
        return self.loader.stats()


def sample_windows(data: str | list[str], config: WindowConfig, *, count: int,
                   seed: int) -> list[WindowSample]:
    """Up to ``count`` shuffled training windows, read in this process (e.g. for data statistics)."""
    return sample_windows_counted(data, config, count=count, seed=seed)[0]


def sample_windows_counted(data: str | list[str], config: WindowConfig, *, count: int,
                           seed: int) -> tuple[list[WindowSample], DataStats]:
    """``sample_windows`` plus what planning and reading found (skipped, failed and adjusted files)."""
    ds = _dataset(data, config, split="train", seed=seed, shuffle=True, repeat=False, readers=1,
                  rank=0, world_size=1)
    out = []
    for sample in ds.iter_worker(0, 1):
        out.append(sample)
        if len(out) == count:
            break
    return out, ds.stats.plus(out[-1].counters if out and out[-1].counters else {})


def heldout_windows(data: str, config: WindowConfig, *, holdout_seconds: float) -> list[WindowSample]:
    """Every held-out window in file order (the last ``holdout_seconds`` of each file); without a
    held-out window (no hold-out, or tails shorter than a window), the first training window (so the
    evaluation still has something to score)."""
    ds = None
    if holdout_seconds > 0:
        try:
            ds = _dataset(data, config, split="heldout", seed=0, shuffle=False, repeat=False, readers=1,
                          rank=0, world_size=1)
        except MediaError:  # every held-out tail is shorter than one window
            log.warning("%s: no held-out window of %.2f s; scoring the first training window", data,
                        config.window_seconds)
    if ds is None:
        ds = _dataset(data, config, split="train", seed=0, shuffle=False, repeat=False, readers=1,
                      rank=0, world_size=1)
        return [next(iter(ds.iter_worker(0, 1)))]
    return list(ds.iter_worker(0, 1))


def join_windows(samples: list[WindowSample]) -> list[AVClip]:
    """Consecutive non-overlapping windows of each file joined into one clip per file (its held-out tail)."""
    groups: dict[str, list[WindowSample]] = {}
    for s in samples:
        groups.setdefault(s.source, []).append(s)
    clips = []
    for source, parts in groups.items():
        parts.sort(key=lambda s: s.start)
        clips.append(AVClip(video=torch.cat([p.video for p in parts]), audio=torch.cat([p.audio for p in parts], 1),
                            fps=parts[0].fps, sample_rate=parts[0].sample_rate, start=parts[0].start,
                            source=source))
    return clips


def log_stats(stats: DataStats, tracker, *, step: int | None = None, what: str = "data") -> None:
    """Write the skip / adjustment counts to the log and to the tracker (``data/<count>``)."""
    level = logging.WARNING if stats.files_skipped or stats.windows_failed else logging.INFO
    log.log(level, "%s: %s", what, stats.summary())
    for path, reason in list(stats.skipped.items())[:20]:
        log.warning("skipped %s: %s", path, reason)
    if tracker is not None:
        tracker.log_metrics({f"data/{k}": float(v) for k, v in stats.metrics().items()}, step=step)
