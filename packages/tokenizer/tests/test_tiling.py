"""KV-cached temporal tiles == one full attention under the same block-causal (banded) mask."""

from __future__ import annotations

import pytest
import torch

from avtok.tokenizer import TilingConfig

TILE = TilingConfig(tile_frames=8, cache_tiles=1)  # 8 frames = 2 latent frames per tile


def _reference_mask(coords: torch.Tensor, latent_frames: int, cache_tiles: int | None) -> torch.Tensor:
    """Written out token by token: i sees j iff j's tile is i's tile or one of the cached ones before it."""
    tile = [int(t) // latent_frames for t in coords[:, 0]]
    window = len(tile) if cache_tiles is None else cache_tiles
    mask = torch.zeros(len(tile), len(tile), dtype=torch.bool)
    for i, ti in enumerate(tile):
        for j, tj in enumerate(tile):
            mask[i, j] = 0 <= ti - tj <= window
    return mask[None, None]  # (1, 1, L, L)


@pytest.mark.parametrize("cache_tiles", [0, 1, None])
def test_tiled_encode_decode_equal_masked_full_attention(tiny, concert_small, cache_tiles) -> None:
    model = tiny()
    tiling = TilingConfig(tile_frames=8, cache_tiles=cache_tiles)
    out = model.encode(concert_small, tiling=tiling)  # 24 frames → 6 latent frames → 3 tiles
    packed = model.patchify(concert_small)
    coords, layouts = packed.coords, tuple(packed.items)
    mask = _reference_mask(coords, 2, cache_tiles)
    with torch.no_grad():
        x = model.patch_embed(packed.features) + model.enc_pos(coords, layouts, packed.cu_seqlens)
        h = model.encoder(x[None], coords, mask=mask)[0]
        ref = model.latent_head(h)
        assert torch.allclose(out.latents, ref.latents, atol=2e-5)
        assert torch.allclose(out.semantic, model.semantic(h, packed.cu_seqlens), atol=2e-5)
        y = model.latent_embed(ref.latents) + model.dec_pos(coords, layouts, packed.cu_seqlens)
        ref_pix = model.to_pixels(model.decoder(y[None], coords, mask=mask)[0])
        assert torch.allclose(model.decode_patches(out, tiling=tiling), ref_pix, atol=2e-5)
    # The tiles really are restricted: the result differs from whole-clip attention.
    full = model.encode(concert_small, tiling=None)
    assert not torch.allclose(full.latents, out.latents, atol=1e-3)


def test_single_tile_equals_full_attention(tiny, concert) -> None:
    model = tiny()
    tiled = model.encode(concert, tiling=TilingConfig(tile_frames=16))  # 8 frames fit in one tile
    assert torch.allclose(tiled.latents, model.encode(concert, tiling=None).latents, atol=2e-5)


def test_tiles_never_cross_samples(tiny, concert_small, bunny_frame) -> None:
    model = tiny(tiling=TILE)  # the config's tiling is the default for encode/decode
    packed = model.encode([concert_small, bunny_frame])
    for i, x in enumerate([concert_small, bunny_frame]):
        alone = model.encode(x)
        assert torch.allclose(packed.split(packed.latents)[i], alone.latents, atol=2e-5)
        assert torch.allclose(model.decode(packed)[i], model.decode(alone)[0], atol=2e-5)


def test_tiled_output_shape_matches_input(tiny, concert_small) -> None:
    model = tiny(tiling=TILE)
    video = concert_small[:21]  # a partial last tile and a partial last patch
    (rec,) = model.decode(model.encode(video))
    assert rec.shape == video.shape


def test_tile_frames_must_be_whole_latent_frames(tiny, concert_small) -> None:
    with pytest.raises(ValueError, match="multiple of the temporal patch"):
        tiny().encode(concert_small, tiling=TilingConfig(tile_frames=6))
    with pytest.raises(ValueError, match="tile_frames"):
        TilingConfig(tile_frames=0)
