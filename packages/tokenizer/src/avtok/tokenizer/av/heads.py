"""Optional training hooks of the AV tokenizer: representation alignment (REPA) and the AR prior.

- ``AlignHead``: an MLP from the continuous tokens (encoder outputs at the latent-query positions,
  before the low-dimensional FSQ bottleneck) to the feature width of a frozen feature network;
  ``alignment_loss`` is ``1 - cos`` against features the caller supplies (REPA's negative cosine,
  shifted to be >= 0).
- ``ARPrior``: a small causal transformer that reads the FSQ codes shifted right (a learned BOS first)
  and returns next-token logits over the unified codebook. It reads *codes* rather than index embeddings,
  so a loss on its logits reaches the encoder through FSQ's straight-through gradient (LARP's AR prior);
  the loss itself belongs to the training code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avtok.kernels import build_attention_mask
from avtok.train.transformer import Transformer, TransformerConfig

__all__ = ["AlignHead", "ARPrior", "alignment_loss"]


class AlignHead(nn.Module):
    """``Linear(D, H) → SiLU → Linear(H, F)`` applied per token: ``(B, N, D) → (B, N, F)``."""

    def __init__(self, dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1(tokens)))


def alignment_loss(projected: Tensor, target: Tensor, *, name: str = "target") -> Tensor:
    """Mean ``1 - cos`` between projected tokens ``(B, N, F)`` and frozen features.

    ``target`` is ``(B, N, F)`` (one feature per token) or ``(B, F)`` (one clip-level feature, compared
    with the mean of the projected tokens). Returns a scalar in [0, 2].
    """
    if target.ndim == 2 and target.shape == (projected.shape[0], projected.shape[2]):
        pred = projected.mean(dim=1)  # (B, F)
    elif target.shape == projected.shape:
        pred = projected  # (B, N, F)
    else:
        raise ValueError(f"alignment {name}: features of shape {tuple(target.shape)} do not match the "
                         f"projected tokens {tuple(projected.shape)}; fix: pass (B, F) clip features or "
                         "(B, N, F) per-token features (pool/resample your feature map to N tokens)")
    cos = F.cosine_similarity(pred.float(), target.detach().float(), dim=-1)
    return (1.0 - cos).mean()


class ARPrior(nn.Module):
    """Causal transformer over the token sequence: codes ``(B, N, C)`` → next-token logits ``(B, N, K)``.

    Position ``i`` sees the BOS vector and codes ``0 .. i-1`` and predicts index ``i``. Positions are
    RoPE coordinates on the t axis (``positions``), so a video-only or audio-only sequence keeps the
    positions its tokens have in the joint sequence.
    """

    def __init__(self, cfg: TransformerConfig, *, code_dim: int, codebook_size: int) -> None:
        super().__init__()
        self.embed = nn.Linear(code_dim, cfg.dim)
        self.bos = nn.Parameter(torch.zeros(cfg.dim))
        self.net = Transformer(cfg)
        self.head = nn.Linear(cfg.dim, codebook_size)

    def forward(self, codes: Tensor, positions: Tensor) -> Tensor:
        b, n, _ = codes.shape
        x = self.embed(codes.to(self.embed.weight.dtype))  # (B, N, Dp)
        x = torch.cat([self.bos.expand(b, 1, -1), x[:, :-1]], dim=1)  # shift right: (B, N, Dp)
        coords = torch.zeros(n, 4, device=codes.device)
        coords[:, 0] = positions.to(coords)  # (N, 4): 1D position on the t axis
        # the shared Transformer takes a bool mask; kernels builds the causal one (True = attend)
        causal = build_attention_mask(n, n, causal=True, device=codes.device)  # (N, N)
        return self.head(self.net(x, coords, mask=causal))  # (B, N, K)
