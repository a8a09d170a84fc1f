"""Window planning: which fixed-length windows a source holds, grouped into work units.

Every media item is probed once (header only, a few threads): its usable span is the common span of
video and audio (``[start, min(video end, audio end, item end))``), minus the held-out part. Windows
start every ``stride`` seconds inside it. Consecutive windows of an item are grouped into units of at
most ``chunk_windows`` windows; a unit is the piece of work a DataLoader worker decodes in one read
(one seek + one decode of a few seconds), and the piece that is assigned to a (rank, worker).
Pre-extracted shards are planned the same way from their sample counts.

Held-out data, by file or by time (never both in one item): a manifest's ``split`` column names an
item's split; otherwise an item is held out whole when a stable hash of its file name falls below
``holdout_fraction``, and the last ``holdout_seconds`` of every other item are held out.
"""

from __future__ import annotations

import hashlib
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import numpy as np

from avtok.media_io.errors import MediaError
from avtok.media_io.probe import MediaInfo, probe
from avtok.media_io.sources import MediaItem, Source, WindowShard
from avtok.media_io.spectral import MelConfig

log = logging.getLogger("avtok.media_io")

Split = Literal["train", "heldout", "all"]
_AUDIO_SHORT = 0.05  # seconds by which audio may end before the video without counting as trimmed
_MAX_REASONS = 200  # skipped files whose reason is kept (the counts cover all of them)


@dataclass(kw_only=True)
class WindowConfig:
    """How windows are cut and decoded: the model's frame rate, size and audio format."""

    window_frames: int = 16
    fps: float = 16.0
    size: tuple[int, int] = (128, 128)  # (H, W); an int means square
    resize_mode: Literal["resize", "crop"] = "crop"
    sample_rate: int = 16000
    channels: int = 1
    stride_frames: int | None = None  # None = window_frames (no overlap)
    allow_silent: bool = False  # files without audio give silent windows instead of being skipped
    mel: MelConfig | None = None  # also return the log-mel of each window's (mono) audio
    holdout_seconds: float = 0.0  # the last seconds of every file are held out
    holdout_fraction: float = 0.0  # this fraction of files (by a hash of the name) is held out whole

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        self.size = (int(self.size[0]), int(self.size[1]))
        if isinstance(self.mel, dict):
            self.mel = MelConfig(**self.mel)
        bad = self.window_frames < 1 or self.fps <= 0 or (self.stride_frames or 1) < 1
        if bad or self.sample_rate < 1 or not 0 <= self.holdout_fraction < 1 or self.holdout_seconds < 0:
            raise MediaError(
                f"WindowConfig: bad values {self}; fix: positive window_frames/fps/stride_frames/"
                "sample_rate, "
                "holdout_seconds >= 0, 0 <= holdout_fraction < 1"
            )
        if self.mel is not None and self.mel.sample_rate != self.sample_rate:
            raise MediaError(
                f"WindowConfig: mel.sample_rate {self.mel.sample_rate} != sample_rate {self.sample_rate}; "
                "fix: use the same rate for both"
            )

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.fps

    @property
    def stride_seconds(self) -> float:
        return (self.stride_frames or self.window_frames) / self.fps

    @property
    def audio_samples(self) -> int:
        """Audio samples per window (``round(window_seconds * sample_rate)``, as read_clip returns)."""
        return round(self.window_seconds * self.sample_rate)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["size"] = list(self.size)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> WindowConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(kw_only=True)
class DataStats:
    """What planning and reading found: skipped/failed media and what was adjusted (log these)."""

    files_found: int = 0
    files_used: int = 0
    files_skipped: int = 0  # unusable when planned (unreadable, no video/audio, too short)
    windows_planned: int = 0
    windows_yielded: int = 0
    windows_failed: int = 0  # windows that failed to decode while reading (damaged or truncated files)
    files_failed: int = 0  # files with at least one failed window (per worker, summed)
    truncated_files: int = 0  # files ending before their header says (a warning names both times)
    audio_trimmed_files: int = 0  # audio ends before the video: the common span is used
    audio_resampled_files: int = 0  # audio at another rate than sample_rate
    audio_remixed_files: int = 0  # audio with another channel count than channels
    variable_rate_files: int = 0  # variable frame rate video (resampled by timestamps)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason (the first 200)

    def skip(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        if len(self.skipped) < _MAX_REASONS:
            self.skipped[path] = reason

    def plus(self, counts: dict[str, int]) -> DataStats:
        """A copy with a reader's counts (``windows_failed``, ``truncated_files``, …) added."""
        out = DataStats(**{k: v for k, v in vars(self).items() if k != "skipped"}, skipped=dict(self.skipped))
        for key, value in counts.items():
            setattr(out, key, getattr(out, key) + value)
        return out

    def metrics(self) -> dict[str, int]:
        """The counts, for a training log / MLflow (``data/<name>``)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}

    def summary(self) -> str:
        return (
            f"{self.files_used}/{self.files_found} files used ({self.files_skipped} skipped), "
            f"{self.windows_planned} windows planned, {self.windows_yielded} read, "
            f"{self.windows_failed} failed in {self.files_failed} files, {self.truncated_files} truncated; "
            f"adjusted: {self.audio_trimmed_files} audio shorter than video, {self.audio_resampled_files} "
            f"resampled, {self.audio_remixed_files} remixed, {self.variable_rate_files} variable frame rate"
        )


@dataclass(kw_only=True)
class WindowPlan:
    """Windows of one split: item ``i`` has ``counts[i]`` windows starting at ``first[i] + k * stride``;
    ``units`` (U, 3) int64 rows are (item or shard index, first window, number of windows)."""

    kind: Literal["media", "shards"]
    items: list[MediaItem] = field(default_factory=list)
    shards: list[WindowShard] = field(default_factory=list)
    first: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (I,) float64 seconds
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (I,) int64
    units: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))  # (U, 3) int64
    labels: list[str] = field(default_factory=list)  # label vocabulary (index = class id)

    @property
    def num_windows(self) -> int:
        return int(self.units[:, 2].sum()) if len(self.units) else 0


def _chunk(counts: np.ndarray, chunk: int) -> np.ndarray:
    rows = [(i, k, min(chunk, int(n) - k)) for i, n in enumerate(counts) for k in range(0, int(n), chunk)]
    return np.asarray(rows, np.int64).reshape(-1, 3)


def _held_whole(item: MediaItem, cfg: WindowConfig) -> bool:
    if item.heldout is not None:
        return item.heldout
    if cfg.holdout_fraction <= 0:
        return False
    name = getattr(item.path, "name", str(item.path)).rsplit("/", 1)[-1]
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < cfg.holdout_fraction


def _span(item: MediaItem, info: MediaInfo, cfg: WindowConfig, stats: DataStats) -> tuple[float, float]:
    end = info.video_duration or info.duration
    if info.has_audio and info.audio_duration is not None and info.audio_duration < end - _AUDIO_SHORT:
        stats.audio_trimmed_files += 1
        log.info(
            "%s: audio ends at %.3f s, %.3f s before the video; using the common span",
            item.path,
            info.audio_duration,
            end - info.audio_duration,
        )
        end = info.audio_duration
    if item.end is not None:
        end = min(end, item.end)
    return item.start, end


def _count_adjustments(info: MediaInfo, cfg: WindowConfig, stats: DataStats) -> None:
    if info.has_audio and info.sample_rate != cfg.sample_rate:
        stats.audio_resampled_files += 1
    if info.has_audio and info.channels != cfg.channels:
        stats.audio_remixed_files += 1
    if info.variable_rate:
        stats.variable_rate_files += 1


def _probe(item: MediaItem) -> MediaInfo | str:
    try:
        return probe(item.path)
    except MediaError as exc:
        return str(exc)


def _item_windows(item, info, cfg: WindowConfig, split: Split, stats: DataStats) -> tuple[float, int] | None:
    """(first window start, window count) of an item in ``split``, or None when it is not in it."""
    begin, end = _span(item, info, cfg, stats)
    held = _held_whole(item, cfg)
    if split == "train" and not held:
        end -= cfg.holdout_seconds
    elif split == "heldout" and not held:
        if cfg.holdout_seconds <= 0:
            return None
        begin = max(begin, end - cfg.holdout_seconds)
    elif split == "train" and held:
        return None
    length = end - begin
    n = math.floor((length - cfg.window_seconds) / cfg.stride_seconds + 1e-6) + 1 if length > 0 else 0
    if length < cfg.window_seconds - 1e-6 or n < 1:
        stats.skip(
            str(item.path), f"too short ({max(length, 0):.2f} s < one {cfg.window_seconds:.2f} s window)"
        )
        return None
    return begin, n


def plan_media(
    items: list[MediaItem], cfg: WindowConfig, *, split: Split, chunk_windows: int, threads: int = 4
) -> tuple[WindowPlan, DataStats]:
    """Probe every item (``threads`` at a time) and plan its windows in ``split``."""
    stats = DataStats(files_found=len(items))
    with ThreadPoolExecutor(max(1, min(threads, len(items)))) as pool:
        infos = list(pool.map(_probe, items))
    labels = sorted({it.label for it in items if it.label is not None})
    plan = WindowPlan(kind="media", labels=labels)
    first, counts = [], []
    for item, info in zip(items, infos, strict=True):
        if isinstance(info, str):
            stats.skip(str(item.path), info)
        elif not info.has_video:
            stats.skip(str(item.path), "no video stream")
        elif not info.has_audio and not cfg.allow_silent:
            stats.skip(str(item.path), "no audio stream (pass allow_silent=True to use it with silent audio)")
        elif (found := _item_windows(item, info, cfg, split, stats)) is not None:
            _count_adjustments(info, cfg, stats)
            plan.items.append(item)
            first.append(found[0])
            counts.append(found[1])
    plan.first = np.asarray(first, np.float64)
    plan.counts = np.asarray(counts, np.int64)
    plan.units = _chunk(plan.counts, chunk_windows)
    stats.files_used, stats.windows_planned = len(plan.items), plan.num_windows
    return plan, stats


def plan_shards(source: Source, *, split: Split, chunk_windows: int) -> tuple[WindowPlan, DataStats]:
    """Plan the windows of pre-extracted shards (``split`` as written by ``avtok-media-io shard``)."""
    wanted = [s for s in source.shards if split == "all" or (s.split in ("train",)) == (split == "train")]
    plan = WindowPlan(kind="shards", shards=wanted, labels=list(source.labels))
    plan.counts = np.asarray([s.count for s in wanted], np.int64)
    plan.units = _chunk(plan.counts, chunk_windows)
    stats = DataStats(
        files_found=len(source.shards), files_used=len(wanted), windows_planned=plan.num_windows
    )
    return plan, stats


def no_windows_error(source: Source, split: Split, stats: DataStats) -> MediaError:
    """The error for a source without a single usable window, naming its files and why."""
    reasons = "; ".join(f"{p}: {r}" for p, r in list(stats.skipped.items())[:20])
    more = f" (+{stats.files_skipped - 20} more)" if stats.files_skipped > 20 else ""
    return MediaError(
        f"data source {source.spec!r} has no usable {split} windows ({stats.files_found} files found): "
        f"{reasons or 'no files'}{more}; fix: check the files, window length, allow_silent and "
        "hold-out settings"
    )
