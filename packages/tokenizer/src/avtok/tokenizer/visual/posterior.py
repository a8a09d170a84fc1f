"""Projection of encoder features to a low-dimensional KL posterior, optionally FSQ-quantized.

AToken: ``z^r = W_r(z)`` with KL regularisation; FSQ (8 groups × 6 dims × 4 levels) quantizes the
posterior *mean* in fp32. FSQ is ``avtok.kernels.FSQ`` (one implementation in the workspace).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avtok.kernels import FSQ

__all__ = ["PosteriorOutput", "LatentHead", "kl_divergence"]

_LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite in fp32 (same clamp as LDM's posterior)


@dataclass(kw_only=True)
class PosteriorOutput:
    latents: Tensor  # (..., C) decoder input: sample / mean, or FSQ codes
    mean: Tensor  # (..., C) float32
    logvar: Tensor  # (..., C) float32
    indices: Tensor | None  # (..., G) int32 with FSQ


class LatentHead(nn.Module):
    """``Linear(dim, 2·C)`` → (mean, logvar); FSQ on the mean when ``fsq`` is given."""

    def __init__(self, dim: int, latent_dim: int, *, fsq: FSQ | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.proj = nn.Linear(dim, 2 * latent_dim)
        self.fsq = fsq

    def forward(self, h: Tensor, *, sample: bool = False) -> PosteriorOutput:
        with torch.autocast(h.device.type, enabled=False):  # the latent space stays fp32
            moments = self.proj(h.float())  # (..., 2C)
        mean, logvar = moments.chunk(2, dim=-1)
        logvar = logvar.clamp(*_LOGVAR_RANGE)
        if self.fsq is not None:
            q = self.fsq(mean)
            return PosteriorOutput(latents=q.codes, mean=mean, logvar=logvar, indices=q.indices)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        return PosteriorOutput(latents=z, mean=mean, logvar=logvar, indices=None)

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """``(..., G)`` int indices → ``(..., C)`` FSQ codes (the decoder input)."""
        if self.fsq is None:
            raise ValueError("indices given but this tokenizer has no FSQ; build it with use_fsq=True "
                             "or decode from continuous latents")
        return self.fsq.indices_to_codes(indices)


def kl_divergence(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over channels, averaged over tokens: a scalar."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)  # (..., C)
    return kl.sum(dim=-1).mean()
