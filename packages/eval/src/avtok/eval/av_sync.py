"""Audio-video synchronisation without pretrained weights: onset alignment (in the spirit of AV-Align).

Audio onsets (positive spectral flux of a log-mel spectrogram) and video motion energy (mean absolute
difference of consecutive grey frames) are both put on the video frame grid. Two scores:

- ``peak_iou``: AV-Align's measure: peaks of each curve, matched when within ``tolerance_frames``;
  ``matches / (|audio peaks| + |video peaks| - matches)``.
- ``correlation``: Pearson correlation of the two z-scored curves at zero lag, max over lags within
  ``±tolerance_frames`` (a smooth companion that uses every frame, not only peaks).

``onset_alignment`` returns both; ``score`` is their mean (reported as ``av_onset_align``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torchaudio.transforms import MelSpectrogram

from avtok.eval.validation import check_finite, check_min_ndim

__all__ = ["OnsetAlignConfig", "OnsetAlignResult", "audio_onset_envelope", "motion_energy", "onset_alignment"]


@dataclass(kw_only=True, frozen=True)
class OnsetAlignConfig:
    """Onset envelope at 16 kHz, 64 mels, 10 ms hop; peaks must rise ``peak_z`` std above the mean."""

    sample_rate: int = 16000
    n_mels: int = 64
    hop_s: float = 0.01
    tolerance_frames: int = 1
    peak_z: float = 0.5


@dataclass(kw_only=True, frozen=True)
class OnsetAlignResult:
    peak_iou: float
    correlation: float
    audio_peaks: int
    video_peaks: int

    @property
    def score(self) -> float:
        return 0.5 * (self.peak_iou + self.correlation)


@lru_cache(maxsize=4)
def _mel(sample_rate: int, hop: int, n_mels: int) -> MelSpectrogram:
    return MelSpectrogram(sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=n_mels)


def audio_onset_envelope(audio: torch.Tensor, sample_rate: int, fps: float, num_frames: int,
                         cfg: OnsetAlignConfig | None = None) -> torch.Tensor:
    """Onset strength per video frame, (num_frames,): spectral flux of log-mel, max-pooled per frame."""
    cfg = cfg or OnsetAlignConfig()
    check_min_ndim("audio", audio, 1, "(C, N) or (N,)")
    check_finite("audio", audio.float())
    mono = audio.float().reshape(-1, audio.shape[-1]).mean(0)  # (N,)
    if sample_rate != cfg.sample_rate:
        mono = AF.resample(mono, sample_rate, cfg.sample_rate)
    hop = round(cfg.sample_rate * cfg.hop_s)
    mel = _mel(cfg.sample_rate, hop, cfg.n_mels)(mono)  # (M, S)
    logmel = torch.log(mel + 1e-6)
    flux = (logmel[:, 1:] - logmel[:, :-1]).clamp_min(0).mean(0)  # (S-1,)
    flux = F.pad(flux, (1, 0))  # (S,) step s ends at time s * hop_s
    times = torch.arange(flux.numel()) * cfg.hop_s
    frame_idx = (times * fps).floor().long().clamp(0, num_frames - 1)
    env = torch.zeros(num_frames).scatter_reduce(0, frame_idx, flux, reduce="amax")
    return env  # (T,)


def motion_energy(video: torch.Tensor) -> torch.Tensor:
    """Mean |frame_t - frame_{t-1}| of grey frames at <= 64 px, (T,), first entry 0. video: (T, H, W, 3)."""
    check_min_ndim("video", video, 4, "(T, H, W, 3)")
    grey = video.float().mean(-1).unsqueeze(1)  # (T, 1, H, W)
    scale = 64.0 / max(grey.shape[-2:])
    if scale < 1.0:
        grey = F.interpolate(grey, scale_factor=scale, mode="area")
    diff = (grey[1:] - grey[:-1]).abs().flatten(1).mean(1)  # (T-1,)
    return F.pad(diff, (1, 0))


def _peaks(x: torch.Tensor, z: float) -> torch.Tensor:
    """Indices of local maxima rising ``z`` std above the mean."""
    left = F.pad(x, (1, 0), value=float("-inf"))[:-1]
    right = F.pad(x, (0, 1), value=float("-inf"))[1:]
    thresh = x.mean() + z * x.std()
    return torch.nonzero((x > left) & (x >= right) & (x > thresh)).flatten()


def _peak_iou(a: torch.Tensor, v: torch.Tensor, tol: int) -> float:
    if a.numel() == 0 and v.numel() == 0:
        return 0.0
    used = torch.zeros(v.numel(), dtype=torch.bool)
    matches = 0
    for p in a.tolist():
        hit = ((v - p).abs() <= tol) & ~used
        if bool(hit.any()):
            used[int(torch.nonzero(hit)[0])] = True
            matches += 1
    return matches / (a.numel() + v.numel() - matches)


def _best_correlation(a: torch.Tensor, v: torch.Tensor, tol: int) -> float:
    za = (a - a.mean()) / a.std().clamp_min(1e-8)
    zv = (v - v.mean()) / v.std().clamp_min(1e-8)
    best = float("-inf")
    for lag in range(-tol, tol + 1):
        x, y = (za[lag:], zv[: za.numel() - lag]) if lag >= 0 else (za[:lag], zv[-lag:])
        best = max(best, float((x * y).mean()))
    return best


def onset_alignment(video: torch.Tensor, fps: float, audio: torch.Tensor, sample_rate: int,
                    cfg: OnsetAlignConfig | None = None) -> OnsetAlignResult:
    """Score how well audio onsets line up with visual motion. video (T, H, W, 3), audio (C, N)."""
    cfg = cfg or OnsetAlignConfig()
    if video.shape[0] < 4 * (cfg.tolerance_frames + 1):
        raise ValueError(f"video: {video.shape[0]} frames is too short for onset alignment; pass >= 1 s of video")
    motion = motion_energy(video)[1:]  # frame 0 has no predecessor
    onset = audio_onset_envelope(audio, sample_rate, fps, video.shape[0], cfg)[1:]
    pa, pv = _peaks(onset, cfg.peak_z), _peaks(motion, cfg.peak_z)
    return OnsetAlignResult(
        peak_iou=_peak_iou(pa, pv, cfg.tolerance_frames),
        correlation=_best_correlation(onset, motion, cfg.tolerance_frames),
        audio_peaks=int(pa.numel()),
        video_peaks=int(pv.numel()),
    )
