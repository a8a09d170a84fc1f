import pytest
import torch

from avtok.generator.ovi.latents import (
    PooledAVLatents,
    PooledLatentConfig,
    TokenizerLatentConfig,
    TokenizerLatents,
)
from avtok.media_io import sample_path
from avtok.tokenizer import build_tokenizer

torch.set_num_threads(1)  # the CI / dev box is 2 shared cores


@pytest.fixture(scope="session")
def codec() -> PooledAVLatents:
    return PooledAVLatents(PooledLatentConfig(seconds=1.0, fps=8.0, size=32, pool=4, mel_pool=4))


@pytest.fixture(scope="session")
def real_latents(codec):
    """(4, T', H', W', 3) video and (4, La, 80) audio latents of four 1 s windows of the concert clip."""
    pairs = [codec.encode(codec.read(str(sample_path("concert")), start=s)) for s in (5.0, 15.0, 25.0, 35.0)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


@pytest.fixture(scope="session")
def tok_codec() -> TokenizerLatents:
    """TokenizerLatents over the tiny visual tokenizer (seeded random weights), 1 s at 8 fps, 32 px."""
    torch.manual_seed(0)
    return TokenizerLatents(build_tokenizer("tiny"), TokenizerLatentConfig(seconds=1.0, fps=8.0, size=32))


@pytest.fixture(scope="session")
def tok_clips(tok_codec):
    """Four 1 s windows of the real concert clip in tok_codec's format."""
    return [tok_codec.read(str(sample_path("concert")), start=s) for s in (5.0, 15.0, 25.0, 35.0)]
