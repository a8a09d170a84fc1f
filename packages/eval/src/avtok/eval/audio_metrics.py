"""Full-reference audio metrics: SI-SDR, multi-resolution STFT distance, mel L1.

Waveforms are ``(..., N)`` float tensors in ``[-1, 1]``; every leading dim (batch, channel) gets its
own value, so a clip's ``(C, N)`` audio gives one value per channel (average for the clip score).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torchaudio.functional as AF

from avtok.eval.validation import check_min_ndim, check_pair

__all__ = ["MRSTFTConfig", "si_sdr", "mrstft_distance", "mel_l1"]


def si_sdr(pred: torch.Tensor, target: torch.Tensor, *, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (Le Roux et al. 2019). pred, target: (..., N) → (...) float64.

    ``alpha = <pred, target> / |target|^2``; SI-SDR = ``10 log10(|alpha target|^2 / |pred - alpha target|^2)``.
    Scaling ``pred`` by any non-zero factor leaves it unchanged. An all-zero ``pred`` (silence) recovers
    nothing of the target and scores ``-inf`` (the 0/0 ratio is not reported as 0 dB); against an
    all-zero ``target`` the metric is undefined and returns NaN.
    """
    check_pair("pred", pred, "target", target)
    check_min_ndim("pred", pred, 1, "(..., N)")
    x, s = pred.double(), target.double()
    if zero_mean:
        x = x - x.mean(-1, keepdim=True)
        s = s - s.mean(-1, keepdim=True)
    alpha = (x * s).sum(-1, keepdim=True) / (s.square().sum(-1, keepdim=True) + eps)
    proj = alpha * s  # (..., N)
    noise = x - proj
    value = 10.0 * torch.log10((proj.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))
    silent = x.abs().amax(-1) == 0
    value = torch.where(silent, torch.full_like(value, float("-inf")), value)
    # A silent target has no signal to recover: SI-SDR is undefined there (NaN), not -inf or +inf.
    return torch.where(s.abs().amax(-1) == 0, torch.full_like(value, float("nan")), value)


@dataclass(kw_only=True, frozen=True)
class MRSTFTConfig:
    """STFT resolutions ``(n_fft, hop, win)``; Hann windows; as in Parallel WaveGAN and DAC."""

    resolutions: tuple[tuple[int, int, int], ...] = field(
        default=((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    )
    eps: float = 1e-7


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])  # (B, N)
    window = torch.hann_window(win, dtype=flat.dtype, device=flat.device)
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=win, window=window, return_complex=True)
    return spec.abs().reshape(*x.shape[:-1], *spec.shape[-2:])  # (..., F, frames)


def mrstft_distance(pred: torch.Tensor, target: torch.Tensor, *, cfg: MRSTFTConfig | None = None) -> torch.Tensor:
    """Multi-resolution STFT distance: mean over resolutions of spectral convergence + log-magnitude L1.

    Spectral convergence ``|‖|S|‖ - ‖|Ŝ|‖|_F / ‖|S|‖_F`` and ``mean |log|S| - log|Ŝ||`` (natural log),
    per resolution, each averaged over the resolutions. pred, target: (..., N) → (...) float64.
    """
    cfg = cfg or MRSTFTConfig()
    check_pair("pred", pred, "target", target)
    longest = max(n for n, _, _ in cfg.resolutions)
    if pred.shape[-1] < longest // 2 + 1:
        raise ValueError(f"pred: {pred.shape[-1]} samples is too short for n_fft={longest}; pass longer audio")
    total = torch.zeros(pred.shape[:-1], dtype=torch.float64)
    for n_fft, hop, win in cfg.resolutions:
        p = _magnitude(pred.float(), n_fft, hop, win).double()  # float32 FFT, float64 reductions
        t = _magnitude(target.float(), n_fft, hop, win).double()
        sc = (t - p).flatten(-2).norm(dim=-1) / t.flatten(-2).norm(dim=-1).clamp_min(cfg.eps)
        log_l1 = (torch.log(t.clamp_min(cfg.eps)) - torch.log(p.clamp_min(cfg.eps))).abs().flatten(-2).mean(-1)
        total = total + sc + log_l1
    return total / len(cfg.resolutions)


def mel_l1(pred: torch.Tensor, target: torch.Tensor, *, sample_rate: int, cfg=None) -> torch.Tensor:
    """Mean |log-mel(pred) - log-mel(target)| with avtok.media_io's ``log_mel`` / ``MelConfig``.

    Audio at another rate is resampled to ``cfg.sample_rate`` first (22.05 kHz, 80 mels by default),
    so the number is comparable across models. pred, target: (..., N) → (...) float64.
    """
    from avtok.media_io import MelConfig, log_mel

    cfg = cfg or MelConfig()
    check_pair("pred", pred, "target", target)
    if sample_rate != cfg.sample_rate:
        pred = AF.resample(pred.float(), sample_rate, cfg.sample_rate)
        target = AF.resample(target.float(), sample_rate, cfg.sample_rate)
    mp, mt = log_mel(pred.float(), cfg), log_mel(target.float(), cfg)  # (..., n_mels, frames)
    return (mp.double() - mt.double()).abs().flatten(-2).mean(-1)
