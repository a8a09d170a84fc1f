"""Per-clip full-reference scores of a reconstructed ``AVClip`` against its reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avtok.eval.audio_metrics import mel_l1, mrstft_distance, si_sdr
from avtok.eval.image_metrics import psnr, ssim
from avtok.media_io import AVClip

__all__ = ["ClipMetricsConfig", "clip_metrics", "check_clip_pair"]


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


def clip_metrics(pred: AVClip, ref: AVClip, cfg: ClipMetricsConfig | None = None) -> dict[str, float]:
    """Scores of one clip: PSNR from the clip's MSE, SSIM per frame averaged, audio metrics per-channel means."""
    cfg = cfg or ClipMetricsConfig()
    check_clip_pair(pred, ref)
    out: dict[str, float] = {}
    if cfg.video:
        pv, rv = pred.video_float(), ref.video_float()  # (T, H, W, 3) in [-1, 1]
        # PSNR of the clip-wide MSE: a per-frame mean would be +inf as soon as one frame is exact
        # (repeat-first-frame baseline), hiding the error of all the others.
        out["psnr"] = _mean(psnr(pv.flatten(0, 1), rv.flatten(0, 1)))  # (T*H, W, 3) as one image
        out["ssim"] = _mean(ssim(pv, rv)) if min(ref.height, ref.width) >= 11 else math.nan
    if cfg.audio and ref.audio.shape[-1] > 0:
        pa, ra = pred.audio, ref.audio  # (C, N)
        out["si_sdr"] = _mean(si_sdr(pa, ra))
        out["mrstft"] = _mean(mrstft_distance(pa, ra)) if ra.shape[-1] >= 1025 else math.nan
        if cfg.mel:
            out["mel_l1"] = _mean(mel_l1(pa, ra, sample_rate=ref.sample_rate))
    return out
