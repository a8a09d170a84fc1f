"""Per-clip full-reference scores of a reconstructed ``AVClip`` against its reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avtok.eval.audio_metrics import mel_l1, mrstft_distance, si_sdr
from avtok.eval.image_metrics import mse, psnr_from_mse, ssim
from avtok.media_io import AVClip

__all__ = ["ClipMetricsConfig", "clip_metrics", "check_clip_pair", "video_metrics"]


@dataclass(kw_only=True, frozen=True)
class ClipMetricsConfig:
    """Which per-clip metrics to compute (video: PSNR, SSIM; audio: SI-SDR, MR-STFT, mel L1)."""

    video: bool = True
    audio: bool = True
    mel: bool = True


def check_clip_pair(pred: AVClip, ref: AVClip, *, name: str = "reconstruction") -> None:
    """Raise unless ``pred`` matches ``ref`` in frame shape, audio shape, fps and sample rate."""
    where = f"{name} of {ref.source or 'clip'}"
    if tuple(pred.video.shape) != tuple(ref.video.shape):
        raise ValueError(f"{where}: video {tuple(pred.video.shape)} != reference {tuple(ref.video.shape)}; "
                         "the model must return as many frames of the same size")
    if tuple(pred.audio.shape) != tuple(ref.audio.shape):
        raise ValueError(f"{where}: audio {tuple(pred.audio.shape)} != reference {tuple(ref.audio.shape)}; "
                         "trim or pad the decoded audio to the input length")
    if abs(pred.fps - ref.fps) > 1e-6 or pred.sample_rate != ref.sample_rate:
        raise ValueError(f"{where}: {pred.fps} fps / {pred.sample_rate} Hz != reference {ref.fps} fps / "
                         f"{ref.sample_rate} Hz; resample the output to the input's rates")


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean())


def video_metrics(pred: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """PSNR of the clip-wide MSE and mean per-frame SSIM of uint8 frames (T, H, W, 3), data range 255.

    The standard definitions (scikit-image's ``peak_signal_noise_ratio`` / ``structural_similarity``
    with ``data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False``). Frames are scored in float32 blocks (``image_metrics``), so
    memory does not grow with the clip's length or frame size.
    """
    # PSNR of the clip-wide MSE: a per-frame mean would be +inf as soon as one frame is exact
    # (repeat-first-frame baseline), hiding the error of all the others.
    out = {"psnr": psnr_from_mse(_mean(mse(pred, ref)), data_range=255.0)}
    small = min(ref.shape[1], ref.shape[2]) < 11  # below the 11-tap Gaussian window
    out["ssim"] = math.nan if small else _mean(ssim(pred, ref, data_range=255.0))
    return out


def clip_metrics(pred: AVClip, ref: AVClip, cfg: ClipMetricsConfig | None = None) -> dict[str, float]:
    """Scores of one clip: PSNR from the clip's MSE, SSIM per frame averaged (both on the uint8 frames,
    data range 255), audio metrics per-channel means."""
    cfg = cfg or ClipMetricsConfig()
    check_clip_pair(pred, ref)
    out: dict[str, float] = {}
    if cfg.video:
        out.update(video_metrics(pred.video, ref.video))  # (T, H, W, 3) uint8
    if cfg.audio and ref.audio.shape[-1] > 0:
        pa, ra = pred.audio, ref.audio  # (C, N)
        out["si_sdr"] = _mean(si_sdr(pa, ra))
        out["mrstft"] = _mean(mrstft_distance(pa, ra)) if ra.shape[-1] >= 1025 else math.nan
        if cfg.mel:
            out["mel_l1"] = _mean(mel_l1(pa, ra, sample_rate=ref.sample_rate))
    return out
