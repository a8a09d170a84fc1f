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
from einops import rearrange
from torch import Tensor, nn

from avtok.kernels import attention, rope_nd

__all__ = ["TransformerConfig", "block_params", "LayerKV", "KVCache", "Attention", "MLP", "Block", "Transformer"]


_NUM_AXES = 4  # (t, x, y, z)


@dataclass(kw_only=True)
class TransformerConfig:
    """A stack of pre-norm transformer blocks with 4D RoPE in every attention layer.

    ``rope_axes_dims`` splits the head dim across (t, x, y, z); ``None`` splits it evenly (each part even).
    """

    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_axes_dims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"TransformerConfig.dim={self.dim} is not divisible by heads={self.heads}; "
                             "pick heads that divide dim")
        dims = self.axes_dims
        if len(dims) != _NUM_AXES or any(d % 2 for d in dims) or sum(dims) > self.head_dim:
            raise ValueError(f"TransformerConfig.rope_axes_dims={dims}: need {_NUM_AXES} even sizes summing "
                             f"to at most head_dim={self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def axes_dims(self) -> tuple[int, ...]:
        if self.rope_axes_dims is not None:
            return tuple(self.rope_axes_dims)
        per_axis = (self.head_dim // _NUM_AXES) // 2 * 2  # even share of the head dim per axis
        return (per_axis,) * _NUM_AXES


def block_params(c: TransformerConfig) -> int:
    d, h = c.dim, c.mlp_hidden
    qkv = 3 * d * d + (3 * d if c.qkv_bias else 0)
    proj = d * d + d
    mlp = d * h + h + h * d + d
    norms = 2 * (2 * d)  # two LayerNorms with weight and bias
    return qkv + proj + mlp + norms




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


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q and k over all coordinate axes."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.axes_dims = cfg.axes_dims
        self.theta = cfg.rope_theta
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        *,
        cu_seqlens: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKV | None = None,
    ) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        q = rope_nd(q, coords, axes_dims=self.axes_dims, theta=self.theta)  # (B, H, L, Dh)
        k = rope_nd(k, coords, axes_dims=self.axes_dims, theta=self.theta)
        if cache is not None:
            # RoPE uses absolute coordinates, so rotated keys stay valid for later tiles.
            k, v = cache.extend(k, v)  # (B, H, L_cache + L, Dh)
        o = attention(q, k, v, mask=mask, cu_seqlens=cu_seqlens)  # (B, H, L, Dh)
        return self.proj(rearrange(o, "b h l d -> b l (h d)"))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))`` (SigLIP layout)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg.dim, cfg.mlp_hidden)

    def forward(
        self,
        x: Tensor,
        coords: Tensor,
        *,
        cu_seqlens: Tensor | None = None,
        mask: Tensor | None = None,
        cache: LayerKV | None = None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), coords, cu_seqlens=cu_seqlens, mask=mask, cache=cache)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """``depth`` blocks and a final LayerNorm: ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)

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
