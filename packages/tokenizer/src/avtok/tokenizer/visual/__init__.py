"""The AToken-style visual tokenizer family: config and presets (``config``), the model (``model``), its
posterior / FSQ head (``posterior``), semantic head (``semantic``), KV-cached temporal tiling (``tiling``),
clip reconstruction (``reconstruct``), the training recipe (``recipe``), the released AToken checkpoints
converter (``convert``) and AToken's 3D Gaussian decoder (``gaussian``)."""

from avtok.tokenizer.visual.config import (
    PRESETS,
    TilingConfig,
    VisualTokenizerConfig,
    atoken_config,
    expected_num_params,
    resolve_config,
)
from avtok.tokenizer.visual.model import PosEmbed2D, VisualTokenizer, build_tokenizer
from avtok.tokenizer.visual.posterior import LatentHead, PosteriorOutput, kl_divergence
from avtok.tokenizer.visual.reconstruct import VisualReconstructor, crop_clip
from avtok.tokenizer.visual.gaussian import GaussianDecoder, GaussianDecoderConfig, Gaussians
from avtok.tokenizer.visual.convert import convert_atoken
from avtok.tokenizer.visual.semantic import AttentionPool, SemanticHead
from avtok.tokenizer.visual.tiling import run_tiled, run_tiled_sample, tile_ids

__all__ = [
    "PRESETS", "TilingConfig", "VisualTokenizerConfig", "expected_num_params", "resolve_config",
    "PosEmbed2D", "VisualTokenizer", "build_tokenizer", "LatentHead", "PosteriorOutput", "kl_divergence",
    "VisualReconstructor", "AttentionPool", "SemanticHead", "run_tiled", "run_tiled_sample", "tile_ids",
    "atoken_config", "crop_clip", "GaussianDecoder", "GaussianDecoderConfig", "Gaussians", "convert_atoken",
]
