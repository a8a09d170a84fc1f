"""Semantic head: attention pooling of encoder features per sample, then a projection for alignment.

SigLIP's MAP head (a learned probe query cross-attends to the tokens, then LayerNorm + residual MLP),
followed by ``W_s`` to the text-embedding width (AToken §3.1). Works on packed batches: the probe of
sample i only sees sample i's tokens.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from avtok.kernels import attention
from avtok.train.transformer import MLP

__all__ = ["AttentionPool", "SemanticHead"]


def _sample_mask(cu_seqlens: Tensor, total: int) -> Tensor:
    """(N, ΣL) bool: query i may attend to the tokens of sample i only."""
    token = torch.arange(total, device=cu_seqlens.device)  # (ΣL,)
    start, end = cu_seqlens[:-1, None], cu_seqlens[1:, None]  # (N, 1)
    return (token >= start) & (token < end)


class AttentionPool(nn.Module):
    """Multi-head attention pooling with one learned probe: ``(ΣL, D) -> (N, D)``."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, *, eps: float = 1e-6,
                 bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.probe = nn.Parameter(torch.randn(1, dim) * dim**-0.5)
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)  # fused [k | v]
        self.out = nn.Linear(dim, dim, bias=bias)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden, bias=bias)

    def forward(self, h: Tensor, cu_seqlens: Tensor) -> Tensor:
        n = cu_seqlens.numel() - 1
        q = rearrange(self.q(self.probe).expand(n, -1), "n (h d) -> 1 h n d", h=self.heads)  # (1, H, N, Dh)
        k, v = rearrange(self.kv(h), "l (two h d) -> two 1 h l d", two=2, h=self.heads)  # (1, H, ΣL, Dh)
        mask = _sample_mask(cu_seqlens.long(), h.shape[0])[None, None]  # (1, 1, N, ΣL)
        pooled = rearrange(attention(q, k, v, mask=mask), "1 h n d -> n (h d)")  # (N, D)
        pooled = self.out(pooled)
        return pooled + self.mlp(self.norm(pooled))


class SemanticHead(nn.Module):
    """Attention pooling then ``Linear(dim, out_dim)``: ``(ΣL, D) -> (N, out_dim)``.

    ``proj=False`` keeps the pooled feature (``out_dim`` = dim; AToken's ``image_feat``); ``normalize``
    L2-normalises the result (AToken's ``inference`` does).
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int, out_dim: int, *, proj: bool = True,
                 normalize: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.pool = AttentionPool(dim, heads, mlp_hidden, bias=bias)
        self.proj = nn.Linear(dim, out_dim) if proj else None
        self.normalize = normalize

    def forward(self, h: Tensor, cu_seqlens: Tensor) -> Tensor:
        out = self.pool(h, cu_seqlens)
        if self.proj is not None:
            out = self.proj(out)
        return nn.functional.normalize(out, dim=-1) if self.normalize else out
