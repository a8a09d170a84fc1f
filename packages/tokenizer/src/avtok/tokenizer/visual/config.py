"""Typed configs and presets for the AToken-style visual tokenizer.

Configs are plain kw_only dataclasses (one source of truth; ``dataclasses.asdict`` gives the JSON that
``save_pretrained`` writes). ``PRESETS`` maps a name to a config; ``build_tokenizer`` accepts either.
"""

from __future__ import annotations

from dataclasses import dataclass

from avtok.train.transformer import TransformerConfig, block_params

__all__ = [
    "TransformerConfig",  # re-exported from avtok.train.transformer
    "TilingConfig",
    "VisualTokenizerConfig",
    "PRESETS",
    "resolve_config",
    "expected_num_params",
    "atoken_config",
]


@dataclass(kw_only=True)
class TilingConfig:
    """KV-cached temporal tiling (AToken Figure 6).

    ``tile_frames`` input frames form one tile (16 frames → 4 latent frames with a temporal patch of 4).
    Each tile attends to itself and to the cached keys/values of the previous ``cache_tiles`` tiles
    (``None``: all previous tiles). A bounded window keeps the cost linear in the video length.
    """

    tile_frames: int = 16
    cache_tiles: int | None = 1

    def __post_init__(self) -> None:
        if self.tile_frames <= 0:
            raise ValueError(f"TilingConfig.tile_frames={self.tile_frames} must be positive")
        if self.cache_tiles is not None and self.cache_tiles < 0:
            raise ValueError(f"TilingConfig.cache_tiles={self.cache_tiles} must be >= 0 or None (all)")


@dataclass(kw_only=True)
class VisualTokenizerConfig:
    """AToken-style tokenizer: patch embed → encoder → KL posterior (+ optional FSQ) → decoder → patches.

    The fields after ``autocast_bf16`` select the released AToken layout (all on in ``so400m``; the
    defaults keep avtok's own scheme): ``pos_embed_antialias`` resizes the learned table with antialias;
    ``xy_order="row_col"`` makes the first spatial axis of RoPE and of the table the patch row (AToken)
    instead of the column; ``posterior_bias`` / ``logvar_clamp`` are the bias of the moments projection
    and the [-30, 20] clamp of its log-variance; ``semantic_proj`` adds ``Linear(dim, semantic_dim)`` after
    the attention pool and ``semantic_normalize`` L2-normalises the semantic feature; ``crop_to_patch``
    centre-crops H and W to multiples of the patch and cuts T to a multiple of the temporal patch (AToken's
    preprocessing) instead of zero-padding them. The official 16-frame chunks are
    ``tiling=TilingConfig(tile_frames=16, cache_tiles=0)``.
    """

    encoder: TransformerConfig
    decoder: TransformerConfig
    patch: tuple[int, int, int] = (4, 16, 16)
    in_channels: int = 3
    latent_dim: int = 48
    use_fsq: bool = False
    fsq_levels: tuple[int, ...] = (4, 4, 4, 4, 4, 4)
    fsq_groups: int = 8
    pos_embed_grid: int | None = 16  # learnable 2D position embedding (g×g, resized); None: off
    semantic_dim: int = 1152  # width of the alignment projection (text embedding space)
    semantic_mlp_hidden: int | None = None  # attention-pool MLP width; None: encoder.mlp_hidden
    tiling: TilingConfig | None = None  # None: whole-clip attention
    autocast_bf16: bool = True  # bf16 autocast for the transformers on CUDA
    pos_embed_antialias: bool = False
    xy_order: str = "col_row"
    posterior_bias: bool = True
    logvar_clamp: bool = True
    semantic_proj: bool = True
    semantic_normalize: bool = False
    crop_to_patch: bool = False

    def __post_init__(self) -> None:
        if self.use_fsq and self.latent_dim != self.fsq_groups * len(self.fsq_levels):
            raise ValueError(f"VisualTokenizerConfig: FSQ needs latent_dim == fsq_groups*len(fsq_levels) = "
                             f"{self.fsq_groups * len(self.fsq_levels)}, got latent_dim={self.latent_dim}")
        if any(p <= 0 for p in self.patch) or len(self.patch) != 3:
            raise ValueError(f"VisualTokenizerConfig.patch={self.patch}: need three positive sizes (t, p, p)")
        if self.xy_order not in ("col_row", "row_col"):
            raise ValueError(f"VisualTokenizerConfig.xy_order={self.xy_order!r}: choose 'col_row' or "
                             "'row_col'")

    @property
    def patch_dim(self) -> int:
        t, ph, pw = self.patch
        return t * ph * pw * self.in_channels

    @property
    def semantic_width(self) -> int:
        """Width of ``TokenizerOutput.semantic``."""
        return self.semantic_dim if self.semantic_proj else self.encoder.dim


def _tiny() -> VisualTokenizerConfig:
    enc = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=128)
    dec = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=128)
    return VisualTokenizerConfig(encoder=enc, decoder=dec, latent_dim=48, pos_embed_grid=8, semantic_dim=32)


def _base() -> VisualTokenizerConfig:
    enc = TransformerConfig(dim=768, depth=12, heads=12, mlp_hidden=3072)
    dec = TransformerConfig(dim=768, depth=12, heads=12, mlp_hidden=3072)
    return VisualTokenizerConfig(encoder=enc, decoder=dec, latent_dim=48, semantic_dim=768)


def atoken_config(*, dim: int, depth: int, heads: int, mlp_hidden: int, latent_dim: int = 48,
                  use_fsq: bool = False, decoder: tuple[int, int, int, int] | None = None,
                  patch: tuple[int, int, int] = (4, 16, 16), in_channels: int = 3,
                  fsq_levels: tuple[int, ...] = (4,) * 6, fsq_groups: int = 8) -> VisualTokenizerConfig:
    """The released AToken layout at any size (``decoder``: (dim, depth, heads, mlp); default: encoder).

    Encoder: LayerNorm (eps 1e-6) and biases, no q/k norm; decoder: RMSNorm, no biases, per-head L2 q/k
    norm; both with the learned 16×16 table (antialiased resize) plus AToken's 4D RoPE; moments projection
    without bias or clamp; attention-pooled, L2-normalised semantic feature; centre crop; 16-frame chunks.
    """
    d_dim, d_depth, d_heads, d_mlp = decoder or (dim, depth, heads, mlp_hidden)
    enc = TransformerConfig(dim=dim, depth=depth, heads=heads, mlp_hidden=mlp_hidden, rope_freqs="atoken")
    dec = TransformerConfig(dim=d_dim, depth=d_depth, heads=d_heads, mlp_hidden=d_mlp, rope_freqs="atoken",
                            norm="rmsnorm", bias=False, qkv_bias=False, qk_norm=True)
    return VisualTokenizerConfig(
        encoder=enc, decoder=dec, patch=patch, in_channels=in_channels, latent_dim=latent_dim,
        use_fsq=use_fsq, fsq_levels=fsq_levels, fsq_groups=fsq_groups, pos_embed_grid=16,
        semantic_dim=dim, tiling=TilingConfig(tile_frames=16, cache_tiles=0), pos_embed_antialias=True,
        xy_order="row_col", posterior_bias=False, logvar_clamp=False, semantic_proj=False,
        semantic_normalize=True, crop_to_patch=True,
    )


def _tiny_atoken() -> VisualTokenizerConfig:
    # The released AToken layout at the fixtures' tiny width (2+2 blocks, width 64): trains on a CPU.
    return atoken_config(dim=64, depth=2, heads=4, mlp_hidden=128)


def _so400m() -> VisualTokenizerConfig:
    # AToken So/C (the released checkpoint's architecture): SigLIP2-So400m/16 tower, 27 blocks, width 1152,
    # 16 heads, MLP 4304 (not 4x); the decoder has the same sizes with RMSNorm, no biases and q/k norm.
    return atoken_config(dim=1152, depth=27, heads=16, mlp_hidden=4304)


def _so400m_fsq() -> VisualTokenizerConfig:
    # AToken So/D: So/C plus FSQ (8 groups of 6 dims x 4 levels = 4096 codes per group) on the mean.
    return atoken_config(dim=1152, depth=27, heads=16, mlp_hidden=4304, use_fsq=True)


_BUILDERS = {"tiny": _tiny, "tiny-atoken": _tiny_atoken, "base": _base, "so400m": _so400m,
             "so400m-fsq": _so400m_fsq}
PRESETS: dict[str, VisualTokenizerConfig] = {name: build() for name, build in _BUILDERS.items()}


def resolve_config(preset_or_config: str | VisualTokenizerConfig) -> VisualTokenizerConfig:
    """A preset name or a config → a config (a fresh copy for names, so callers may edit it)."""
    if isinstance(preset_or_config, VisualTokenizerConfig):
        return preset_or_config
    if preset_or_config not in _BUILDERS:
        raise ValueError(f"unknown tokenizer preset {preset_or_config!r}; choose one of {sorted(_BUILDERS)} "
                         "or pass a VisualTokenizerConfig")
    return _BUILDERS[preset_or_config]()


def _linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def expected_num_params(cfg: VisualTokenizerConfig) -> dict[str, int]:
    """Closed-form parameter count per part (tested against ``sum(p.numel())``)."""
    e, d = cfg.encoder, cfg.decoder
    pos = lambda c: 0 if cfg.pos_embed_grid is None else cfg.pos_embed_grid**2 * c.dim  # noqa: E731
    sem_hidden = cfg.semantic_mlp_hidden or e.mlp_hidden
    counts = {
        "encoder": (_linear(cfg.patch_dim, e.dim, e.bias) + pos(e) + e.depth * block_params(e)
                    + e.norm_params),
        "posterior": _linear(e.dim, 2 * cfg.latent_dim, cfg.posterior_bias),
        # probe + attention (q, kv, out) + LayerNorm + MLP [+ alignment projection]
        "semantic": (e.dim + _linear(e.dim, e.dim, e.bias) + _linear(e.dim, 2 * e.dim, e.bias)
                     + _linear(e.dim, e.dim, e.bias) + 2 * e.dim
                     + _linear(e.dim, sem_hidden, e.bias) + _linear(sem_hidden, e.dim, e.bias)
                     + (_linear(e.dim, cfg.semantic_dim, True) if cfg.semantic_proj else 0)),
        "decoder": (_linear(cfg.latent_dim, d.dim, d.bias) + pos(d) + d.depth * block_params(d)
                    + d.norm_params + _linear(d.dim, cfg.patch_dim, d.bias)),
    }
    counts["total"] = sum(counts.values())
    return counts
