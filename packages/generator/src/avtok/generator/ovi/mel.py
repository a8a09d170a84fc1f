"""Ovi's 16 kHz log-mel front end (MMAudio ``get_mel_converter('16k')``), built on avtok.media_io.spectral.

The STFT and the mel magnitude are media-io's HiFi-GAN-style ones (reflect pad ``(n_fft - hop) / 2``,
periodic Hann, ``center=False``, ``sqrt(re² + im² + 1e-9)``, Slaney mel scale and area norm), at
16 kHz with fmax 8 kHz. Ovi's front end differs from media-io's :func:`log_mel` in two ways only:
the waveform is clamped to [-1, 1] first, and the compression is ``log10(clamp(x, 1e-5))`` (not ln).
Frames: ``F = N // 256``. Computed in float32.
"""

from __future__ import annotations

from torch import Tensor

from avtok.media_io.spectral import MelConfig, mel_basis, mel_magnitude, stft

__all__ = ["OVI_MEL", "OVI_SAMPLE_RATE", "ovi_log_mel", "ovi_mel_basis"]

OVI_SAMPLE_RATE = 16_000
OVI_MEL = MelConfig(
    sample_rate=OVI_SAMPLE_RATE,
    n_fft=1024,
    hop_length=256,
    win_length=1024,
    n_mels=80,
    f_min=0.0,
    f_max=8000.0,
    clamp_min=1e-5,
)


def ovi_mel_basis() -> Tensor:
    """The (80, 513) Slaney filterbank of the front end (librosa's default ``filters.mel``)."""
    return mel_basis(OVI_MEL)


def ovi_log_mel(wave: Tensor) -> Tensor:
    """log10 mel magnitude (..., 80, N // 256) of a 16 kHz waveform (..., N); samples beyond ±1 are clamped."""
    wave = wave.float().clamp(-1.0, 1.0)
    mel = mel_magnitude(stft(wave, OVI_MEL), OVI_MEL)  # (..., 80, F)
    return mel.clamp_(min=OVI_MEL.clamp_min).log10_()
