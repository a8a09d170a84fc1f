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
    """AToken-style tokenizer: patch embed → encoder → KL posterior (+ optional FSQ) → decoder → patches."""

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
    tiling: TilingConfig | None = None  # None: whole-clip attention (AToken's public default)
    autocast_bf16: bool = True  # bf16 autocast for the transformers on CUDA

    def __post_init__(self) -> None:
        if self.use_fsq and self.latent_dim != self.fsq_groups * len(self.fsq_levels):
            raise ValueError(f"VisualTokenizerConfig: FSQ needs latent_dim == fsq_groups*len(fsq_levels) = "
                             f"{self.fsq_groups * len(self.fsq_levels)}, got latent_dim={self.latent_dim}")
        if any(p <= 0 for p in self.patch) or len(self.patch) != 3:
            raise ValueError(f"VisualTokenizerConfig.patch={self.patch}: need three positive sizes (t, p, p)")

    @property
    def patch_dim(self) -> int:
        t, ph, pw = self.patch
        return t * ph * pw * self.in_channels


def _tiny() -> VisualTokenizerConfig:
    enc = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=128)
    dec = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=128)
    return VisualTokenizerConfig(encoder=enc, decoder=dec, latent_dim=48, pos_embed_grid=8, semantic_dim=32)


def _base() -> VisualTokenizerConfig:
    enc = TransformerConfig(dim=768, depth=12, heads=12, mlp_hidden=3072)
    dec = TransformerConfig(dim=768, depth=12, heads=12, mlp_hidden=3072)
    return VisualTokenizerConfig(encoder=enc, decoder=dec, latent_dim=48, semantic_dim=768)


def _so400m() -> VisualTokenizerConfig:
    # SigLIP2-So400m/16 tower: 27 blocks, width 1152, 16 heads, MLP 4304 (not 4x); decoder mirrors it.
    enc = TransformerConfig(dim=1152, depth=27, heads=16, mlp_hidden=4304)
    dec = TransformerConfig(dim=1152, depth=27, heads=16, mlp_hidden=4304)
    return VisualTokenizerConfig(encoder=enc, decoder=dec, latent_dim=48, semantic_dim=1152)


PRESETS: dict[str, VisualTokenizerConfig] = {"tiny": _tiny(), "base": _base(), "so400m": _so400m()}


def resolve_config(preset_or_config: str | VisualTokenizerConfig) -> VisualTokenizerConfig:
    """A preset name or a config → a config (a fresh copy for names, so callers may edit it)."""
    if isinstance(preset_or_config, VisualTokenizerConfig):
        return preset_or_config
    builders = {"tiny": _tiny, "base": _base, "so400m": _so400m}
    if preset_or_config not in builders:
        raise ValueError(f"unknown tokenizer preset {preset_or_config!r}; choose one of {sorted(builders)} "
                         "or pass a VisualTokenizerConfig")
    return builders[preset_or_config]()


def expected_num_params(cfg: VisualTokenizerConfig) -> dict[str, int]:
    """Closed-form parameter count per part (tested against ``sum(p.numel())``)."""
    e, d = cfg.encoder, cfg.decoder
    pos = lambda c: 0 if cfg.pos_embed_grid is None else cfg.pos_embed_grid**2 * c.dim  # noqa: E731
    sem_hidden = cfg.semantic_mlp_hidden or e.mlp_hidden
    counts = {
        "encoder": cfg.patch_dim * e.dim + e.dim + pos(e) + e.depth * block_params(e) + 2 * e.dim,
        "posterior": e.dim * 2 * cfg.latent_dim + 2 * cfg.latent_dim,
        # probe + attention (q, kv, out) + LayerNorm + MLP + alignment projection
        "semantic": (e.dim + (4 * e.dim * e.dim + 4 * e.dim) + 2 * e.dim
                     + (e.dim * sem_hidden + sem_hidden + sem_hidden * e.dim + e.dim)
                     + e.dim * cfg.semantic_dim + cfg.semantic_dim),
        "decoder": (cfg.latent_dim * d.dim + d.dim + pos(d) + d.depth * block_params(d) + 2 * d.dim
                    + d.dim * cfg.patch_dim + cfg.patch_dim),
    }
    counts["total"] = sum(counts.values())
    return counts

