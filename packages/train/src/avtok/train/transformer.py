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

__all__ = ["TransformerConfig", "block_params", "LayerKV", "KVCache", "HeadL2Norm", "Attention", "MLP",
           "Block", "Transformer", "make_norm"]


_NUM_AXES = 4  # (t, x, y, z)


@dataclass(kw_only=True)
class TransformerConfig:
    """A stack of pre-norm transformer blocks with 4D RoPE in every attention layer.

    ``rope_axes_dims`` splits the head dim across (t, x, y, z); ``None`` splits it evenly (each part even).
    ``rope_freqs``: ``"avtok"`` rotates pair i of an axis with ``d_a`` dims by ``theta^(-2i/d_a)``;
    ``"atoken"`` (the released AToken models) by ``theta^(-i/head_dim)``. ``norm``: ``"layernorm"`` (affine)
    or ``"rmsnorm"`` (weight only), both with ``norm_eps``. ``bias``: biases of the attention output and MLP
    linears (``qkv_bias`` for the fused q/k/v). ``qk_norm``: q and k L2-normalised per head, times
    ``sqrt(head_dim)`` and a learned ``(heads, head_dim)`` gain (AToken's decoder), before RoPE.
    ``use_rope=False`` turns RoPE off (AToken's 3D Gaussian decoder adds absolute positions instead).
    """

    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_axes_dims: tuple[int, ...] | None = None
    rope_freqs: str = "avtok"
    norm: str = "layernorm"
    bias: bool = True
    qk_norm: bool = False
    use_rope: bool = True

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"TransformerConfig.dim={self.dim} is not divisible by heads={self.heads}; "
                             "pick heads that divide dim")
        dims = self.axes_dims
        if len(dims) != _NUM_AXES or any(d % 2 for d in dims) or sum(dims) > self.head_dim:
            raise ValueError(f"TransformerConfig.rope_axes_dims={dims}: need {_NUM_AXES} even sizes summing "
                             f"to at most head_dim={self.head_dim}")
        if self.rope_freqs not in ("avtok", "atoken"):
            raise ValueError(f"TransformerConfig.rope_freqs={self.rope_freqs!r}: choose 'avtok' or 'atoken'")
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"TransformerConfig.norm={self.norm!r}: choose 'layernorm' or 'rmsnorm'")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def axes_dims(self) -> tuple[int, ...]:
        if self.rope_axes_dims is not None:
            return tuple(self.rope_axes_dims)
        per_axis = (self.head_dim // _NUM_AXES) // 2 * 2  # even share of the head dim per axis
        return (per_axis,) * _NUM_AXES

    @property
    def axes_theta(self) -> tuple[float, ...]:
        """Per-axis base for ``avtok.kernels.rope_nd`` (which rotates pair i by ``base^(-2i/d_a)``)."""
        if self.rope_freqs == "avtok":
            return (self.rope_theta,) * _NUM_AXES
        # theta^(-i/head_dim) = (theta^(d_a / (2 head_dim)))^(-2i/d_a)
        return tuple(self.rope_theta ** (d / (2 * self.head_dim)) for d in self.axes_dims)

    @property
    def norm_params(self) -> int:
        return self.dim if self.norm == "rmsnorm" else 2 * self.dim


def _linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def block_params(c: TransformerConfig) -> int:
    d, h = c.dim, c.mlp_hidden
    qkv = _linear(d, 3 * d, c.qkv_bias) + (2 * d if c.qk_norm else 0)  # (heads, head_dim) gain for q and k
    proj = _linear(d, d, c.bias)
    mlp = _linear(d, h, c.bias) + _linear(h, d, c.bias)
    return qkv + proj + mlp + 2 * c.norm_params




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
