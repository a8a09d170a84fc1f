"""Shared fixtures: real media from the bundled sample packages and tiny tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avtok.media_io import read_clip
from avtok.media_io.samples import sample_path
from avtok.tokenizer import VisualTokenizer, build_tokenizer, resolve_config


@pytest.fixture(autouse=True)
def _one_thread(request):
    """Tiny models on a shared 2-core box: one intra-op thread is 10x faster under load than two.

    Only for the tests in this folder (subfolders such as training/ keep their own settings).
    """
    if request.node.path.parent != Path(__file__).parent:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def concert() -> torch.Tensor:
    """8 frames of the real concert clip at its native 144×176, float (T, H, W, 3) in [-1, 1]."""
    return read_clip(sample_path("concert"), start=10.0, duration=8 / 24).video_float()


@pytest.fixture(scope="session")
def concert_small() -> torch.Tensor:
    """24 frames of the concert clip resized to 48×64 (6 latent frames with the 4-frame patch)."""
    return read_clip(sample_path("concert"), start=20.0, duration=24 / 24, size=(48, 64)).video_float()


@pytest.fixture(scope="session")
def bunny_frame() -> torch.Tensor:
    """One real frame (an image, (H, W, 3)) of Big Buck Bunny at an odd size, 72×100."""
    return read_clip(sample_path("bigbuckbunny"), start=2.0, duration=1 / 25, size=(72, 100)).video_float()[0]


def _tiny(**changes) -> VisualTokenizer:
    """The tiny preset with config changes, seeded and in eval mode."""
    cfg = resolve_config("tiny")
    for key, value in changes.items():
        setattr(cfg, key, value)
    cfg.__post_init__()
    torch.manual_seed(0)
    return build_tokenizer(cfg).eval()


@pytest.fixture
def tiny():
    """Factory: ``tiny(use_fsq=True)`` builds a seeded tiny tokenizer with those config changes."""
    return _tiny


@pytest.fixture
def model() -> VisualTokenizer:
    return _tiny()
