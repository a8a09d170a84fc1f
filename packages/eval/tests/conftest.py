"""Real media fixtures for avtok-eval tests (all shipped inside PyPI packages; nothing downloaded)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from avtok.media_io import read_audio, read_clip, sample_path


@pytest.fixture(scope="session")
def concert_clips():
    """Two 1 s windows of the iscc-samples live-band video, 72x88, 22.05 kHz stereo."""
    path = sample_path("concert")
    return [read_clip(path, start=s, duration=1.0, size=(72, 88), sample_rate=22050) for s in (5.0, 20.0)]


@pytest.fixture(scope="session")
def song():
    """The iscc-samples 15.5 s song as (wave (C, N) float32 in [-1, 1], sample_rate)."""
    return read_audio(sample_path("song"), sample_rate=22050)


def _img(name: str, size: int = 128) -> torch.Tensor:
    im = np.asarray(Image.open(sample_path(name)))  # scikit-image's bundled PNGs
    if im.ndim == 2:
        im = np.stack([im] * 3, -1)
    return torch.from_numpy(np.ascontiguousarray(im[:size, :size, :3])).float() / 127.5 - 1.0  # (H, W, 3)


@pytest.fixture(scope="session")
def natural_images() -> torch.Tensor:
    """Six scikit-image photographs, 128x128 crops, (6, 128, 128, 3) in [-1, 1]."""
    names = ["astronaut", "coffee", "chelsea", "camera", "motorcycle_left", "ihc"]
    return torch.stack([_img(n) for n in names])


@pytest.fixture(scope="session")
def aisfx_weights() -> None:
    """FAD needs the aiSFX wheel, installed without its stale pins; skip (visibly, -ra) when absent."""
    if importlib.util.find_spec("aisfx") is None:
        pytest.skip("aiSFX weights not installed: python -m pip install --no-deps aisfx==0.1.2")
