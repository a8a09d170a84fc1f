"""Window samples and batches, and decoding a unit of consecutive windows from a media item.

A unit (see :mod:`avtok.media_io.window_plan`) is decoded with one ``read_clip`` of its whole span
(one seek, one pass) and cut into windows here: the only place where windows are cut from media.
If that read fails (a damaged or truncated file), each window is retried on its own so the windows
before the damage are kept; failures are returned as ``None`` and counted by the caller.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from avtok.media_io.clip import AVClip
from avtok.media_io.errors import MediaError, TruncatedMediaError
from avtok.media_io.reading import read_clip
from avtok.media_io.sources import MediaItem
from avtok.media_io.spectral import log_mel
from avtok.media_io.window_plan import WindowConfig

Position = tuple[int, int, int]  # (global worker, epoch, windows picked by that worker in the epoch)


@dataclass(kw_only=True)
class WindowSample:
    """One window: video (T, H, W, 3) uint8, audio (C, N) float32, optional mel (n_mels, F) float32."""

    video: torch.Tensor  # (T, H, W, 3) uint8
    audio: torch.Tensor  # (C, N) float32 in [-1, 1]
    mel: torch.Tensor | None = None  # (n_mels, F) float32 log-mel of the mono mix
    fps: float
    sample_rate: int
    start: float  # seconds into the source
    source: str
    caption: str = ""
    label: int = -1  # index into the dataset's ``labels``; -1 without a label
    position: Position | None = None  # stream position after this window (set by the dataset)
    counters: dict[str, int] | None = None  # the reading worker's failure counts so far

    def clip(self) -> AVClip:
        return AVClip(
            video=self.video,
            audio=self.audio,
            fps=self.fps,
            sample_rate=self.sample_rate,
            start=self.start,
            source=self.source,
        )


@dataclass(kw_only=True)
class WindowBatch:
    """B windows stacked: video (B, T, H, W, 3) uint8, audio (B, C, N) float32, mel (B, n_mels, F)."""

    video: torch.Tensor  # (B, T, H, W, 3) uint8
    audio: torch.Tensor  # (B, C, N) float32
    mel: torch.Tensor | None  # (B, n_mels, F) float32 or None
    start: torch.Tensor  # (B,) float64
    label: torch.Tensor  # (B,) int64, -1 = none
    caption: list[str]
    source: list[str]
    fps: float
    sample_rate: int
    positions: list[Position] = field(default_factory=list)
    counters: dict[int, dict[str, int]] = field(default_factory=dict)  # worker -> its counts

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def pin_memory(self) -> WindowBatch:
        self.video, self.audio = self.video.pin_memory(), self.audio.pin_memory()
        if self.mel is not None:
            self.mel = self.mel.pin_memory()
        return self

    def clips(self) -> list[AVClip]:
        return [
            AVClip(video=v, audio=a, fps=self.fps, sample_rate=self.sample_rate, start=float(s), source=src)
            for v, a, s, src in zip(self.video, self.audio, self.start, self.source, strict=True)
        ]


def collate_windows(samples: list[WindowSample]) -> WindowBatch:
    """Stack same-shape windows into a :class:`WindowBatch` (the DataLoader ``collate_fn``)."""
    if not samples:
        raise MediaError("collate_windows: empty batch")
    counters = {s.position[0]: s.counters for s in samples if s.position is not None and s.counters}
    return WindowBatch(
        video=torch.stack([s.video for s in samples]),
        audio=torch.stack([s.audio for s in samples]),
        mel=None if samples[0].mel is None else torch.stack([s.mel for s in samples]),
        start=torch.tensor([s.start for s in samples], dtype=torch.float64),
        label=torch.tensor([s.label for s in samples], dtype=torch.int64),
        caption=[s.caption for s in samples],
        source=[s.source for s in samples],
        fps=samples[0].fps,
        sample_rate=samples[0].sample_rate,
        positions=[s.position for s in samples if s.position is not None],
        counters=counters,
    )


def make_sample(
    video, audio, cfg: WindowConfig, *, start, source, caption="", label=-1, mel=None
) -> WindowSample:
    """A WindowSample, computing the log-mel when the config asks for it and none is given."""
    if cfg.mel is not None and mel is None:
        mel = log_mel(audio.mean(0), cfg.mel)  # (n_mels, F)
    return WindowSample(
        video=video,
        audio=audio,
        mel=mel,
        fps=cfg.fps,
        sample_rate=cfg.sample_rate,
        start=float(start),
        source=source,
        caption=caption,
        label=label,
    )


def _read(item: MediaItem, cfg: WindowConfig, start: float, duration: float) -> AVClip:
    return read_clip(
        item.path,
        start=start,
        duration=duration,
        fps=cfg.fps,
        size=cfg.size,
        resize_mode=cfg.resize_mode,
        sample_rate=cfg.sample_rate,
        channels=cfg.channels,
        allow_silent=cfg.allow_silent,
    )


def _cut(clip: AVClip, k: int, cfg: WindowConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Window k of a unit clip: frames k*stride.. and exactly cfg.audio_samples samples."""
    t0 = k * (cfg.stride_frames or cfg.window_frames)
    video = clip.video[t0 : t0 + cfg.window_frames]  # (T, H, W, 3)
    a0 = round(t0 / cfg.fps * cfg.sample_rate)
    audio = clip.audio[:, a0 : a0 + cfg.audio_samples]  # (C, N)
    if audio.shape[1] < cfg.audio_samples:  # rounding at the unit's end: at most one sample short
        audio = torch.nn.functional.pad(audio, (0, cfg.audio_samples - audio.shape[1]))
    return video.clone(), audio.clone()


class UnitReader:
    """Reads units of media windows; remembers files it warned about (one warning per file)."""

    def __init__(self, cfg: WindowConfig, labels: list[str]) -> None:
        self.cfg, self.label_ids = cfg, {name: i for i, name in enumerate(labels)}
        self.failed_files: set[str] = set()
        self.counters = {"windows_failed": 0, "files_failed": 0, "truncated_files": 0, "windows_yielded": 0}

    def _fail(self, item: MediaItem, exc: MediaError) -> None:
        self.counters["windows_failed"] += 1
        path = str(item.path)
        if path in self.failed_files:
            return
        self.failed_files.add(path)
        self.counters["files_failed"] += 1
        if isinstance(exc, TruncatedMediaError):
            self.counters["truncated_files"] += 1
            warnings.warn(
                f"{path}: truncated: the video ends at {exc.ends_at:.3f} s but its header says "
                f"{exc.claimed:.3f} s; its windows past the end are skipped and counted",
                stacklevel=2,
            )
        else:
            warnings.warn(f"{path}: skipping undecodable window(s): {exc}", stacklevel=2)

    def read(self, item: MediaItem, first: float, k0: int, n: int) -> list[WindowSample | None]:
        """Windows k0 .. k0+n-1 of ``item`` (window k starts at ``first + k * stride``)."""
        cfg = self.cfg
        t0 = first + k0 * cfg.stride_seconds
        span = (n - 1) * cfg.stride_seconds + cfg.window_seconds
        try:
            clip = _read(item, cfg, t0, span)
            cut = [_cut(clip, k, cfg) for k in range(n)]
        except MediaError:
            cut = [self._single(item, t0 + k * cfg.stride_seconds) for k in range(n)]
        label = self.label_ids.get(item.label, -1) if item.label is not None else -1
        return [
            None
            if c is None
            else make_sample(
                *c,
                cfg,
                start=t0 + k * cfg.stride_seconds,
                source=str(item.path),
                caption=item.caption,
                label=label,
            )
            for k, c in enumerate(cut)
        ]

    def _single(self, item: MediaItem, start: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            return _cut(_read(item, self.cfg, start, self.cfg.window_seconds), 0, self.cfg)
        except MediaError as exc:
            self._fail(item, exc)
            return None
