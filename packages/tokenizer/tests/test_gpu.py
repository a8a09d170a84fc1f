"""CUDA-only checks: bf16 autocast inside the transformers, fp32 latent space. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_autocast_on_cuda_matches_fp32(tiny, concert) -> None:
    model = tiny(use_fsq=True)
    ref = model.encode(concert)
    gpu = model.cuda()
    seen = []
    gpu.encoder.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = gpu.encode(concert.cuda())
    assert seen == [torch.bfloat16]  # the transformer runs under bf16 autocast
    assert out.mean.dtype == torch.float32 and out.latents.dtype == torch.float32  # latents stay fp32
    err = (out.mean.cpu() - ref.mean).abs().max() / ref.mean.abs().max()
    assert err < 0.05
    (rec,) = gpu.decode(out)
    assert rec.dtype == torch.float32 and rec.shape == concert.shape


def test_fp32_on_cuda_when_autocast_is_off(tiny, concert) -> None:
    model = tiny(autocast_bf16=False)
    ref = model.encode(concert)
    out = model.cuda().encode(concert.cuda())
    assert torch.allclose(out.latents.cpu(), ref.latents, atol=1e-3)
