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
    """``Linear(dim, 2·C)`` → (mean, logvar); FSQ on the mean when ``fsq`` is given.

    ``bias`` / ``clamp_logvar``: the released AToken models have neither (their logvar is used as is).
    """

    def __init__(self, dim: int, latent_dim: int, *, fsq: FSQ | None = None, bias: bool = True,
                 clamp_logvar: bool = True) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.proj = nn.Linear(dim, 2 * latent_dim, bias=bias)
        self.fsq = fsq
        self.clamp_logvar = clamp_logvar

    def forward(self, h: Tensor, *, sample: bool = False, noise: Tensor | None = None) -> PosteriorOutput:
        """``sample``: ``mean + exp(logvar / 2) * noise`` with ``noise`` (default: ``randn_like(mean)``, the
        global RNG, as AToken draws it); otherwise the mean. FSQ always quantizes the mean."""
        with torch.autocast(h.device.type, enabled=False):  # the latent space stays fp32
            moments = self.proj(h.float())  # (..., 2C)
        mean, logvar = moments.chunk(2, dim=-1)
        if self.clamp_logvar:
            logvar = logvar.clamp(*_LOGVAR_RANGE)
        if self.fsq is not None:
            q = self.fsq(mean)
            return PosteriorOutput(latents=q.codes, mean=mean, logvar=logvar, indices=q.indices)
        if not sample:
            return PosteriorOutput(latents=mean, mean=mean, logvar=logvar, indices=None)
        if noise is None:
            noise = torch.randn_like(mean)
        elif noise.shape != mean.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, the posterior {tuple(mean.shape)}; "
                             "pass one N(0, 1) value per token and latent channel")
        z = mean + torch.exp(0.5 * logvar) * noise.to(mean)
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
