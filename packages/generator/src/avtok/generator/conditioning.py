"""The conditioning clip of a2v / v2a: each task accepts its natural input.

a2v generates the picture from the sound, so an audio-only file is a valid input (its frames are a
placeholder the sampler replaces); v2a generates the sound from the picture, so a silent video is one (its
audio is silence the sampler replaces). Everything else reads a normal sounding clip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from avtok.media_io import AVClip, MediaError, probe, sample_path
from avtok.media_io.audio_stream import read_audio
from avtok.media_io.samples import list_samples

__all__ = ["resolve_source", "condition_clip"]


def resolve_source(name: str | Path) -> Path:
    """A media file, or the name of a bundled sample (``concert``); a clear error for a mistyped path."""
    path = Path(name)
    if path.is_file():
        return path
    try:
        return sample_path(str(name))
    except MediaError:
        raise FileNotFoundError(
            f"{name}: no such file, nor a bundled sample (one of {list_samples()}); "
            "pass the path of a media file"
        ) from None


def condition_clip(
    path: str | Path,
    *,
    task: str,
    start: float,
    seconds: float,
    fps: float,
    size: tuple[int, int],
    read: Callable[[Path, float, bool], AVClip],
    sample_rate: int | None = None,
    channels: int | None = None,
) -> AVClip:
    """The clip a2v / v2a condition on: ``read(path, start, allow_silent)`` for a file with a picture
    (``allow_silent`` for v2a), the audio alone under black frames for an audio-only file given to a2v."""
    path = resolve_source(path)
    if task == "a2v" and not probe(path).has_video:
        wave, rate = read_audio(
            path, start=start, duration=seconds, sample_rate=sample_rate, channels=channels
        )
        frames = max(1, round(seconds * fps))
        video = torch.zeros(frames, size[0], size[1], 3, dtype=torch.uint8)  # (T, H, W, 3): generated anyway
        return AVClip(video=video, fps=fps, audio=wave, sample_rate=rate, start=start, source=str(path))
    return read(path, start, task == "v2a")
