"""Datasets of fixed-length audio-video windows, sharded over DDP ranks and DataLoader workers, and a
disk cache of decoded windows (safetensors shards + a JSON index; never pickle).

``AVWindowDataset`` is an ``IterableDataset`` that yields :class:`AVClip` windows (collate a batch with
:func:`collate_clips`). Every rank and worker builds the same window list and the same per-epoch
permutation (``seed`` + ``set_epoch``), then keeps every ``total``-th window starting at its global
worker id ``rank * num_workers + worker_id``: together they cover each window exactly once per epoch.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import av
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from avtok.media_io.clip import AVClip
from avtok.media_io.errors import MediaError
from avtok.media_io.probe import MediaInfo, container_origin, open_container, probe
from avtok.media_io.reading import read_clip

MEDIA_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".mov",
        ".m4v",
        ".ogv",
        ".flv",
        ".wmv",
        ".3gp",
        ".ts",
        ".vob",
    }
)


@dataclass(kw_only=True)
class WindowConfig:
    """How windows are cut and decoded (shared by AVWindowDataset and the cache's index)."""

    window_frames: int = 16
    fps: float = 16.0
    size: tuple[int, int] | int = (128, 128)
    resize_mode: Literal["resize", "crop"] = "crop"
    sample_rate: int = 16000
    channels: int = 1
    stride_frames: int | None = None  # None = window_frames (no overlap)
    allow_silent: bool = False

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.fps

    @property
    def stride_seconds(self) -> float:
        return (self.stride_frames or self.window_frames) / self.fps


@dataclass(kw_only=True)
class DatasetStats:
    """What indexing and iteration found; ``skipped`` maps a file to the reason it was left out."""

    files_found: int = 0
    files_used: int = 0
    windows: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed_windows: int = 0  # windows that failed to decode in this process (e.g. damaged mid-file)

    def summary(self) -> str:
        return (
            f"{self.files_used}/{self.files_found} files used, {self.windows} windows, "
            f"{len(self.skipped)} files skipped, {self.failed_windows} windows failed"
        )


def list_media(source: str | Path) -> list[Path]:
    """Media files of a folder (recursive, sorted) or of a .csv (column ``path``) / .jsonl manifest
    (key ``path``); manifest paths are relative to the manifest's folder."""
    src = Path(source)
    if src.is_dir():
        return sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
    if not src.is_file():
        raise MediaError("dataset source not found; fix: pass a folder or a .csv/.jsonl manifest", path=src)
    if src.suffix.lower() == ".csv":
        with src.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "path" not in rows[0]:
            raise MediaError("CSV manifest has no 'path' column; fix: add a header row with 'path'", path=src)
        paths = [r["path"] for r in rows]
    elif src.suffix.lower() == ".jsonl":
        lines = [ln for ln in src.read_text().splitlines() if ln.strip()]
        try:
            paths = [json.loads(ln)["path"] for ln in lines]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise MediaError(
                f'bad JSONL manifest line ({exc}); fix: one {{"path": ...}} object per line', path=src
            ) from exc
    else:
        raise MediaError("unknown manifest type; fix: pass a folder, a .csv or a .jsonl manifest", path=src)
    return [p if p.is_absolute() else src.parent / p for p in map(Path, paths)]


def _tail_readable(info: MediaInfo, t: float) -> bool:
    """Whether a video frame can be decoded near time t (catches files truncated after their header)."""
    try:
        with open_container(info.path) as container:
            stream, origin = container.streams.video[0], container_origin(container)
            container.seek(int((origin + max(t - 1.0, 0.0)) * av.time_base), backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time - origin >= t - 2.0:
                    return True
    except (av.error.FFmpegError, MediaError):
        return False
    return False


def _windows_of(path: Path, cfg: WindowConfig, check_tail: bool) -> tuple[list[float], str | None]:
    """Start times of a file's windows, or ([], reason to skip it)."""
    try:
        info = probe(path)
    except MediaError as exc:
        return [], str(exc)
    if not info.has_video:
        return [], "no video stream"
    if not info.has_audio and not cfg.allow_silent:
        return [], "no audio stream (pass allow_silent=True to use it with silent audio)"
    duration = min(info.duration, info.video_duration or info.duration)
    count = math.floor((duration - cfg.window_seconds) / cfg.stride_seconds + 1e-6) + 1
    if duration < cfg.window_seconds or count < 1:
        return [], f"too short ({duration:.2f} s < one {cfg.window_seconds:.2f} s window)"
    starts = [i * cfg.stride_seconds for i in range(count)]
    if check_tail and not _tail_readable(info, starts[-1] + cfg.window_seconds - 1.0 / cfg.fps):
        return [], "truncated or damaged (no decodable frame near the end its header announces)"
    return starts, None


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


class AVWindowDataset(IterableDataset):
    """Fixed-length AV windows (``window_frames`` at ``fps`` + the matching audio) over many files.

    Yields :class:`AVClip` (video (T, H, W, 3) uint8, audio (C, N) float32); batch them with
    ``DataLoader(ds, batch_size=B, collate_fn=collate_clips)``. Files that cannot be probed, have no
    video (or no audio without ``allow_silent``), are shorter than one window or are truncated are skipped
    when the dataset is built (see ``stats.skipped``; one warning lists them); windows that still fail to
    decode are skipped while iterating, counted in ``stats.failed_windows`` and warned about once per file.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        window_frames: int = 16,
        fps: float = 16.0,
        size: tuple[int, int] | int = (128, 128),
        resize_mode: Literal["resize", "crop"] = "crop",
        sample_rate: int = 16000,
        channels: int = 1,
        stride_frames: int | None = None,
        allow_silent: bool = False,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        check_tail: bool = True,
    ) -> None:
        super().__init__()
        if window_frames < 1 or fps <= 0 or (stride_frames is not None and stride_frames < 1):
            raise MediaError(
                f"window_frames={window_frames}, fps={fps}, stride_frames={stride_frames}: need "
                "positive values; fix: e.g. window_frames=16, fps=16.0"
            )
        self.cfg = WindowConfig(
            window_frames=window_frames,
            fps=fps,
            size=size,
            resize_mode=resize_mode,
            sample_rate=sample_rate,
            channels=channels,
            stride_frames=stride_frames,
            allow_silent=allow_silent,
        )
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        self.files = list_media(source)
        self.stats = DatasetStats(files_found=len(self.files))
        self.windows: list[tuple[int, float]] = []  # (file index, start seconds)
        self._warned: set[str] = set()
        self._index(check_tail)

    def _index(self, check_tail: bool) -> None:
        for i, path in enumerate(self.files):
            starts, reason = _windows_of(path, self.cfg, check_tail)
            if reason is not None:
                self.stats.skipped[str(path)] = reason
                continue
            self.stats.files_used += 1
            self.windows += [(i, s) for s in starts]
        self.stats.windows = len(self.windows)
        if self.stats.skipped:
            lines = "\n".join(f"  {p}: {r}" for p, r in self.stats.skipped.items())
            warnings.warn(
                f"AVWindowDataset skipped {len(self.stats.skipped)} file(s):\n{lines}", stacklevel=3
            )
        if not self.windows:
            raise MediaError(
                f"no usable windows ({self.stats.summary()}); fix: check the files and "
                "window_frames / fps / allow_silent"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle (call on every rank before iterating, like DistributedSampler)."""
        self.epoch = int(epoch)

    def order(self) -> list[int]:
        """This epoch's permutation of all window indices (identical on every rank and worker)."""
        if not self.shuffle:
            return list(range(len(self.windows)))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.windows), generator=gen).tolist()

    def shard_indices(self, worker_id: int = 0, num_workers: int = 1) -> list[int]:
        """Window indices read by (this rank, worker_id): every total-th of the epoch's order."""
        total = self.world_size * num_workers
        return self.order()[self.rank * num_workers + worker_id :: total]

    def read_window(self, index: int) -> AVClip:
        file_index, start = self.windows[index]
        c = self.cfg
        return read_clip(
            self.files[file_index],
            start=start,
            duration=c.window_seconds,
            fps=c.fps,
            size=c.size,
            resize_mode=c.resize_mode,
            sample_rate=c.sample_rate,
            channels=c.channels,
            allow_silent=c.allow_silent,
        )

    def __iter__(self) -> Iterator[AVClip]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index in self.shard_indices(worker_id, num_workers):
            try:
                yield self.read_window(index)
            except MediaError as exc:
                self.stats.failed_windows += 1
                path = str(self.files[self.windows[index][0]])
                if path not in self._warned:
                    self._warned.add(path)
                    warnings.warn(
                        f"AVWindowDataset: skipping undecodable window(s) of {path}: {exc}", stacklevel=2
                    )

    def __len__(self) -> int:
        """Windows this rank yields per epoch (summed over its workers)."""
        return len(range(self.rank, len(self.windows), self.world_size))


def collate_clips(batch: Sequence[AVClip]) -> dict[str, object]:
    """Stack same-size clips: video (B, T, H, W, 3) uint8, audio (B, C, N) float32, start (B,) float64,
    fps / sample_rate (floats of the first clip), source list[str | None]."""
    if not batch:
        raise MediaError("collate_clips: empty batch")
    return {
        "video": torch.stack([c.video for c in batch]),
        "audio": torch.stack([c.audio for c in batch]),
        "start": torch.tensor([c.start for c in batch], dtype=torch.float64),
        "fps": batch[0].fps,
        "sample_rate": batch[0].sample_rate,
        "source": [c.source for c in batch],
    }


_INDEX = "index.json"


def _write_shard(out_dir: Path, number: int, clips: list[AVClip], file_ids: list[int]) -> dict[str, object]:
    name = f"shard-{number:05d}.safetensors"
    tensors = {
        "video": torch.stack([c.video for c in clips]).contiguous(),  # (n, T, H, W, 3) uint8
        "audio": torch.stack([c.audio for c in clips]).contiguous(),  # (n, C, N) float32
        "start": torch.tensor([c.start for c in clips], dtype=torch.float64),
        "file_index": torch.tensor(file_ids, dtype=torch.int64),
    }
    save_file(tensors, str(out_dir / name))
    return {"file": name, "count": len(clips)}


def prepare_windows(
    source: str | Path, out_dir: str | Path, *, shard_size: int = 256, progress: bool = False, **window_kwargs
) -> Path:
    """Decode every window of ``source`` once (in order) into safetensors shards + ``index.json``.

    ``window_kwargs`` are AVWindowDataset's (window_frames, fps, size, sample_rate, ...). Shards hold
    ``video`` (n, T, H, W, 3) uint8, ``audio`` (n, C, N) float32, ``start`` (n,) float64 and
    ``file_index`` (n,) int64 (into the index's ``sources``). Returns the index path; read the cache
    with :class:`CachedWindowDataset`. ``progress`` shows a tqdm bar.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = AVWindowDataset(source, shuffle=False, rank=0, world_size=1, **window_kwargs)
    shards, clips, ids = [], [], []
    for index in tqdm(range(len(ds.windows)), desc="prepare_windows", disable=not progress):
        try:
            clip = ds.read_window(index)
        except MediaError as exc:
            ds.stats.failed_windows += 1
            warnings.warn(f"prepare_windows: skipping a window: {exc}", stacklevel=2)
            continue
        clips.append(clip)
        ids.append(ds.windows[index][0])
        if len(clips) == shard_size:
            shards.append(_write_shard(out, len(shards), clips, ids))
            clips, ids = [], []
    if clips:
        shards.append(_write_shard(out, len(shards), clips, ids))
    index = {
        "format": "avtok-windows-v1",
        "config": asdict(ds.cfg),
        "fps": ds.cfg.fps,
        "sample_rate": ds.cfg.sample_rate,
        "sources": [str(p) for p in ds.files],
        "shards": shards,
        "stats": asdict(ds.stats),
    }
    (out / _INDEX).write_text(json.dumps(index, indent=1))
    return out / _INDEX


class CachedWindowDataset(Dataset):
    """Map-style dataset over :func:`prepare_windows` output; ``ds[i]`` is an AVClip (memory-mapped read)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir)
        index_path = self.root / _INDEX
        if not index_path.is_file():
            raise MediaError(
                "no index.json here; fix: run prepare_windows(source, out_dir) first", path=self.root
            )
        self.index = json.loads(index_path.read_text())
        self.sources: list[str] = self.index["sources"]
        self.fps, self.sample_rate = float(self.index["fps"]), int(self.index["sample_rate"])
        counts = [s["count"] for s in self.index["shards"]]
        self._offsets = [0]
        for n in counts:
            self._offsets.append(self._offsets[-1] + n)

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, i: int) -> AVClip:
        if not -len(self) <= i < len(self):
            raise IndexError(f"CachedWindowDataset index {i} out of range for {len(self)} windows")
        i %= len(self)
        shard = bisect.bisect_right(self._offsets, i) - 1
        row = i - self._offsets[shard]
        with safe_open(str(self.root / self.index["shards"][shard]["file"]), framework="pt") as fh:
            video, audio = fh.get_slice("video")[row], fh.get_slice("audio")[row]
            start, file_index = fh.get_slice("start")[row], fh.get_slice("file_index")[row]
        return AVClip(
            video=video,
            fps=self.fps,
            audio=audio,
            sample_rate=self.sample_rate,
            start=float(start),
            source=self.sources[int(file_index)],
        )
