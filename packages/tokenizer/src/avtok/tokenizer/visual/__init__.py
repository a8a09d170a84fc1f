"""The AToken-style visual tokenizer family: config and presets (``config``), the model (``model``), its
posterior / FSQ head (``posterior``), semantic head (``semantic``), KV-cached temporal tiling (``tiling``),
clip reconstruction (``reconstruct``) and the training recipe (``recipe``)."""

from avtok.tokenizer.visual.config import (
    PRESETS,
    TilingConfig,
    VisualTokenizerConfig,
    expected_num_params,
    resolve_config,
)
from avtok.tokenizer.visual.model import PosEmbed2D, VisualTokenizer, build_tokenizer
from avtok.tokenizer.visual.posterior import LatentHead, PosteriorOutput, kl_divergence
from avtok.tokenizer.visual.reconstruct import VisualReconstructor
from avtok.tokenizer.visual.semantic import AttentionPool, SemanticHead
from avtok.tokenizer.visual.tiling import run_tiled, run_tiled_sample, tile_ids

__all__ = [
    "PRESETS", "TilingConfig", "VisualTokenizerConfig", "expected_num_params", "resolve_config",
    "PosEmbed2D", "VisualTokenizer", "build_tokenizer", "LatentHead", "PosteriorOutput", "kl_divergence",
    "VisualReconstructor", "AttentionPool", "SemanticHead", "run_tiled", "run_tiled_sample", "tile_ids",
]
