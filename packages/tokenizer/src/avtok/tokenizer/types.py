"""Data crossing the tokenizer boundary (used by the AV tokenizer, the generators and avtok.eval)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:  # media-io's Patches is only a type here
    from avtok.media_io import PatchLayout

__all__ = ["TokenizerOutput"]


@dataclass(kw_only=True)
class TokenizerOutput:
    """Tokens of a packed batch of N samples (ΣL tokens in all, no padding).

    Per-sample slices are ``cu_seqlens[i]:cu_seqlens[i+1]`` along the token axis.

    - ``latents``: ``(ΣL, C)`` float — what the decoder consumes: the posterior sample (or mean), or the
      FSQ codes in [-1, 1] when FSQ is on. ``None`` when only ``indices`` are kept.
    - ``mean`` / ``logvar``: ``(ΣL, C)`` float32 KL-posterior parameters (``None`` when not kept).
    - ``indices``: ``(ΣL, G)`` int32 FSQ indices (G groups), or ``None`` without FSQ.
    - ``coords``: ``(ΣL, 4)`` int64 ``(t, x, y, z)`` latent-grid coordinates.
    - ``cu_seqlens``: ``(N + 1,)`` int32 cumulative token counts.
    - ``semantic``: ``(N, D_sem)`` pooled + projected embedding for text alignment, or ``None`` (AToken's
      ``image_feat`` for a converted AToken model: attention-pooled, L2-normalised).
    - ``hidden``: ``(ΣL, D)`` encoder output after its final norm (AToken's ``x_no_proj``), or ``None``.
    - ``layouts``: per-sample media-io ``PatchLayout`` (grid, patch size, original shape, modality), which
      ``decode`` needs to unpatchify.
    - ``valid``: ``(ΣL, t·p·p)`` bool, True where a patch position holds real input (False on the
      temporal padding of images and the border padding of odd sizes): the mask for per-pixel losses.
    """

    latents: Tensor | None
    mean: Tensor | None = None
    logvar: Tensor | None = None
    indices: Tensor | None = None
    coords: Tensor
    cu_seqlens: Tensor
    semantic: Tensor | None = None
    hidden: Tensor | None = None
    layouts: tuple[PatchLayout, ...]
    valid: Tensor

    @property
    def num_samples(self) -> int:
        return int(self.cu_seqlens.numel()) - 1

    def split(self, tensor: Tensor) -> list[Tensor]:
        """Split a ``(ΣL, ...)`` tensor of this batch into per-sample ``(L_i, ...)`` tensors."""
        bounds = self.cu_seqlens.tolist()
        return [tensor[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
