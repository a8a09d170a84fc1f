"""The tiny AV tokenizer overfits one real sounding clip on CPU (video PSNR and mel L1 asserted)."""

from __future__ import annotations

import pytest
import torch

from avtok.media_io import log_mel, read_clip, sample_path
from avtok.media_io.vocoder import has_hifigan
from avtok.tokenizer.av.clip import clip_inputs, decode_clips
from avtok.tokenizer.av.model import build_av_tokenizer

STEPS = 400
PSNR_DB = 28.0  # measured 32.2 / 33.6 / 33.0 dB (seeds 0 / 1 / 2); the mean-frame baseline is 22.1 dB
MEL_L1 = 0.05  # normalised mel in [-1, 1]: measured 0.0085-0.0090; a per-bin mean mel scores 0.38


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR for signals in [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4.0 / (x - y).square().mean()))


@pytest.mark.slow
def test_tiny_av_tokenizer_overfits_one_real_sounding_clip() -> None:
    torch.manual_seed(0)
    model = build_av_tokenizer("tiny")
    c = model.config
    clip = read_clip(sample_path("concert"), start=20.0, duration=c.seconds, fps=c.fps, size=(32, 32),
                     resize_mode="crop", sample_rate=22050, channels=1)
    model.fit_mel_stats(log_mel(clip.audio[0]))
    video, mel = clip_inputs(model, clip)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(STEPS):
        _, rec = model(video, mel)
        loss = (rec.video - video).abs().mean() + (rec.mel - mel).abs().mean()  # L1 on both streams
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        tokens = model.encode(video, mel)
        rec = model.decode_indices(tokens.indices)  # through the discrete tokens only
    psnr = _psnr(rec.video.clamp(-1, 1), video)
    mel_l1 = float((rec.mel - mel).abs().mean())
    mean_frame = video.mean(1, keepdim=True).expand_as(video)
    assert psnr > PSNR_DB, f"video PSNR {psnr:.2f} dB after {STEPS} steps"
    assert psnr > _psnr(mean_frame, video) + 6.0  # learnt the motion, not only the background
    assert mel_l1 < MEL_L1, f"mel L1 {mel_l1:.4f} after {STEPS} steps"
    if has_hifigan():  # the decoded mel drives HiFi-GAN like the real one (vocoder floor ≈ 0.27)
        (out,) = decode_clips(model, rec)
        again = log_mel(out.audio[0])
        assert float((again - log_mel(clip.audio[0])).abs().mean()) < 0.4
