"""Clips from folders of media files, and a Reconstructor that looks reconstructions up by file name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch.nn.functional as F

from avtok.media_io import AVClip, probe, read_clip

__all__ = ["MEDIA_SUFFIXES", "list_media", "iter_clips", "iter_segments", "FolderReconstructor"]

MEDIA_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def list_media(folder: str | Path, *, name: str = "folder") -> list[Path]:
    """Video files directly inside ``folder``, sorted by name; clear errors for missing / empty folders."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{name} {root}: not a directory; pass a folder of clips ({', '.join(MEDIA_SUFFIXES)})")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not files:
        raise ValueError(f"{name} {root}: no media files ({', '.join(MEDIA_SUFFIXES)}); put the clips there first")
    return files


def iter_clips(
    folder: str | Path, *, name: str = "folder", segment_mb: float | None = None, **read_kwargs
) -> Iterator[AVClip]:
    """Read every clip of ``folder`` with ``read_clip(**read_kwargs)`` (silent files allowed).

    ``segment_mb``: read each file as consecutive segments of at most that many MiB of uint8 frames
    (at least one frame each; see ``iter_segments``), so memory does not grow with the file's length
    or resolution. None reads each file whole.
    """
    read_kwargs.setdefault("allow_silent", True)
    for path in list_media(folder, name=name):
        if segment_mb is None:
            yield read_clip(path, **read_kwargs)
        else:
            yield from iter_segments(path, segment_mb=segment_mb, **read_kwargs)


def iter_segments(
    path: str | Path, *, segment_mb: float, duration: float | None = None, fps: float | None = None,
    size: tuple[int, int] | int | None = None, **read_kwargs
) -> Iterator[AVClip]:
    """Consecutive clips of one file, each holding at most ``segment_mb`` MiB of frames (>= 1 frame).

    Segment ``k`` starts at ``k * n / fps`` seconds (``n`` frames per segment at the output size and
    frame rate), so the segments tile the read ``[0, duration)`` with the same frames and audio a
    whole read gives; the last one reads to the end of the span.
    """
    info = probe(path)
    if not info.has_video or not info.fps:
        yield read_clip(path, duration=duration, fps=fps, size=size, **read_kwargs)
        return
    rate = fps or info.fps
    h, w = (size, size) if isinstance(size, int) else (size or (info.height, info.width))
    frames = max(1, int(segment_mb * 2**20) // (h * w * 3))
    seconds = frames / rate
    end = info.video_duration or info.duration
    end = min(end, duration) if duration is not None else end
    t = 0.0
    while True:
        last = end - t <= seconds + 0.5 / rate
        span = (None if duration is None else end - t) if last else seconds
        yield read_clip(path, start=t, duration=span, fps=fps, size=size, **read_kwargs)
        if last:
            return
        t += seconds


class FolderReconstructor:
    """Reconstructor whose output for a reference clip is the file of the same stem in ``folder``.

    The file is decoded at the reference's frame rate, size, sample rate, channel count and duration,
    so container differences (AAC padding, variable frame rate) do not count as reconstruction error.
    """

    def __init__(self, folder: str | Path, *, name: str | None = None) -> None:
        self.files = {p.stem: p for p in list_media(folder, name="reconstructions")}
        self.name = name or f"folder:{Path(folder).name}"

    def reconstruct(self, clip: AVClip) -> AVClip:
        stem = Path(clip.source or "").stem
        path = self.files.get(stem)
        if path is None:
            raise FileNotFoundError(f"reconstructions: no file named {stem}.* for reference {clip.source}; "
                                    "name each reconstruction after its reference")
        out = read_clip(path, start=clip.start, fps=clip.fps, size=(clip.height, clip.width),
                        sample_rate=clip.sample_rate, channels=clip.channels, duration=clip.duration,
                        allow_silent=True)
        n = clip.audio.shape[-1]
        if out.audio.shape[-1] != n and abs(out.audio.shape[-1] - n) <= 0.01 * clip.sample_rate:
            # A few samples of codec padding: trim/pad rather than failing the whole clip.
            audio = out.audio[:, :n]
            audio = F.pad(audio, (0, n - audio.shape[-1]))
            out = AVClip(video=out.video, audio=audio.contiguous(), fps=out.fps, sample_rate=out.sample_rate,
                         start=out.start, source=out.source)
        return out
