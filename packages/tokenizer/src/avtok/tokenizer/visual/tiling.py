"""KV-cached temporal tiling (AToken Figure 6) for any ``Transformer`` over (t, x, y, z) tokens.

A sample's tokens are split by latent frame into tiles of ``latent_frames`` frames (16 input frames →
4 latent frames with a temporal patch of 4). Tiles run one after another; in every attention layer a
tile attends to itself and to the cached (already rotated) keys/values of the previous
``cache_tiles`` tiles. That is exactly full attention under a block-causal (banded) mask at tile
granularity, but each tile's queries only touch a bounded window, so the cost grows linearly with the
number of frames instead of quadratically, and memory holds one tile's activations plus the cache.
With ``cache_tiles=0`` the tiles are independent chunks with t restarted at 0 (the released AToken
inference path: 16-frame chunks); RoPE is relative, so the restart only changes rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avtok.tokenizer.visual.config import TilingConfig
from avtok.train.transformer import KVCache, Transformer

__all__ = ["tile_ids", "run_tiled", "run_tiled_sample"]


def tile_ids(coords: Tensor, latent_frames: int) -> Tensor:
    """``(L, 4)`` coords → ``(L,)`` tile index of each token (its latent frame // ``latent_frames``)."""
    if latent_frames <= 0:
        raise ValueError(f"latent_frames={latent_frames} must be positive")
    return torch.div(coords[:, 0], latent_frames, rounding_mode="floor")


def run_tiled_sample(net: Transformer, x: Tensor, coords: Tensor, *, tiling: TilingConfig,
                     latent_frames: int) -> Tensor:
    """One sample ``(L, D)`` → ``(L, D)``, tile by tile with a KV cache (tokens may come in any order)."""
    tiles = tile_ids(coords, latent_frames)  # (L,)
    cache = KVCache.for_depth(len(net.blocks), max_tiles=tiling.cache_tiles)
    out = torch.empty(x.shape[:-1] + (net.config.dim,), dtype=x.dtype, device=x.device)
    for tile in torch.unique(tiles, sorted=True).tolist():  # earlier tiles first: the cache is causal
        idx = (tiles == tile).nonzero().squeeze(1)  # (L_tile,)
        tile_coords = coords[idx]
        if tiling.cache_tiles == 0:  # independent chunks (AToken's inference): t restarts at 0 in each
            tile_coords = tile_coords - torch.tensor([tile * latent_frames, 0, 0, 0], device=coords.device)
        h = net(x[idx][None], tile_coords, cache=cache)[0]  # (L_tile, D)
        out = out.to(h.dtype)  # autocast may change the dtype of the first tile
        out[idx] = h
    return out


def run_tiled(net: Transformer, x: Tensor, coords: Tensor, cu_seqlens: Tensor, *, tiling: TilingConfig,
              latent_frames: int) -> Tensor:
    """Packed ``(ΣL, D)`` → ``(ΣL, D)``: each sample tiled on its own (tiles never cross samples)."""
    bounds = cu_seqlens.tolist()
    parts = [run_tiled_sample(net, x[a:b], coords[a:b], tiling=tiling, latent_frames=latent_frames)
             for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return torch.cat(parts)  # (ΣL, D)
