"""Audio through the visual tokenizer: a log-mel spectrogram as a grey image, and back.

The AToken-style visual tokenizer has no audio stream. Treating a log-mel as an image (as AudioMAE
does) gives it one, with a latent grid whose width axis is time: a mel ``(80, F)`` becomes an RGB image
``(80, F, 3)`` (the same grey value in every channel) and is patchified like any image, so its latents
lie on a ``(80 / 16, ceil(F / 16))`` grid — 16 mel frames (≈ 0.19 s at 22.05 kHz / hop 256) per column.
That time axis is what the Ovi-style generator needs for its temporally aligned RoPE; the AVTok-style
AV tokenizer's 1D tokens have none.

Normalisation is one fixed global range, the same as the AV tokenizer's default: ``log(1e-5)`` (the
HiFi-GAN vocoder's floor) .. 2.5 → [-1, 1]. Fixed, so nothing has to be fitted or stored with the
weights; a model trained on mel images decodes its own outputs without extra statistics.
"""

from __future__ import annotations

from torch import Tensor

from avtok.media_io import MelNormalizer
from avtok.tokenizer.av.model import MEL_DEFAULT_RANGE

__all__ = ["MEL_IMAGE_RANGE", "mel_to_image", "image_to_mel"]

MEL_IMAGE_RANGE = MEL_DEFAULT_RANGE  # log(1e-5) .. 2.5, the AV tokenizer's default mel range


_NORMALIZER = MelNormalizer(per_bin=False).load_state_dict(
    {"per_bin": False, "eps": 1e-3, "low": MEL_IMAGE_RANGE[0], "high": MEL_IMAGE_RANGE[1]}
)


def mel_to_image(log_mel: Tensor) -> Tensor:
    """Log-mel ``(..., n_mels, F)`` → grey RGB image ``(..., n_mels, F, 3)`` in [-1, 1] (clamped)."""
    if log_mel.ndim < 2 or not log_mel.is_floating_point():
        raise ValueError(
            f"mel_to_image: expected a float log-mel (..., n_mels, frames), got "
            f"{getattr(log_mel, 'dtype', type(log_mel))} of shape {tuple(getattr(log_mel, 'shape', ()))}; "
            "fix: pass avtok.media_io.log_mel(wave)"
        )
    grey = _NORMALIZER.normalize(log_mel)
    return grey.unsqueeze(-1).expand(*grey.shape, 3).contiguous()


def image_to_mel(image: Tensor) -> Tensor:
    """Inverse of :func:`mel_to_image` for a (decoded) image ``(..., n_mels, F, 3)``: the channel mean,
    clamped to [-1, 1], mapped back to log-mel ``(..., n_mels, F)``."""
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(
            f"image_to_mel: expected (..., n_mels, frames, 3), got shape {tuple(image.shape)}; "
            "fix: pass the visual tokenizer's decoded mel image"
        )
    grey = image.float().mean(-1).clamp(-1.0, 1.0)
    return _NORMALIZER.denormalize(grey)
