"""The drivers (clip_metrics, evaluate_reconstruction) report the standard SSIM / PSNR: scikit-image's
numbers on the same uint8 frames with data_range 255, not the metric run on [-1, 1] floats."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from avtok.eval.clip_metrics import ClipMetricsConfig, clip_metrics
from avtok.eval.reconstruction import ReconstructionConfig, evaluate_reconstruction
from avtok.media_io import AVClip, read_clip, sample_path

STANDARD = dict(channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.fixture(scope="module")
def native_clip() -> AVClip:
    """Four frames of the iscc-samples concert video at its native size."""
    clip = read_clip(sample_path("concert"), start=12.0, duration=1.0, sample_rate=22050)
    return clip.frames(0, 4)


def _contrast(video: torch.Tensor) -> torch.Tensor:
    return (video.float() * 0.8).round().to(torch.uint8)  # a plain contrast change (scikit-image ~0.97)


def _noise(video: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (video.float() + 10 * torch.randn(video.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)


def _with_video(clip: AVClip, video: torch.Tensor) -> AVClip:
    return AVClip(video=video, audio=clip.audio, fps=clip.fps, sample_rate=clip.sample_rate,
                  start=clip.start, source=clip.source)


def _skimage(pred: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    p, r = pred.numpy(), ref.numpy()
    ssim = float(np.mean([structural_similarity(r[t], p[t], **STANDARD) for t in range(len(r))]))
    return ssim, float(peak_signal_noise_ratio(r, p, data_range=255))  # PSNR of the clip-wide MSE


@pytest.mark.parametrize("degrade", [_contrast, _noise], ids=["contrast", "noise"])
def test_clip_metrics_is_skimage_on_uint8_frames(native_clip, degrade):
    pred = _with_video(native_clip, degrade(native_clip.video))
    got = clip_metrics(pred, native_clip, ClipMetricsConfig(audio=False))
    want_ssim, want_psnr = _skimage(pred.video, native_clip.video)
    assert got["ssim"] == pytest.approx(want_ssim, abs=2e-6)
    assert got["psnr"] == pytest.approx(want_psnr, abs=1e-6)
    if degrade is _contrast:  # [-1, 1] frames (the old driver) gave ~0.85 here
        assert got["ssim"] > 0.95


def test_evaluate_reconstruction_reports_the_standard_ssim(native_clip):
    class Contrast:
        name = "contrast"

        def reconstruct(self, clip: AVClip) -> AVClip:
            return _with_video(clip, _contrast(clip.video))

    cfg = ReconstructionConfig(metrics=ClipMetricsConfig(audio=False))
    report = evaluate_reconstruction(Contrast(), [native_clip], cfg=cfg)
    row = report.per_clip.filter(report.per_clip["model"] == "contrast").row(0, named=True)
    want_ssim, want_psnr = _skimage(_contrast(native_clip.video), native_clip.video)
    assert row["ssim"] == pytest.approx(want_ssim, abs=2e-6) and row["psnr"] == pytest.approx(want_psnr, abs=1e-6)
    mean = report.per_clip.filter(report.per_clip["model"] == "baseline:mean_frame+silence").row(0, named=True)
    mean_video = native_clip.video.float().mean(0, keepdim=True).round().to(torch.uint8).expand_as(native_clip.video)
    assert mean["ssim"] == pytest.approx(_skimage(mean_video, native_clip.video)[0], abs=2e-6)
