"""Generic pre-norm transformer with N-D RoPE in every attention layer and an optional KV cache.

Shared by the AToken-style visual tokenizer, the AV tokenizer and the generators. Attention and RoPE come
from ``avtok.kernels`` (one implementation of each); this module only wires them.

Token layout: ``x`` is ``(B, L, D)``. Packed variable-size samples use ``B = 1`` with ``cu_seqlens``
(block-diagonal attention, no padding). Coordinates are ``(L, A)`` or ``(B, L, A)`` integers, here
``A = 4`` for ``(t, x, y, z)``; an axis that is always 0 (``z`` for images/video) rotates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from avtok.kernels import attention, rope_nd
from avtok.tokenizer.config import TransformerConfig
from einops import rearrange
from torch import Tensor, nn

__all__ = ["LayerKV", "KVCache", "HeadL2Norm", "Attention", "MLP", "Block", "Transformer", "make_norm"]


@dataclass(kw_only=True)
class LayerKV:
    """Keys/values (after RoPE) of the most recent tiles seen by one attention layer.

    ``max_tiles`` bounds how many previous tiles stay cached (``None``: all of them).
    """

    max_tiles: int | None = None
    keys: list[Tensor] = field(default_factory=list)  # each (B, H, L_tile, Dh)
    values: list[Tensor] = field(default_factory=list)

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Return cached + current keys/values, then cache the current ones for the next tile."""
        k_all = torch.cat([*self.keys, k], dim=2)  # (B, H, L_cache + L, Dh)
        v_all = torch.cat([*self.values, v], dim=2)
        self.keys.append(k)
        self.values.append(v)
        if self.max_tiles is not None:
            keep = len(self.keys) - self.max_tiles
            del self.keys[:keep], self.values[:keep]
        return k_all, v_all

    @property
    def num_tokens(self) -> int:
        return sum(k.shape[2] for k in self.keys)


@dataclass(kw_only=True)
class KVCache:
    """One ``LayerKV`` per block of a ``Transformer`` (create with ``KVCache.for_depth``)."""

    layers: list[LayerKV]

    @classmethod
    def for_depth(cls, depth: int, *, max_tiles: int | None = None) -> KVCache:
        return cls(layers=[LayerKV(max_tiles=max_tiles) for _ in range(depth)])


def make_norm(cfg: TransformerConfig) -> nn.Module:
    """The block / final norm of ``cfg``: affine LayerNorm or weight-only RMSNorm (``cfg.norm_eps``)."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)


class HeadL2Norm(nn.Module):
    """Per-head ``normalize(x) * sqrt(head_dim) * gain`` on ``(B, H, L, Dh)`` (AToken's q/k norm), in fp32."""

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.scale = head_dim**0.5
        self.gain = nn.Parameter(torch.ones(heads, head_dim))  # (H, Dh)

    def forward(self, x: Tensor) -> Tensor:
        y = nn.functional.normalize(x.float(), dim=-1) * (self.gain.float()[:, None] * self.scale)
        return y.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q and k over all coordinate axes."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.axes_dims = cfg.axes_dims
        self.theta = cfg.axes_theta
        self.use_rope = cfg.use_rope
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=cfg.qkv_bias)
        self.q_norm = HeadL2Norm(cfg.heads, cfg.head_dim) if cfg.qk_norm else None
        self.k_norm = HeadL2Norm(cfg.heads, cfg.head_dim) if cfg.qk_norm else None
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=cfg.bias)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        *,
        cu_seqlens: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKV | None = None,
        softcap: float | None = None,
    ) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.use_rope:
            q = rope_nd(q, coords, axes_dims=self.axes_dims, theta=self.theta)  # (B, H, L, Dh)
            k = rope_nd(k, coords, axes_dims=self.axes_dims, theta=self.theta)
        if cache is not None:
            # RoPE uses absolute coordinates, so rotated keys stay valid for later tiles.
            k, v = cache.extend(k, v)  # (B, H, L_cache + L, Dh)
        o = attention(q, k, v, mask=mask, cu_seqlens=cu_seqlens, softcap=softcap)  # (B, H, L, Dh)
        return self.proj(rearrange(o, "b h l d -> b l (h d)"))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, *, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))`` (SigLIP layout)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg.dim, cfg.mlp_hidden, bias=cfg.bias)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        *,
        cu_seqlens: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKV | None = None,
        softcap: float | None = None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), coords, cu_seqlens=cu_seqlens, mask=mask, cache=cache,
                          softcap=softcap)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """``depth`` blocks and a final norm (``cfg.norm``): ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = make_norm(cfg)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        *,
        cu_seqlens: Tensor | None = None,
        mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        if cache is not None and len(cache.layers) != len(self.blocks):
            depth = len(self.blocks)
            raise ValueError(f"cache has {len(cache.layers)} layers but the transformer has {depth} blocks; "
                             f"build it with KVCache.for_depth({depth})")
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else cache.layers[i]
            x = block(x, coords, cu_seqlens=cu_seqlens, mask=mask, cache=layer_cache)
        return self.norm(x)
