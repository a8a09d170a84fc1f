"""avtok.tokenizer: AToken-style visual tokenizer (sparse 4D patches, 4D RoPE, KL/FSQ latents)."""

from avtok.tokenizer.__about__ import __version__
from avtok.tokenizer.config import (
    PRESETS,
    TilingConfig,
    TransformerConfig,
    VisualTokenizerConfig,
    expected_num_params,
    resolve_config,
)
from avtok.tokenizer.posterior import LatentHead, PosteriorOutput, kl_divergence
from avtok.tokenizer.pretrained import from_pretrained, register_model, save_pretrained
from avtok.tokenizer.reconstruct import VisualReconstructor
from avtok.tokenizer.semantic import AttentionPool, SemanticHead
from avtok.tokenizer.tiling import run_tiled, run_tiled_sample, tile_ids
from avtok.tokenizer.transformer import Attention, Block, KVCache, LayerKV, Transformer
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual import PosEmbed2D, VisualTokenizer, build_tokenizer

__all__ = [
    "__version__",
    "PRESETS",
    "TilingConfig",
    "TransformerConfig",
    "VisualTokenizerConfig",
    "expected_num_params",
    "resolve_config",
    "LatentHead",
    "PosteriorOutput",
    "kl_divergence",
    "from_pretrained",
    "register_model",
    "save_pretrained",
    "AttentionPool",
    "SemanticHead",
    "run_tiled",
    "run_tiled_sample",
    "tile_ids",
    "Attention",
    "Block",
    "KVCache",
    "LayerKV",
    "Transformer",
    "TokenizerOutput",
    "PosEmbed2D",
    "VisualTokenizer",
    "VisualReconstructor",
    "build_tokenizer",
]
