"""Clips from folders of media files, and a Reconstructor that looks reconstructions up by file name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch.nn.functional as F

from avtok.media_io import AVClip, read_clip

__all__ = ["MEDIA_SUFFIXES", "list_media", "iter_clips", "FolderReconstructor"]

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


def iter_clips(folder: str | Path, *, name: str = "folder", **read_kwargs) -> Iterator[AVClip]:
    """Read every clip of ``folder`` with ``read_clip(**read_kwargs)`` (silent files allowed)."""
    read_kwargs.setdefault("allow_silent", True)
    for path in list_media(folder, name=name):
        yield read_clip(path, **read_kwargs)


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
        out = read_clip(path, fps=clip.fps, size=(clip.height, clip.width), sample_rate=clip.sample_rate,
                        channels=clip.channels, duration=clip.duration, allow_silent=True)
        n = clip.audio.shape[-1]
        if out.audio.shape[-1] != n and abs(out.audio.shape[-1] - n) <= 0.01 * clip.sample_rate:
            # A few samples of codec padding: trim/pad rather than failing the whole clip.
            audio = out.audio[:, :n]
            audio = F.pad(audio, (0, n - audio.shape[-1]))
            out = AVClip(video=out.video, audio=audio.contiguous(), fps=out.fps, sample_rate=out.sample_rate,
                         start=out.start, source=out.source)
        return out
