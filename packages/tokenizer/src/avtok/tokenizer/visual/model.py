"""AToken-style visual tokenizer: sparse 4D patches → transformer encoder → KL/FSQ latents → decoder.

Images and videos of any size are patchified by ``avtok.media_io`` (4×16×16 space-time patches, images
zero-padded to 4 frames), packed into one token sequence without padding, and encoded with attention
restricted to each sample. Every attention layer applies 4D RoPE over ``(t, x, y, z)``; ``z`` is 0 for
images and video, so 3D assets only add tokens with non-zero ``z`` — no change to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from avtok.kernels import FSQ
from avtok.media_io import AVClip, PackedPatches, PatchLayout, pack, patchify, unpack, unpatchify
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual.config import TilingConfig, VisualTokenizerConfig, resolve_config
from avtok.tokenizer.visual.posterior import LatentHead
from avtok.tokenizer.visual.semantic import SemanticHead
from avtok.tokenizer.visual.tiling import run_tiled
from avtok.train.pretrained import from_pretrained, register_model
from avtok.train.transformer import Transformer

__all__ = ["PosEmbed2D", "VisualTokenizer", "build_tokenizer", "center_crop_to_patch", "Visual"]

Visual = Tensor | AVClip  # video (T, H, W, C) / image (H, W, C) float in [-1, 1], or an AVClip


class PosEmbed2D(nn.Module):
    """Learnable ``g×g`` 2D position table, bilinearly resized to each sample's (x, y) grid (NaFlex).

    ``coords`` are in the model's axis order (``row_col``: x is the patch row, as in AToken); ``antialias``
    resizes like AToken (``F.interpolate(..., antialias=True)``, in fp32).
    """

    def __init__(self, grid: int, dim: int, *, antialias: bool = False, row_col: bool = False) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(dim, grid, grid) * 0.02)  # (D, g, g) over (x, y)
        self.antialias = antialias
        self.row_col = row_col

    def forward(self, coords: Tensor, layouts: Sequence[PatchLayout], cu_seqlens: Tensor) -> Tensor:
        out = []
        for layout, (a, b) in zip(layouts, _bounds(cu_seqlens), strict=True):
            c = coords[a:b]  # (L_i, 4)
            nx, ny = _xy_extent(layout)
            size = (ny, nx) if self.row_col else (nx, ny)
            table = F.interpolate(self.table[None].float(), size=size, mode="bilinear", align_corners=False,
                                  antialias=self.antialias)[0].to(self.table.dtype)
            out.append(table[:, c[:, 1], c[:, 2]].T)  # (L_i, D)
        return torch.cat(out)  # (ΣL, D)


def _bounds(cu_seqlens: Tensor) -> list[tuple[int, int]]:
    cu = cu_seqlens.tolist()
    return list(zip(cu[:-1], cu[1:], strict=True))


def _sample_ids(cu_seqlens: Tensor) -> Tensor:
    """(N+1,) cumulative lengths → (ΣL,) sample index of every token."""
    n = cu_seqlens.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=cu_seqlens.device), cu_seqlens.diff().long())


def _xy_extent(layout: PatchLayout) -> tuple[int, int]:
    """Number of patch positions along x and y (media-io grid is (gt, gh, gw); x runs along width)."""
    _, gh, gw = layout.grid
    return gw, gh


def center_crop_to_patch(media: Tensor, patch: tuple[int, int, int]) -> Tensor:
    """AToken's preprocessing: H, W centre-cropped to multiples of the patch (offset ``(H - H16) // 2``) and a
    video's T cut to a multiple of the temporal patch (a shorter video is zero-padded to one patch)."""
    pt, ph, pw = patch
    h, w = media.shape[-3], media.shape[-2]
    h2, w2 = h // ph * ph, w // pw * pw
    if h2 == 0 or w2 == 0:
        raise ValueError(f"media of {h}x{w} pixels is smaller than one {ph}x{pw} patch; pass a larger input")
    top, left = (h - h2) // 2, (w - w2) // 2
    media = media[..., top:top + h2, left:left + w2, :]
    if media.ndim == 4 and media.shape[0] >= pt:
        media = media[: media.shape[0] // pt * pt]
    elif media.ndim == 4:  # a short clip stays a clip of pt frames (zeros = mid grey), as upstream decodes it
        media = torch.cat([media, media.new_zeros((pt - media.shape[0], *media.shape[1:]))])
    return media


def _as_float_media(item: Visual, index: int, channels: int) -> Tensor:
    if isinstance(item, AVClip):
        return item.video_float()
    if not isinstance(item, Tensor) or not item.is_floating_point():
        kind = getattr(item, "dtype", type(item).__name__)
        raise TypeError(f"inputs[{index}]: expected a float tensor in [-1, 1] or an AVClip, got {kind}; "
                        "fix: convert uint8 frames with AVClip.video_float() or x.float() / 127.5 - 1")
    if item.ndim not in (3, 4) or item.shape[-1] != channels:
        raise ValueError(f"inputs[{index}]: expected an image (H, W, {channels}) or a video "
                         f"(T, H, W, {channels}), got shape {tuple(item.shape)}; fix: put channels last")
    return item


class VisualTokenizer(nn.Module):
    """Encoder, KL/FSQ latent head, semantic head and decoder of the AToken tokenizer."""

    kind = "atoken-visual"

    def __init__(self, config: VisualTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        e, d = config.encoder, config.decoder
        self.patch_embed = nn.Linear(config.patch_dim, e.dim, bias=e.bias)
        self.enc_pos = self._pos_embed(e.dim)
        self.encoder = Transformer(e)
        fsq = FSQ(levels=config.fsq_levels, num_groups=config.fsq_groups) if config.use_fsq else None
        self.latent_head = LatentHead(e.dim, config.latent_dim, fsq=fsq, bias=config.posterior_bias,
                                      clamp_logvar=config.logvar_clamp)
        self.semantic = SemanticHead(e.dim, e.heads, config.semantic_mlp_hidden or e.mlp_hidden,
                                     config.semantic_dim, proj=config.semantic_proj,
                                     normalize=config.semantic_normalize, bias=e.bias)
        self.latent_embed = nn.Linear(config.latent_dim, d.dim, bias=d.bias)
        self.dec_pos = self._pos_embed(d.dim)
        self.decoder = Transformer(d)
        self.to_pixels = nn.Linear(d.dim, config.patch_dim, bias=d.bias)

    def _pos_embed(self, dim: int) -> PosEmbed2D | None:
        c = self.config
        if not c.pos_embed_grid:
            return None
        return PosEmbed2D(c.pos_embed_grid, dim, antialias=c.pos_embed_antialias,
                          row_col=c.xy_order == "row_col")

    def model_coords(self, coords: Tensor) -> Tensor:
        """media-io ``(t, x=column, y=row, z)`` → the axis order the model's RoPE and table use."""
        return coords[:, [0, 2, 1, 3]] if self.config.xy_order == "row_col" else coords

    # ----------------------------------------------------------------- patching
    def patchify(self, inputs: Visual | Sequence[Visual]) -> PackedPatches:
        """One sample or a list (mixed images/videos, any sizes) → one packed token sequence."""
        items = [inputs] if isinstance(inputs, (Tensor, AVClip)) else list(inputs)
        if not items:
            raise ValueError("inputs is empty; pass at least one image or video")
        ch = self.config.in_channels
        media = [_as_float_media(x, i, ch) for i, x in enumerate(items)]
        if self.config.crop_to_patch:
            media = [center_crop_to_patch(x, self.config.patch) for x in media]
        return pack([patchify(x, patch=self.config.patch) for x in media])

    # ----------------------------------------------------------------- encoder
    def encode(
        self,
        inputs: Visual | Sequence[Visual],
        *,
        sample: bool = False,
        noise: Tensor | None = None,
        tiling: TilingConfig | None | str = "config",
    ) -> TokenizerOutput:
        """Images/videos → latents (+ FSQ indices), coordinates and semantic embeddings.

        ``sample`` draws from the KL posterior (training; AToken's So/C inference also samples), with the
        N(0, 1) draw ``noise`` ``(ΣL, C)`` if given; otherwise the mean is used. ``tiling`` selects temporal
        tiles (``"config"``: the config's setting; ``None``: whole-clip attention).
        """
        return self.encode_packed(self.patchify(inputs), sample=sample, noise=noise, tiling=tiling)

    def encode_packed(self, packed: PackedPatches, *, sample: bool = False, noise: Tensor | None = None,
                      tiling: TilingConfig | None | str = "config") -> TokenizerOutput:
        tiling = self.config.tiling if tiling == "config" else tiling
        layouts = tuple(packed.items)
        weight = self.patch_embed.weight  # inputs follow the model's device and dtype
        feats = packed.features.to(device=weight.device, dtype=weight.dtype)  # (ΣL, t·p·p·C)
        coords, cu = packed.coords.to(weight.device), packed.cu_seqlens.to(weight.device)
        pos = self.model_coords(coords)  # (ΣL, 4)
        with self._autocast(feats):
            x = self.patch_embed(feats)  # (ΣL, D)
            if self.enc_pos is not None:
                x = x + self.enc_pos(pos, layouts, cu)
            h = self._run(self.encoder, x, pos, cu, tiling)  # (ΣL, D)
            semantic = self.semantic(h, cu).float()  # (N, D_sem)
        post = self.latent_head(h, sample=sample, noise=noise)
        return TokenizerOutput(latents=post.latents, mean=post.mean, logvar=post.logvar, indices=post.indices,
                               coords=coords, cu_seqlens=cu, semantic=semantic, hidden=h, layouts=layouts,
                               valid=packed.valid.to(weight.device))

    # ----------------------------------------------------------------- decoder
    def decode(self, output: TokenizerOutput, *,
               tiling: TilingConfig | None | str = "config") -> list[Tensor]:
        """Tokens → per-sample media in the input's original shape ((T, H, W, 3) or (H, W, 3))."""
        patches = self.decode_patches(output, tiling=tiling)  # (ΣL, P)
        cu = output.cu_seqlens
        packed = PackedPatches(features=patches, coords=output.coords, valid=output.valid, cu_seqlens=cu,
                               sample_ids=_sample_ids(cu), items=tuple(output.layouts))
        return [unpatchify(p) for p in unpack(packed)]

    def decode_patches(self, output: TokenizerOutput, *,
                       tiling: TilingConfig | None | str = "config") -> Tensor:
        """Tokens → pixel-patch features ``(ΣL, t·p·p·C)`` (the decoder's raw output)."""
        tiling = self.config.tiling if tiling == "config" else tiling
        z = self.latents_of(output)  # (ΣL, C)
        pos, cu = self.model_coords(output.coords), output.cu_seqlens
        with self._autocast(z):
            x = self.latent_embed(z.to(self.latent_embed.weight.dtype))  # (ΣL, D)
            if self.dec_pos is not None:
                x = x + self.dec_pos(pos, output.layouts, cu)
            h = self._run(self.decoder, x, pos, cu, tiling)
            return self.to_pixels(h).float()  # (ΣL, P)

    def latents_of(self, output: TokenizerOutput) -> Tensor:
        """The decoder input: ``output.latents``, else FSQ codes rebuilt from ``output.indices``."""
        if output.latents is not None:
            return output.latents
        if output.indices is not None:
            return self.latent_head.codes_from_indices(output.indices)
        raise ValueError("TokenizerOutput has neither latents nor indices; keep one of them to decode")

    def forward(self, inputs: Visual | Sequence[Visual], *, sample: bool = False
                ) -> tuple[TokenizerOutput, list[Tensor]]:
        """Encode then decode: ``(tokens, reconstructions)``."""
        out = self.encode(inputs, sample=sample)
        return out, self.decode(out)

    # ----------------------------------------------------------------- helpers
    def _run(self, net: Transformer, x: Tensor, coords: Tensor, cu: Tensor,
             tiling: TilingConfig | None) -> Tensor:
        if tiling is not None:
            return run_tiled(net, x, coords, cu, tiling=tiling, latent_frames=self._latent_frames(tiling))
        packed_cu = cu if cu.numel() > 2 else None  # one sample needs no block-diagonal mask
        return net(x[None], coords, cu_seqlens=packed_cu)[0]  # (ΣL, D)

    def _latent_frames(self, tiling: TilingConfig) -> int:
        t = self.config.patch[0]
        if tiling.tile_frames % t:
            raise ValueError(f"TilingConfig.tile_frames={tiling.tile_frames} must be a multiple of the "
                             f"temporal patch size {t}")
        return tiling.tile_frames // t

    def _autocast(self, x: Tensor) -> AbstractContextManager:
        if x.device.type == "cuda" and self.config.autocast_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> VisualTokenizer:
        """Load a ``save_pretrained`` folder (also one from ``avtok-tokenizer convert --from atoken``)."""
        model = from_pretrained(directory, device=device)
        if not isinstance(model, cls):
            raise ValueError(f"{directory}: holds a {type(model).__name__}, not a VisualTokenizer; load it "
                             "with avtok.tokenizer.from_pretrained")
        return model


def build_tokenizer(preset_or_config: str | VisualTokenizerConfig) -> VisualTokenizer:
    """``build_tokenizer("tiny")`` or ``build_tokenizer(VisualTokenizerConfig(...))``."""
    return VisualTokenizer(resolve_config(preset_or_config))


register_model(VisualTokenizer.kind, VisualTokenizerConfig, VisualTokenizer)
