"""avtok.tokenizer: AToken-style visual tokenizer (sparse 4D patches, 4D RoPE, KL/FSQ latents) and the
AVTok-style 1D audio-video tokenizer (shared dual-stream transformer, one FSQ codebook)."""

from avtok.tokenizer.__about__ import __version__
from avtok.tokenizer.av_clip import (
    AVClipReconstructor,
    clip_inputs,
    decode_clips,
    encode_clips,
    reconstruct_clip,
)
from avtok.tokenizer.av_config import (
    AV_PRESETS,
    AVTokenizerConfig,
    expected_av_num_params,
    resolve_av_config,
)
from avtok.tokenizer.av_heads import AlignHead, ARPrior, alignment_loss
from avtok.tokenizer.av_tokenizer import (
    AVReconstruction,
    AVTokenizer,
    AVTokenizerOutput,
    build_av_tokenizer,
)
from avtok.tokenizer.config import (
    PRESETS,
    TilingConfig,
    TransformerConfig,
    VisualTokenizerConfig,
    atoken_config,
    expected_num_params,
    resolve_config,
)
from avtok.tokenizer.gaussian import GaussianDecoder, GaussianDecoderConfig, Gaussians
from avtok.tokenizer.posterior import LatentHead, PosteriorOutput, kl_divergence
from avtok.tokenizer.pretrained import from_pretrained, register_model, save_pretrained
from avtok.tokenizer.reconstruct import VisualReconstructor
from avtok.tokenizer.semantic import AttentionPool, SemanticHead
from avtok.tokenizer.tiling import run_tiled, run_tiled_sample, tile_ids
from avtok.tokenizer.transformer import Attention, Block, KVCache, LayerKV, Transformer
from avtok.tokenizer.types import TokenizerOutput
from avtok.tokenizer.visual import PosEmbed2D, VisualTokenizer, build_tokenizer
from avtok.tokenizer.atoken_convert import convert_atoken  # noqa: E402  (needs the models above)

__all__ = [
    "__version__",
    "PRESETS",
    "TilingConfig",
    "TransformerConfig",
    "VisualTokenizerConfig",
    "expected_num_params",
    "resolve_config",
    "atoken_config",
    "GaussianDecoder",
    "GaussianDecoderConfig",
    "Gaussians",
    "convert_atoken",
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
    "AV_PRESETS",
    "AVTokenizerConfig",
    "expected_av_num_params",
    "resolve_av_config",
    "AVTokenizer",
    "AVTokenizerOutput",
    "AVReconstruction",
    "build_av_tokenizer",
    "AlignHead",
    "ARPrior",
    "alignment_loss",
    "AVClipReconstructor",
    "clip_inputs",
    "encode_clips",
    "decode_clips",
    "reconstruct_clip",
]
