"""CUDA-only AV tokenizer checks: bf16 autocast in the shared blocks, fp32 bottleneck (skip without CUDA)."""

from __future__ import annotations

import pytest
import torch

from avtok.tokenizer.av.model import build_av_tokenizer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_autocast_on_cuda_matches_fp32() -> None:
    torch.manual_seed(0)
    model = build_av_tokenizer("tiny").eval()
    video = torch.rand(2, 8, 32, 32, 3) * 2 - 1
    mel = torch.rand(2, 80, 48) * 2 - 1
    with torch.no_grad():
        ref = model.encode(video, mel)
        gpu = model.cuda()
        seen = []
        gpu.encoder.blocks[0].mlp.fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        out = gpu.encode(video.cuda(), mel.cuda())
        rec = gpu.decode(out)
        logits = gpu.prior_logits(out)
    assert seen == [torch.bfloat16]  # the shared transformer runs under bf16 autocast
    assert out.latents.dtype == torch.float32 and out.codes.dtype == torch.float32  # bottleneck in fp32
    err = (out.latents.cpu() - ref.latents).abs().max() / ref.latents.abs().max()
    assert err < 0.05
    assert rec.video.dtype == torch.float32 and rec.video.shape == video.shape and rec.mel.shape == mel.shape
    assert logits.shape == (2, 48, 1000) and torch.isfinite(logits).all()
